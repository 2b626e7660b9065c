package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/qemu/guest"
)

// These tests run the real binary as two daemons in network namespaces:
//
//	h1 —[eth0|plain]— A —[line|line]— B —[plain|eth0]— h2
//
// and send real traffic (ping, iperf3) between h1 and h2.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func secwireBinary(t *testing.T) string {
	t.Helper()
	if guest.Inside() {
		return guestBinary
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "secwire-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "secwire")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeBinary removes the daemon binary the tests built, if they did.
func removeBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

type topo struct {
	t            *testing.T
	h1, a, b, h2 *netns.NS
	dir          string
	daemons      map[string]*exec.Cmd
	macA, macB   string
	keyA, keyB   string
	suite        macsec.CipherSuite
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (make test runs as root in CI)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing: `make test` installs it (.ci/deps)", tool)
		}
	}
}

func newTopo(t *testing.T, suite macsec.CipherSuite) *topo {
	t.Helper()
	needTools(t, "ip", "ping", "iperf3", "tshark", "ethtool")
	return newTopoNoTools(t, suite)
}

// newTopoNoTools builds the topology with ip, ping and ethtool only. With
// a wire option the line runs through a relay the test controls.
func newTopoNoTools(t *testing.T, suite macsec.CipherSuite, w ...*wire) *topo {
	t.Helper()
	tp := &topo{t: t, dir: t.TempDir(), daemons: map[string]*exec.Cmd{}, suite: suite,
		macA: "02:5e:00:00:0a:01", macB: "02:5e:00:00:0b:01"}
	tp.keyA = strings.Repeat("a1", suite.KeyLen())
	tp.keyB = strings.Repeat("b2", suite.KeyLen())
	id := os.Getpid() % 100000
	var nss []*netns.NS
	for _, n := range []string{"h1", "a", "b", "h2"} {
		ns, err := netns.Add(fmt.Sprintf("sw%s%d", n, id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Delete() })
		nss = append(nss, ns)
	}
	tp.h1, tp.a, tp.b, tp.h2 = nss[0], nss[1], nss[2], nss[3]
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netns.Veth(tp.h1, "eth0", tp.a, "plain"))
	if len(w) > 0 {
		must(w[0].connect(t, tp.a, tp.b, id))
	} else {
		must(netns.Veth(tp.a, "line", tp.b, "line"))
	}
	must(netns.Veth(tp.b, "plain", tp.h2, "eth0"))
	must(tp.a.IP("link", "set", "dev", "line", "address", tp.macA))
	must(tp.b.IP("link", "set", "dev", "line", "address", tp.macB))
	for i, h := range []*netns.NS{tp.h1, tp.h2} {
		must(h.IP("addr", "add", fmt.Sprintf("10.9.0.%d/24", i+1), "dev", "eth0"))
		// A router on a real wire sends complete frames: no TSO/GSO
		// super-frames, no checksums left to a NIC.
		if out, err := h.Command("ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off").CombinedOutput(); err != nil {
			t.Fatalf("ethtool: %v\n%s", err, out)
		}
	}
	return tp
}

func boolp(b bool) *bool { return &b }

