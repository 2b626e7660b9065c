package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/internal/modroot"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/qemu/guest"
)

// guestBinary is where kernel-datapath tests find the daemon in a guest.
const guestBinary = "/bin/secwire"

// runInGuest boots the pinned Debian kernel with its macsec driver and
// runs the calling test there with the secwire binary, ip, ping and
// ethtool. It returns true on the host.
func runInGuest(t *testing.T) bool {
	t.Helper()
	return runInGuestFor(t, 15*time.Minute)
}

// runInGuestFor is runInGuest with another time limit for the whole VM.
func runInGuestFor(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	var files []string
	if !guest.Inside() {
		root, err := modroot.Dir()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(root, "build", "guest", "secwire")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		files = []string{bin + ":" + guestBinary[1:], "/usr/bin/ip", "/usr/bin/ping", "/usr/sbin/ethtool"}
	}
	if guest.Run(t, guest.Config{Modules: guest.KernelDatapathModules, Files: files, MemoryMB: 1024, Timeout: timeout}) {
		return true
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin:"+os.Getenv("PATH"))
	os.MkdirAll("/run/netns", 0o755)
	for _, f := range []string{"all", "default"} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644)
	}
	return false
}

// linkStatus reads side's link through the management socket.
func (tp *topo) linkStatus(side string) supervisor.LinkStatus {
	tp.t.Helper()
	st, err := ctl.Status(tp.socket(side))
	if err != nil || len(st.Links) != 1 {
		tp.t.Fatalf("status of %s: %v\n%s", side, err, tp.log(side))
	}
	return st.Links[0]
}

