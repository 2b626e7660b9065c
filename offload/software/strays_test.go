package software

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// tsharkCapture runs tshark in ns on ifname until the returned stop is
// called; stop returns how many captured frames match a display filter.
func tsharkCapture(t *testing.T, ns *netns.NS, ifname string) (stop func(filter string) int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), ifname+".pcapng")
	cmd := ns.Command("tshark", "-i", ifname, "-w", file, "-q")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "Capturing on") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	var once sync.Once
	return func(filter string) int {
		once.Do(func() {
			time.Sleep(300 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
			stopped = true
		})
		out, err := exec.Command("tshark", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
		if err != nil {
			t.Fatalf("tshark -r %s -Y %q: %v\n%s", file, filter, err, stderr.String())
		}
		return len(strings.Fields(string(out)))
	}
}

// lockedBuffer is a bytes.Buffer that a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRestartsLetNoStrayFrameThrough restarts engine A 300 times while a
// third interface in the same namespace is flooded with marked frames. A
// receive socket that sees frames before it is bound to its port would
// take some of them as input: under should-secure they would leave the
// line (or the plaintext port) in clear, with static keys they would be
// encrypted to the far end, which delivers them. tshark on the line and
// both plaintext sides must find none.
func TestRestartsLetNoStrayFrameThrough(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark missing: `make test` installs it (.ci/deps)")
	}
	for _, mode := range []string{"should-secure", "static-keys"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // the restarts mostly wait for the kernel's RCU grace periods
			keys := mode == "static-keys"
			w := newWire(t, macsec.GCMAES128, 0, !keys, keys, 1<<20)
			// A restarts below; B runs throughout (it delivers what A
			// encrypts). Without keys B would forward anything in clear:
			// it is stopped.
			w.a.Stop()
			if !keys {
				w.b.Stop()
			}
			if err := netns.Veth(w.ns, "xf", w.ns, "xa"); err != nil {
				t.Fatal(err)
			}
			line, plainA, plainB := tsharkCapture(t, w.ns, "bl"), tsharkCapture(t, w.ns, "hp"), tsharkCapture(t, w.ns, "hq")
			var flood *afpacket.Tx
			if err := w.ns.Do(func() (err error) { flood, err = afpacket.OpenTx("xf", afpacket.TxOptions{}); return }); err != nil {
				t.Fatal(err)
			}
			defer flood.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var floodWG sync.WaitGroup
			floodWG.Add(1)
			sentFlood := 0
			go func() {
				defer floodWG.Done()
				for ctx.Err() == nil && sentFlood < 20_000_000 {
					f := []byte{2, 0, 0, 0, 0x22, 2, 2, 0, 0, 0, 0x11, 1, 0x88, 0xb5}
					f = append(f, "STRAY-FOREIGN-FRAME "+strconv.Itoa(sentFlood)...)
					flood.Send(f)
					sentFlood++
					if sentFlood%64 == 0 { // about 100k frames a second
						flood.Flush()
						time.Sleep(500 * time.Microsecond)
					}
				}
			}()
			h1 := w.port(t, "hp")
			for i := range 300 {
				e, err := Start(context.Background(), Options{
					Plain: "ap", Line: "al", SecY: w.sa, ShouldSecure: !keys,
					EAPOLTypes: []uint16{0x888e}, Workers: 1, Open: w.ns.Do,
				})
				if err != nil {
					t.Fatalf("restart %d: %v", i, err)
				}
				if i%30 == 0 {
					// Real traffic from the plaintext side: the captures
					// must see it, so they are known to work.
					h1.send(t, testFrame(i, 200))
				}
				time.Sleep(10 * time.Millisecond)
				e.Stop()
			}
			cancel()
			floodWG.Wait()
			const stray = `frame contains "STRAY-FOREIGN"`
			const legit = `frame contains "MARKER-secwire"`
			nLine, nPlainA, nPlainB := line(stray), plainA(stray), plainB(stray)
			t.Logf("%s: %d foreign frames flooded; marked frames found: line %d, plaintext A %d, plaintext B %d", mode, sentFlood, nLine, nPlainA, nPlainB)
			if nLine+nPlainA+nPlainB != 0 {
				t.Errorf("foreign frames crossed the datapath: line %d, plaintext A side %d, plaintext B side %d", nLine, nPlainA, nPlainB)
			}
			// The captures saw the real traffic: in clear on the line
			// under should-secure, delivered by B with keys.
			if n := map[bool]int{false: line(legit), true: plainB(legit)}[keys]; n == 0 {
				t.Errorf("the captures saw none of the real frames: they prove nothing")
			}
		})
	}
}