// config writes a daemon config for side "a" or "b"; rxKey is the key
// this side expects from its peer.
func (tp *topo) config(side, rxKey string, mutate func(*config.Link)) string {
	mac, peer, txKey := tp.macA, tp.macB, tp.keyA
	if side == "b" {
		mac, peer, txKey = tp.macB, tp.macA, tp.keyB
	}
	sci := func(m string) macsec.SCI {
		a, _ := net.ParseMAC(m)
		return macsec.MakeSCI(a, 1)
	}
	sa := func(key string, ssci config.Hex) config.SA {
		s := config.SA{AN: 0, Key: key, PN: 1}
		if tp.suite.XPN() {
			s.SSCI, s.Salt = ssci, config.Hex{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		}
		return s
	}
	mySSCI, peerSSCI := config.Hex{0, 0, 0, 1}, config.Hex{0, 0, 0, 2}
	if side == "b" {
		mySSCI, peerSSCI = peerSSCI, mySSCI
	}
	l := config.Link{
		Name: "link0", Plain: "plain", Line: "line", Cipher: tp.suite, ReplayWindow: 64,
		LinkFault: boolp(false), Workers: 2,
		Static: &config.StaticKeys{SCI: sci(mac), TX: sa(txKey, mySSCI),
			RX: []config.RxSC{{SCI: sci(peer), SAs: []config.SA{sa(rxKey, peerSSCI)}}}},
	}
	if mutate != nil {
		mutate(&l)
	}
	b, _ := json.MarshalIndent(config.Config{Links: []config.Link{l}}, "", "  ")
	p := filepath.Join(tp.dir, side+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tp.t.Fatal(err)
	}
	return p
}

func (tp *topo) ns(side string) *netns.NS {
	if side == "a" {
		return tp.a
	}
	return tp.b
}

func (tp *topo) socket(side string) string { return filepath.Join(tp.dir, side+".sock") }

// start runs a daemon and waits for its management socket.
func (tp *topo) start(side, cfg string) { tp.t.Helper(); tp.startArgs(side, cfg) }

// startArgs runs a daemon with extra arguments.
func (tp *topo) startArgs(side, cfg string, extra ...string) {
	tp.t.Helper()
	tp.startIn("", side, cfg, extra...)
}

// startIn runs a daemon in the working directory wd ("": the test's), so
// that cfg may be a path relative to it.
func (tp *topo) startIn(wd, side, cfg string, extra ...string) {
	t := tp.t
	t.Helper()
	logf, _ := os.OpenFile(filepath.Join(tp.dir, side+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	args := append([]string{"daemon", "--config", cfg, "--socket", tp.socket(side), "--state", filepath.Join(tp.dir, "state-"+side)}, extra...)
	cmd := tp.ns(side).Command(secwireBinary(t), args...)
	cmd.Dir = wd
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tp.daemons[side] = cmd
	t.Cleanup(func() { tp.stop(side) })
	// The socket file appears at bind, a moment before the daemon
	// listens: wait until a connection is accepted.
	for range 200 {
		if c, err := net.Dial("unix", tp.socket(side)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("daemon %s did not start:\n%s", side, tp.log(side))
}

func (tp *topo) stop(side string) {
	if cmd := tp.daemons[side]; cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			tp.t.Errorf("daemon %s did not stop cleanly on SIGTERM: %v\n%s", side, err, tp.log(side))
		}
		delete(tp.daemons, side)
	}
}

func (tp *topo) kill(side string) {
	if cmd := tp.daemons[side]; cmd != nil {
		// ip netns exec execs the daemon: the pid is the daemon's.
		cmd.Process.Kill()
		cmd.Wait()
		delete(tp.daemons, side)
	}
}

func (tp *topo) log(side string) string {
	b, _ := os.ReadFile(filepath.Join(tp.dir, side+".log"))
	return string(b)
}

// ping from h1 to addr; true when count replies came back.
func (tp *topo) ping(addr string, count int) bool {
	out, err := tp.h1.Command("ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", "-p", markerHex, addr).CombinedOutput()
	tp.t.Logf("ping %s: %s", addr, lastLine(string(out)))
	return err == nil
}

// waitPing retries until the link passes traffic (bounded).
// waitLinksUp waits until both daemons transmit with an SA and have let
// their plaintext ports up, or fails the test.
func (tp *topo) waitLinksUp(within time.Duration) {
	tp.t.Helper()
	for end := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		up := 0
		for _, side := range []string{"a", "b"} {
			if st, err := ctl.Status(tp.socket(side)); err == nil && len(st.Links) == 1 && st.Links[0].EncodingSA >= 0 && st.Links[0].Plain.Up {
				up++
			}
		}
		if up == 2 {
			return
		}
		if time.Now().After(end) {
			tp.t.Fatalf("links not up within %s\nA:\n%s\nB:\n%s", within, tp.log("a"), tp.log("b"))
		}
	}
}

func (tp *topo) waitPing(addr string) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if tp.ping(addr, 1) {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// markerHex is a payload pattern ping repeats in every packet: if it is
// ever seen on the line, plaintext leaked.
const markerHex = "5345435749524553" // "SECWIRES"

var marker = []byte("SECWIRES")

// capture runs tshark in ns on ifname until the returned stop is called.
func capture(t *testing.T, ns *netns.NS, ifname, file string) (stop func() [][]byte) {
	t.Helper()
	cmd := ns.Command("tshark", "-i", ifname, "-w", file, "-q")
	var stderr screen // written by exec's copier while this loop reads it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "Capturing on") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return func() [][]byte {
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("capture: %v\n%s", err, stderr.String())
		}
		defer f.Close()
		r, err := openCapture(f)
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		var frames [][]byte
		for {
			d, _, err := r.ReadPacketData()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("capture: %v", err)
				}
				return frames
			}
			frames = append(frames, append([]byte(nil), d...))
		}
	}
}

