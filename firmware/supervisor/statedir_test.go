package supervisor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/mgmt/show"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/qemu/guest"
)

const stateDirChild = "SECWIRE_STATEDIR_TEST_CHILD"

// TestStaticKeysStopWhenTheStateDirFailsWrites runs a static-key link on
// the software datapath with its state directory on a tmpfs, under
// traffic, and makes the directory read-only: the link stops transmitting
// before its PN passes the recorded ceiling, show macsec and the log say
// why, and when the directory is writable again the link resumes.
//
// The test runs itself again inside a network namespace (ip netns exec),
// whose private mount namespace also keeps the tmpfs to the test.
func TestStaticKeysStopWhenTheStateDirFailsWrites(t *testing.T) {
	if os.Getenv(stateDirChild) != "" {
		stateDirFails(t, "software")
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a tmpfs (make test runs as root in CI)")
	}
	ns, err := netns.Add(fmt.Sprintf("swpg%d", os.Getpid()))
	must(t, err)
	defer ns.Delete()
	must(t, netns.Veth(ns, "plain", ns, "hp"))
	must(t, netns.Veth(ns, "line", ns, "lp"))
	cmd := ns.Command(os.Args[0], "-test.run=^TestStaticKeysStopWhenTheStateDirFailsWrites$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), stateDirChild+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns.Name, out)
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("the test failed in its namespace: %v", err)
	}
}

// TestStaticKeysStopWhenTheStateDirFailsWritesOnTheKernel is the same on
// the kernel's macsec datapath, in a QEMU guest: the guard takes the
// kernel's SA away, and puts it back at the old ceiling.
func TestStaticKeysStopWhenTheStateDirFailsWritesOnTheKernel(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.KernelDatapathModules, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	for _, p := range [][2]string{{"plain", "hp"}, {"line", "lp"}} {
		run(t, "ip", "link", "add", p[0], "type", "veth", "peer", "name", p[1])
		run(t, "ip", "link", "set", p[0], "up")
		run(t, "ip", "link", "set", p[1], "up")
	}
	stateDirFails(t, "kernel")
}

func stateDirFails(t *testing.T, datapath string) {
	state := filepath.Join(t.TempDir(), "state")
	must(t, os.Mkdir(state, 0o700))
	must(t, unix.Mount("tmpfs", state, "tmpfs", 0, "size=1m"))
	defer unix.Unmount(state, 0)
	key := strings.Repeat("3c", 16)
	sa := config.SA{AN: 0, Key: key, PN: 1}
	cfg := &config.Config{Links: []config.Link{{
		Name: "l0", Plain: "plain", Line: "line", Datapath: config.Datapath(datapath), LinkFault: new(bool),
		Static: &config.StaticKeys{TX: sa, RX: []config.RxSC{{SCI: 0x025e00000b010001, SAs: []config.SA{sa}}}},
	}}}
	var logMu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerTo(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	logged := func() string { logMu.Lock(); defer logMu.Unlock(); return logs.String() }
	s, err := supervisor.Start(context.Background(), cfg, supervisor.Options{Log: log, StateDir: state, PNReserve: 1000})
	must(t, err)
	defer s.Stop()
	if b := s.Status().Links[0].Backend; b != datapath {
		t.Fatalf("backend %s, want %s", b, datapath)
	}
	tx, err := afpacket.OpenTx("hp", afpacket.TxOptions{})
	must(t, err)
	defer tx.Close()
	rx, err := afpacket.OpenRx("lp", afpacket.RxOptions{Promiscuous: true})
	must(t, err)
	defer rx.Close()

	var sent, seen, maxPN uint64
	// burst sends n frames into the plaintext port and returns how many
	// left the line port; every one must be MACsec.
	burst := func(n int) int {
		for range n {
			f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}
			f = binary.BigEndian.AppendUint64(f, sent)
			tx.Send(append(f, make([]byte, 50)...))
			sent++
		}
		tx.Flush()
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		got := 0
		for ctx.Err() == nil {
			rx.Receive(ctx, func(f []byte) {
				if binary.BigEndian.Uint16(f[12:]) != macsec.EtherType {
					t.Errorf("frame in clear on the line: %x", f[:min(len(f), 32)])
					return
				}
				maxPN = max(maxPN, uint64(binary.BigEndian.Uint32(f[16:])))
				got++
			})
		}
		seen += uint64(got)
		return got
	}
	ceiling := func() uint64 {
		m, _ := filepath.Glob(filepath.Join(state, "txpn-*"))
		if len(m) != 1 {
			t.Fatalf("PN state files: %v", m)
		}
		b, err := os.ReadFile(m[0])
		must(t, err)
		c, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		must(t, err)
		return c
	}
	status := func() supervisor.LinkStatus { return s.Status().Links[0] }

	// Healthy: frames cross, the ceiling moves ahead of them.
	for range 20 {
		burst(100)
	}
	if seen < 1000 || maxPN >= ceiling() || status().TxStopped != "" {
		st := status()
		t.Fatalf("healthy phase: %d of %d frames crossed, max PN %d, ceiling %d, stopped %q\ndatapath %v\nsecy %v\ntx SAs %+v\nlog:\n%s", seen, sent, maxPN, ceiling(), st.TxStopped, st.DatapathCounters, st.SecYCounters, st.TxSAs, logged())
	}

	// The state directory stops taking writes.
	must(t, unix.Mount("tmpfs", state, "tmpfs", unix.MS_REMOUNT|unix.MS_RDONLY, "size=1m"))
	deadline := time.Now().Add(10 * time.Second)
	for status().TxStopped == "" && time.Now().Before(deadline) {
		burst(50)
	}
	why := status().TxStopped
	if !strings.Contains(why, "cannot record the transmit PN ceiling") || !strings.Contains(why, "read-only file system") {
		t.Fatalf("transmission stopped for %q", why)
	}
	if n := burst(300); n != 0 {
		t.Fatalf("%d frames left the line after the link stopped transmitting", n)
	}
	if c := ceiling(); maxPN >= c {
		t.Fatalf("PN %d was sent, at or above the recorded ceiling %d", maxPN, c)
	}
	var out bytes.Buffer
	show.MACsec(&out, s.Status())
	if !strings.Contains(out.String(), "TRANSMISSION STOPPED: cannot record the transmit PN ceiling") {
		t.Errorf("show macsec does not say why:\n%s", out.String())
	}
	if !strings.Contains(logged(), "cannot record the transmit PN ceiling") {
		t.Errorf("not logged:\n%s", logged())
	}

	// Writable again: the link resumes by itself.
	must(t, unix.Mount("tmpfs", state, "tmpfs", unix.MS_REMOUNT, "size=1m"))
	deadline = time.Now().Add(10 * time.Second)
	for status().TxStopped != "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	before := maxPN
	if n := burst(100); n == 0 || status().TxStopped != "" || maxPN <= before {
		t.Fatalf("after the directory is writable again: %d frames crossed, stopped %q", n, status().TxStopped)
	}
	if maxPN >= ceiling() {
		t.Fatalf("PN %d at or above the ceiling %d", maxPN, ceiling())
	}
}

type writerTo func([]byte) (int, error)

func (f writerTo) Write(p []byte) (int, error) { return f(p) }