func counter(cs supervisor.Counters, name string) uint64 {
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

// rawCapture records every frame on ifname in ns until stop is called,
// and a little after so that frames in flight arrive.
func rawCapture(t *testing.T, ns *netns.NS, ifname string) (stop func() [][]byte) {
	t.Helper()
	c, err := netns.StartCapture(ns, ifname, nil)
	if err != nil {
		t.Fatalf("capture on %s: %v", ifname, err)
	}
	t.Cleanup(func() { c.Stop() })
	return func() [][]byte {
		time.Sleep(300 * time.Millisecond)
		return c.Stop()
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestKernelDatapathStaticKeys runs two appliances on the kernel's macsec
// driver (datapath auto picks it: veths have no offload) with static keys,
// for every cipher suite, in a QEMU guest. Ping crosses; the line carries
// only MACsec with no plaintext marker; the kernel's counters appear in
// the status under the IEEE names.
func TestKernelDatapathStaticKeys(t *testing.T) {
	if runInGuest(t) {
		return
	}
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tp := newTopoNoTools(t, suite)
			for _, side := range []string{"a", "b"} {
				rx := tp.keyB
				if side == "b" {
					rx = tp.keyA
				}
				tp.start(side, tp.config(side, rx, func(l *config.Link) { l.Workers = 0 }))
			}
			st := tp.linkStatus("a")
			if st.Backend != "kernel" {
				t.Fatalf("backend %q (%s), want kernel", st.Backend, st.Datapath)
			}
			t.Logf("show: datapath %s", st.Datapath)
			stop := rawCapture(t, tp.b, "line")
			if !tp.waitPing("10.9.0.2") {
				t.Fatalf("no ping through two kernel datapaths\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
			}
			if !tp.ping("10.9.0.2", 5) {
				t.Fatal("ping lost frames")
			}
			frames := stop()
			if len(frames) < 10 {
				t.Fatalf("captured only %d frames on the line", len(frames))
			}
			checkLine(t, frames)
			for _, f := range frames {
				if binary.BigEndian.Uint16(f[12:]) != macsec.EtherType {
					t.Fatalf("non-MACsec frame on a static-key line: %x", f[:min(len(f), 32)])
				}
			}
			st = tp.linkStatus("a")
			if n := counter(st.TxSCCounters, "OutPktsEncrypted"); n < 6 {
				t.Errorf("kernel OutPktsEncrypted = %d", n)
			}
			if len(st.RxSCs) != 1 || len(st.RxSCs[0].SAs) != 1 || counter(st.RxSCs[0].SAs[0].Counters, "InPktsOK") < 6 {
				t.Errorf("kernel receive SA counters: %+v", st.RxSCs)
			}
			if len(st.TxSAs) != 1 || st.TxSAs[0].NextPN < 7 || !strings.HasPrefix(st.TxSAs[0].Key, "sha256:") {
				t.Errorf("kernel transmit SA: %+v", st.TxSAs)
			}
			// Stopping the daemon removes the macsec link and bridge.
			tp.stop("a")
			out, _ := tp.a.Command("ip", "-o", "link", "show").CombinedOutput()
			if strings.Contains(string(out), "macsec") || strings.Contains(string(out), "brms") {
				t.Errorf("links left after stop:\n%s", out)
			}
		})
	}
}

// TestKernelDatapathMKA keys the kernel datapath with MKA: every suite
// secures and passes traffic, a rekey loses nothing, and with a different
// CAK nothing crosses (the plaintext port stays down, the line carries
// only MKPDUs). One case pairs the kernel datapath with the Go one.
func TestKernelDatapathMKA(t *testing.T) {
	if runInGuest(t) {
		return
	}
	type tc struct {
		suite     macsec.CipherSuite
		bDatapath string
	}
	var cases []tc
	for _, s := range macsec.CipherSuites {
		cases = append(cases, tc{s, "auto"})
	}
	cases = append(cases, tc{macsec.GCMAESXPN256, "software"})
	for _, c := range cases {
		t.Run(c.suite.String()+"/b-"+c.bDatapath, func(t *testing.T) {
			tp := newTopoNoTools(t, c.suite)
			chain := []config.CAKEntry{cak("kernel-ca", c.suite.KeyLen(), "4b")}
			tp.start("a", tp.mkaConfig("a", chain, nil))
			tp.start("b", tp.mkaConfig("b", chain, func(l *config.Link) { l.Datapath = config.Datapath(c.bDatapath) }))
			took := tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
			t.Logf("secured in %s; A: %s; B: %s", took.Round(time.Millisecond), tp.linkStatus("a").Datapath, tp.linkStatus("b").Datapath)
			if b := tp.linkStatus("a").Backend; b != "kernel" {
				t.Fatalf("A runs %q, want kernel", b)
			}
			if b := tp.linkStatus("b").Backend; (c.bDatapath == "software") != (b == "software") {
				t.Fatalf("B runs %q for datapath %s", b, c.bDatapath)
			}
			if !tp.waitPing("10.9.0.2") {
				t.Fatalf("no ping\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
			}
			// Five rekeys: the AN goes round all four values, so every SA
			// the kernel holds is retired and its AN reused once.
			flow := tp.pingFlow(1200) // 12 s at 100 pps
			for range 5 {
				kn := tp.mkaStatus("a").Latest.KN
				if err := ctl.Rekey(tp.socket("a"), "link0"); err != nil {
					t.Fatalf("rekey: %v", err)
				}
				tp.waitMKA("new SAK in use", 15*time.Second, func(a, b *mka.Status) bool {
					return secured(a) && secured(b) && a.Latest.KN > kn && a.Old == nil && b.Old == nil
				})
			}
			if st := tp.linkStatus("a"); len(st.TxSAs) != 1 || len(st.RxSCs) != 1 || len(st.RxSCs[0].SAs) != 1 {
				t.Errorf("after 5 rekeys the kernel holds TX SAs %+v, RX SCs %+v; want one of each", st.TxSAs, st.RxSCs)
			}
			sent, got := flow()
			t.Logf("5 rekeys under a 100 pps ping: %d/%d received", got, sent)
			if got != sent {
				t.Errorf("lost %d of %d pings across rekeys on the kernel datapath", sent-got, sent)
			}
		})
	}
	t.Run("CAK mismatch", func(t *testing.T) {
		tp := newTopoNoTools(t, macsec.GCMAES128)
		tp.start("a", tp.mkaConfig("a", []config.CAKEntry{cak("kernel-ca", 16, "4b")}, nil))
		tp.start("b", tp.mkaConfig("b", []config.CAKEntry{cak("kernel-ca", 16, "5c")}, nil))
		stop := rawCapture(t, tp.b, "line")
		if tp.ping("10.9.0.2", 3) {
			t.Fatal("ping crossed with different CAKs")
		}
		time.Sleep(4 * time.Second)
		frames := stop()
		checkLine(t, frames)
		for _, f := range frames {
			if et := binary.BigEndian.Uint16(f[12:]); et != 0x888e {
				t.Fatalf("frame other than an MKPDU on the line with no CA: %#04x", et)
			}
		}
		st := tp.linkStatus("a")
		if st.Backend != "kernel" || st.EncodingSA != -1 || st.Plain.Up {
			t.Errorf("backend %s, encoding SA %d, plaintext port up %v", st.Backend, st.EncodingSA, st.Plain.Up)
		}
		if n := counter(st.DatapathCounters, "LineOut"); n != 0 {
			t.Errorf("LineOut = %d with no CA", n)
		}
		if st.MKA.Drops[0].Reason != "bad-icv" || st.MKA.Drops[0].Count == 0 {
			t.Errorf("bad ICVs not counted: %+v", st.MKA.Drops)
		}
	})
}

// TestKernelDatapathAgainstIPMACsec runs one appliance on the kernel
// datapath against a peer keyed by hand with iproute2's `ip macsec`
// (static keys, every suite): the peer is configured through iproute2,
// not through secwire's netlink client.
func TestKernelDatapathAgainstIPMACsec(t *testing.T) {
	if runInGuest(t) {
		return
	}
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tp := newTopoNoTools(t, suite)
			// B is the hand-keyed peer: no daemon, a macsec link on its line
			// port with 10.9.0.2, instead of the h2 host.
			ip := func(args ...string) {
				t.Helper()
				if out, err := tp.b.Command("ip", args...).CombinedOutput(); err != nil {
					t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			ip("link", "add", "link", "line", "macsec0", "type", "macsec", "port", "1", "cipher", suite.String(),
				"encrypt", "on", "send_sci", "on", "replay", "on", "window", "64")
			sa := func(ssci string) []string {
				if suite.XPN() {
					return []string{"xpn", "1", "ssci", ssci, "salt", "0102030405060708090a0b0c", "on"}
				}
				return []string{"pn", "1", "on"}
			}
			ip(append(append([]string{"macsec", "add", "macsec0", "tx", "sa", "0"}, sa("2")...), "key", "01", tp.keyB)...)
			ip("macsec", "add", "macsec0", "rx", "port", "1", "address", tp.macA)
			ip(append(append([]string{"macsec", "add", "macsec0", "rx", "port", "1", "address", tp.macA, "sa", "0"}, sa("1")...), "key", "02", tp.keyA)...)
			ip("addr", "add", "10.9.0.2/24", "dev", "macsec0")
			ip("link", "set", "macsec0", "up")
			tp.start("a", tp.config("a", tp.keyB, func(l *config.Link) { l.Workers = 0 }))
			if st := tp.linkStatus("a"); st.Backend != "kernel" {
				t.Fatalf("backend %q", st.Backend)
			}
			stop := rawCapture(t, tp.b, "line")
			if !tp.waitPing("10.9.0.2") {
				out, _ := tp.b.Command("ip", "-s", "macsec", "show").CombinedOutput()
				t.Fatalf("no ping to the ip-macsec peer\n%s\nA:\n%s", out, tp.log("a"))
			}
			checkLine(t, stop())
		})
	}
}

// TestKernelDatapathRestartAfterKill kills a daemon on the kernel
// datapath with SIGKILL, so it cannot clean up: its macsec link and bridge
// stay and keep forwarding. The restarted daemon must remove them, come
// back on the kernel datapath (not fall back to software because the
// link's name is taken) and secure again. The netlink state is checked
// before and after.
func TestKernelDatapathRestartAfterKill(t *testing.T) {
	if runInGuest(t) {
		return
	}
	tp := newTopoNoTools(t, macsec.GCMAES256)
	chain := []config.CAKEntry{cak("restart-ca", 32, "6d")}
	cfgA := tp.mkaConfig("a", chain, nil)
	tp.start("a", cfgA)
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("no ping before the kill\nA:\n%s", tp.log("a"))
	}
	before := kernelDatapathState(t, tp.a)
	t.Logf("before: %+v", before)
	if before.link == 0 || before.bridge == 0 || len(before.txSAs) != 1 {
		t.Fatalf("kernel datapath not as expected before the kill: %+v", before)
	}

	tp.kill("a")
	stale := kernelDatapathState(t, tp.a)
	if stale.link != before.link || stale.bridge != before.bridge {
		t.Fatalf("SIGKILL did not leave the datapath behind (%+v): the test would prove nothing", stale)
	}

	tp.start("a", cfgA)
	st := tp.linkStatus("a")
	t.Logf("restarted: datapath %s", st.Datapath)
	if st.Backend != "kernel" {
		t.Fatalf("restarted on %q (%s), want the kernel datapath again\n%s", st.Backend, st.Datapath, tp.log("a"))
	}
	for _, want := range []string{"removed the bridge a previous run left behind", "removed the macsec link a previous run left behind"} {
		if !strings.Contains(tp.log("a"), want) {
			t.Errorf("log does not say %q:\n%s", want, tp.log("a"))
		}
	}
	took := tp.waitMKA("CA secured after the restart", 30*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	t.Logf("secured again %s after the restart", took.Round(time.Millisecond))
	if !tp.waitPing("10.9.0.2") || !tp.ping("10.9.0.2", 5) {
		t.Fatalf("no ping after the restart\nA status: %+v\nB status: %+v\nA:\n%s\nB:\n%s", tp.linkStatus("a"), tp.linkStatus("b"), tp.log("a"), tp.log("b"))
	}
	after := kernelDatapathState(t, tp.a)
	t.Logf("after: %+v", after)
	switch {
	case after.link == 0 || after.link == before.link:
		t.Errorf("macsec link ifindex %d, want a new one (stale was %d)", after.link, before.link)
	case after.bridge == 0 || after.bridge == before.bridge:
		t.Errorf("bridge ifindex %d, want a new one (stale was %d)", after.bridge, before.bridge)
	case after.macsecLinks != 1:
		t.Errorf("%d macsec links on the line port, want 1", after.macsecLinks)
	case !slices.Equal(after.bridgePorts, []string{"msline", "plain"}):
		t.Errorf("bridge ports %v, want msline and plain", after.bridgePorts)
	case len(after.txSAs) != 1 || after.txSAs[0] == before.txSAs[0]:
		t.Errorf("transmit SA keys %v, want one new SAK (before: %v)", after.txSAs, before.txSAs)
	}
}

type datapathState struct {
	link, bridge int      // ifindexes of msline and brmsline, 0 when absent
	macsecLinks  int      // macsec links on the line port
	bridgePorts  []string // ports of brmsline, sorted
	txSAs        []string // key IDs of the transmit SAs of msline
}

// kernelDatapathState reads the kernel datapath's interfaces and SAs in
// ns over netlink.
func kernelDatapathState(t *testing.T, ns *netns.NS) datapathState {
	t.Helper()
	var s datapathState
	err := ns.Do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		line, err := netlink.LinkByName("line")
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			switch {
			case a.Name == "msline":
				s.link = a.Index
			case a.Name == "brmsline":
				s.bridge = a.Index
			}
			if l.Type() == "macsec" && a.ParentIndex == line.Attrs().Index {
				s.macsecLinks++
			}
		}
		for _, l := range links {
			if s.bridge != 0 && l.Attrs().MasterIndex == s.bridge {
				s.bridgePorts = append(s.bridgePorts, l.Attrs().Name)
			}
		}
		slices.Sort(s.bridgePorts)
		if s.link == 0 {
			return nil
		}
		nl, err := macsecnl.Dial()
		if err != nil {
			return err
		}
		defer nl.Close()
		y, err := nl.Get(s.link)
		if err != nil {
			return err
		}
		for _, sa := range y.TxSAs {
			s.txSAs = append(s.txSAs, fmt.Sprintf("%x", sa.KeyID[:4]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("netlink state in %s: %v", ns.Name, err)
	}
	return s
}