// altEAPOL is the alternate EAPOL EtherType the MKA tests configure.
const altEAPOL = 0x876f

// checkLine fails if any frame on the line is neither MACsec nor EAPOL, or
// shows the plaintext marker.
func checkLine(t *testing.T, frames [][]byte) {
	t.Helper()
	for _, f := range frames {
		et := binary.BigEndian.Uint16(f[12:])
		if et == 0x8100 {
			et = binary.BigEndian.Uint16(f[16:])
		}
		if et != macsec.EtherType && et != 0x888e && et != altEAPOL {
			t.Fatalf("frame in clear on the line (EtherType %#04x): %x", et, f[:min(len(f), 48)])
		}
		if bytes.Contains(f, marker) {
			t.Fatalf("plaintext marker visible on the line: %x", f)
		}
	}
}

func (tp *topo) iperf(args ...string) {
	t := tp.t
	srv := tp.h2.Command("iperf3", "-s", "-1", "-B", "10.9.0.2")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	time.Sleep(300 * time.Millisecond)
	out, err := tp.h1.Command("iperf3", append([]string{"-c", "10.9.0.2", "-t", "2", "--connect-timeout", "3000"}, args...)...).CombinedOutput()
	if err != nil {
		srv.Process.Kill()
		t.Fatalf("iperf3 %v: %v\n%s\nA:\n%s", args, err, out, tp.log("a"))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if strings.Contains(l, "receiver") {
			t.Logf("iperf3 %v: %s", args, strings.Join(strings.Fields(l), " "))
		}
	}
}

// hostPorts opens raw ports on the hosts: tx sends from h1, rx receives
// everything h2 gets. The test's cleanup closes them.
func (tp *topo) hostPorts() (*afpacket.Tx, *afpacket.Rx) {
	t := tp.t
	var tx *afpacket.Tx
	var rx *afpacket.Rx
	if err := tp.h1.Do(func() (err error) { tx, err = afpacket.OpenTx("eth0", afpacket.TxOptions{}); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	if err := tp.h2.Do(func() (err error) { rx, err = afpacket.OpenRx("eth0", afpacket.RxOptions{Promiscuous: true}); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	return tx, rx
}

// vlanFrames sends 802.1Q and QinQ tagged frames from h1 and checks they
// reach h2 unchanged. (The build machines' kernel has no 8021q module for
// VLAN interfaces, so the frames are raw.)
func (tp *topo) vlanFrames() {
	t := tp.t
	tx, rx := tp.hostPorts()
	var sent [][]byte
	for i := range 20 {
		f := []byte{0x02, 0x5e, 0, 0, 0, 0x22, 0x02, 0x5e, 0, 0, 0, 0x11}
		if i%2 == 1 {
			f = append(f, 0x88, 0xa8, 0x00, 0x0a) // S-tag 10
		}
		f = append(f, 0x81, 0x00, 0x00, 100, 0x88, 0xb5)
		f = append(f, marker...)
		f = append(f, byte(i))
		f = append(f, make([]byte, 100+i*50)...)
		sent = append(sent, f)
		tx.Send(f)
	}
	tx.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got [][]byte
	for len(got) < len(sent) {
		if _, _, err := rx.Receive(ctx, func(f []byte) {
			if bytes.Contains(f, marker) {
				got = append(got, append([]byte(nil), f...))
			}
		}); err != nil {
			break
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("h2 got %d of %d VLAN-tagged frames", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("tagged frame %d changed:\n got %x\nwant %x", i, got[i][:24], sent[i][:24])
		}
	}
}

func TestDaemonsEncryptTrafficEndToEnd(t *testing.T) {
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tp := newTopo(t, suite)
			tp.start("a", tp.config("a", tp.keyB, nil))
			tp.start("b", tp.config("b", tp.keyA, nil))
			stop := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
			if !tp.waitPing("10.9.0.2") {
				stop()
				t.Fatalf("no ping across the link\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
			}
			if !tp.ping("10.9.0.2", 5) {
				t.Error("ping lost packets")
			}
			tp.vlanFrames()
			tp.iperf()                                 // TCP
			tp.iperf("-u", "-b", "100M", "-l", "1400") // UDP
			frames := stop()
			checkLine(t, frames)
			if len(frames) < 100 {
				t.Fatalf("only %d frames captured on the line", len(frames))
			}
			out, err := exec.Command(secwireBinary(t), "show", "macsec", "--socket", tp.socket("a")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "cipher "+suite.String()) {
				t.Fatalf("show macsec: %v\n%s", err, out)
			}
			if strings.Contains(string(out), tp.keyA) || strings.Contains(string(out), tp.keyB) {
				t.Fatal("show macsec printed a key")
			}
			// auto runs the kernel's macsec driver where there is one, else
			// this Go datapath, and says why.
			st := tp.linkStatus("a")
			want, why := "kernel", ""
			if c, err := macsecnl.Dial(); err != nil {
				want, why = "software", "kernel: "+err.Error()
			} else {
				c.Close()
			}
			if st.Backend != want || !strings.Contains(st.Datapath, why) {
				t.Errorf("backend %q (%s), want %s (%s)", st.Backend, st.Datapath, want, why)
			}
			if !strings.Contains(string(out), "datapath: "+st.Datapath) {
				t.Errorf("show macsec does not show the datapath and why:\n%s", out)
			}
		})
	}
}

func TestDaemonsNeverLeak(t *testing.T) {
	tp := newTopo(t, macsec.GCMAES128)
	lineCap := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
	plainCap := capture(t, tp.h2, "eth0", filepath.Join(tp.dir, "h2.pcapng"))

	// 1. Key mismatch: B expects the wrong key for A.
	wrong := strings.Repeat("cc", 16)
	tp.start("a", tp.config("a", tp.keyB, nil))
	tp.start("b", tp.config("b", wrong, nil))
	if tp.ping("10.9.0.2", 3) {
		t.Fatal("ping crossed with mismatched keys")
	}
	tp.stop("b")

	// 2. Removed SA: B only has an SA for AN 1; A sends on AN 0.
	tp.start("b", tp.config("b", tp.keyA, func(l *config.Link) { l.Static.RX[0].SAs[0].AN = 1 }))
	if tp.ping("10.9.0.2", 3) {
		t.Fatal("ping crossed without a receive SA")
	}
	tp.stop("b")
	// Nothing at all from h1 reached h2 in phases 1 and 2.
	for _, f := range plainCap() {
		if bytes.Contains(f, marker) || binary.BigEndian.Uint16(f[12:]) == macsec.EtherType {
			t.Fatalf("frame reached h2 without validation: %x", f[:min(len(f), 48)])
		}
	}

	// 3. Keys match again: traffic resumes.
	tp.start("b", tp.config("b", tp.keyA, nil))
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("traffic did not resume with matching keys\nB:\n%s", tp.log("b"))
	}

	// 4. Daemon A killed mid-stream: h1 keeps sending; nothing crosses in
	// clear, and h2 gets only validated frames.
	plainCap = capture(t, tp.h2, "eth0", filepath.Join(tp.dir, "h2b.pcapng"))
	flood := tp.h1.Command("ping", "-c", "300", "-i", "0.01", "-W", "1", "-p", markerHex, "10.9.0.2")
	flood.Start()
	time.Sleep(time.Second)
	tp.kill("a")
	flood.Wait()
	for _, f := range plainCap() {
		if binary.BigEndian.Uint16(f[12:]) == macsec.EtherType {
			t.Fatalf("a MACsec frame reached the plaintext side: %x", f[:32])
		}
	}
	// Same static keys: A resumes above its recorded PN ceiling (no PN
	// reuse), so B's replay protection accepts it and traffic resumes.
	tp.start("a", tp.config("a", tp.keyB, nil))
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("traffic did not resume after restarting A\nA:\n%s", tp.log("a"))
	}
	if !strings.Contains(tp.log("a"), "resumes above the PNs") {
		t.Errorf("restarted A did not resume above its PN ceiling:\n%s", tp.log("a"))
	}
	checkLine(t, lineCap())
	out, err := exec.Command(secwireBinary(t), "show", "counters", "--socket", tp.socket("b")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "InPktsOK") {
		t.Fatalf("show counters: %v\n%s", err, out)
	}
}

// carrier reports h1's eth0 carrier as its kernel sees it.
func carrier(t *testing.T, ns *netns.NS, ifname string) bool {
	out, err := exec.Command("ip", "-n", ns.Name, "-o", "link", "show", "dev", ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v\n%s", err, out)
	}
	return !strings.Contains(string(out), "NO-CARRIER") && strings.Contains(string(out), ",UP")
}

func waitCarrier(t *testing.T, ns *netns.NS, ifname string, want bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if carrier(t, ns, ifname) == want {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func TestLinkFaultPassthrough(t *testing.T) {
	tp := newTopo(t, macsec.GCMAESXPN128)
	on := func(l *config.Link) { l.LinkFault = boolp(true) }
	tp.start("a", tp.config("a", tp.keyB, on))
	tp.start("b", tp.config("b", tp.keyA, on))
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("no traffic\nA:\n%s", tp.log("a"))
	}
	if !carrier(t, tp.h1, "eth0") {
		t.Fatal("h1 has no carrier on a healthy link")
	}
	// The far end's line port goes down: A's line loses carrier, and A
	// takes its plaintext port down so h1's router would fail over.
	if err := tp.b.IP("link", "set", "dev", "line", "down"); err != nil {
		t.Fatal(err)
	}
	if !waitCarrier(t, tp.h1, "eth0", false) {
		t.Fatalf("h1 still has carrier with the line down\nA:\n%s", tp.log("a"))
	}
	// The port goes down first, then the daemon logs it.
	for end := time.Now().Add(5 * time.Second); !strings.Contains(tp.log("a"), "plaintext port held down") && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(tp.log("a"), "plaintext port held down") {
		t.Errorf("A did not log the fault:\n%s", tp.log("a"))
	}
	out, _ := exec.Command(secwireBinary(t), "show", "interfaces", "--socket", tp.socket("a")).CombinedOutput()
	if !strings.Contains(string(out), "held down: line port line has no carrier") {
		t.Errorf("show interfaces does not explain the fault:\n%s", out)
	}
	if err := tp.b.IP("link", "set", "dev", "line", "up"); err != nil {
		t.Fatal(err)
	}
	if !waitCarrier(t, tp.h1, "eth0", true) {
		t.Fatal("h1 carrier did not come back")
	}
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no traffic after the line came back")
	}
	// A stopped daemon takes the plaintext port down too.
	tp.stop("a")
	if !waitCarrier(t, tp.h1, "eth0", false) {
		t.Fatal("h1 keeps carrier after the daemon stopped")
	}
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"links": [{"name": "l", "plain": "eth0", "line": "eth0", "cipher": "aes", "static_keys": {"tx": {"an": 5, "key": "00"}, "rx": []}}]}`), 0o600)
	var out bytes.Buffer
	err := configCmd([]string{"check", p}, &out)
	if err == nil {
		t.Fatal("a bad config passed")
	}
	for _, want := range []string{"problem(s)", "links[0].line: interface eth0 is already links[0].plain", "links[0].cipher:",
		"links[0].static_keys.tx.an: 5: want 0..3", "links[0].static_keys.rx: missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	os.WriteFile(p, []byte(`{"system": {"hostname": "ok"}}`), 0o600)
	if err := configCmd([]string{"check", p}, &out); err != nil || !strings.Contains(out.String(), "ok") {
		t.Fatalf("good config: %v %s", err, out.String())
	}
}

// TestDaemonsPassProtocolsInClear runs two daemons with lldp in clear:
// an LLDP frame crosses in clear (and is seen so on the line), other
// frames are protected, and show macsec lists the exception and why the
// Go datapath runs.
func TestDaemonsPassProtocolsInClear(t *testing.T) {
	needTools(t, "ip", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	lldp := func(l *config.Link) { l.ProtocolsInClear = []config.ProtocolInClear{{Name: "lldp"}} }
	tp.start("a", tp.config("a", tp.keyB, lldp))
	tp.start("b", tp.config("b", tp.keyA, lldp))
	tx, rx := tp.hostPorts()
	stopLine := rawCapture(t, tp.b, "line")
	frame := func(da []byte, et uint16) []byte {
		f := append(append([]byte(nil), da...), 0x02, 0x5e, 0, 0, 0, 0x11)
		f = binary.BigEndian.AppendUint16(f, et)
		return append(append(f, marker...), make([]byte, 60)...)
	}
	lldp1 := frame([]byte{0x01, 0x80, 0xc2, 0, 0, 0x0e}, 0x88cc)
	other := frame([]byte{0x02, 0x5e, 0, 0, 0, 0x22}, 0x88b5)
	wrongDA := frame([]byte{0x01, 0x80, 0xc2, 0, 0, 0x0d}, 0x88cc)
	// Both links are up once their static keys are installed and the
	// plaintext ports are let up (a fixed wait lost the frames when B
	// started late on a loaded machine).
	tp.waitLinksUp(20 * time.Second)
	for _, f := range [][]byte{lldp1, other, wrongDA} {
		tx.Send(f)
	}
	tx.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got [][]byte
	for len(got) < 3 {
		if _, _, err := rx.Receive(ctx, func(f []byte) {
			if bytes.Contains(f, marker) {
				got = append(got, append([]byte(nil), f...))
			}
		}); err != nil {
			break
		}
	}
	if len(got) != 3 || !slices.ContainsFunc(got, func(f []byte) bool { return bytes.Equal(f, lldp1) }) {
		t.Fatalf("h2 got %d of 3 frames (the LLDP one unchanged)\nA:\n%s", len(got), tp.log("a"))
	}
	inClear := 0
	for _, f := range stopLine() {
		switch {
		case bytes.Equal(f, lldp1):
			inClear++
		case binary.BigEndian.Uint16(f[12:]) != macsec.EtherType || bytes.Contains(f, marker):
			t.Fatalf("frame in clear on the line that is not the LLDP exception: %x", f[:min(len(f), 40)])
		}
	}
	if inClear != 1 {
		t.Errorf("the LLDP frame crossed the line in clear %d times, want 1", inClear)
	}
	out, err := exec.Command(secwireBinary(t), "show", "macsec", "--socket", tp.socket("a")).CombinedOutput()
	if err != nil {
		t.Fatalf("show macsec: %v\n%s", err, out)
	}
	for _, want := range []string{
		"datapath: software (offload and kernel cannot pass protocols in clear (lldp))",
		"protocols in clear (cross unprotected both ways):",
		"lldp (EtherType 0x88cc to 01:80:c2:00:00:0e, 01:80:c2:00:00:03 or 01:80:c2:00:00:00)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("show macsec lacks %q:\n%s", want, out)
		}
	}
}

// TestDaemonsKeepManagementVLANOffTheLine configures in-band management on
// VLAN 100 of A's plaintext port: h1's VLAN 100 frames never reach the
// line or h2, other VLANs cross.
func TestDaemonsKeepManagementVLANOffTheLine(t *testing.T) {
	needTools(t, "ip", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	cfgA := tp.config("a", tp.keyB, nil)
	c, err := config.Load(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	c.System.Management = &config.Management{Interface: "plain", VLAN: 100, Address: netip.MustParsePrefix("192.0.2.10/24")}
	b, _ := json.Marshal(c)
	if err := os.WriteFile(cfgA, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tp.start("a", cfgA)
	tp.start("b", tp.config("b", tp.keyA, nil))
	tx, rx := tp.hostPorts()
	tp.waitLinksUp(20 * time.Second)
	tagged := func(vlan uint16) []byte {
		f := []byte{0x02, 0x5e, 0, 0, 0, 0x22, 0x02, 0x5e, 0, 0, 0, 0x11, 0x81, 0x00}
		f = binary.BigEndian.AppendUint16(f, vlan)
		f = append(f, 0x08, 0x06)
		return append(append(f, marker...), make([]byte, 60)...)
	}
	for range 5 {
		tx.Send(tagged(100))
		tx.Send(tagged(200))
	}
	tx.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var vlans []uint16
	for ctx.Err() == nil {
		rx.Receive(ctx, func(f []byte) {
			if bytes.Contains(f, marker) && len(f) > 16 {
				vlans = append(vlans, binary.BigEndian.Uint16(f[14:])&0xfff)
			}
		})
	}
	if len(vlans) != 5 || slices.Contains(vlans, 100) {
		t.Fatalf("h2 got VLANs %v, want VLAN 200 five times and never the management VLAN 100", vlans)
	}
	if n := counter(tp.linkStatus("a").DatapathCounters, "ManagementVLANDropped"); n != 5 {
		t.Errorf("A ManagementVLANDropped = %d, want 5", n)
	}
}

// A second daemon on a socket a live daemon answers on is refused before
// it touches a port, and `show` keeps talking to the first; without a
// daemon, show says so in plain words.
func TestSecondDaemonRefusesALiveSocket(t *testing.T) {
	needTools(t, "ip", "ping", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	cfg := tp.config("a", tp.keyB, nil)
	tp.start("a", cfg)
	empty := filepath.Join(tp.dir, "empty.json")
	os.WriteFile(empty, []byte(`{"system": {"hostname": "second"}}`), 0o600)
	out, err := exec.Command(secwireBinary(t), "daemon", "--config", empty, "--socket", tp.socket("a"),
		"--state", filepath.Join(tp.dir, "state-2")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another secwire daemon is running on management socket "+tp.socket("a")) ||
		!strings.Contains(string(out), "--socket PATH and --state DIR") {
		t.Fatalf("second daemon: %v\n%s", err, out)
	}
	show, err := exec.Command(secwireBinary(t), "show", "interfaces", "--socket", tp.socket("a")).CombinedOutput()
	if err != nil || !strings.Contains(string(show), "link0") {
		t.Fatalf("show after the refused second daemon: %v\n%s", err, show)
	}
	tp.stop("a")
	show, err = exec.Command(secwireBinary(t), "show", "mka", "--socket", tp.socket("a")).CombinedOutput()
	if err == nil || !strings.Contains(string(show), "no secwire daemon is running: "+tp.socket("a")+" does not exist") ||
		strings.Contains(string(show), "dial unix") || strings.Contains(string(show), "http://") {
		t.Fatalf("show without a daemon: %v\n%s", err, show)
	}
}
