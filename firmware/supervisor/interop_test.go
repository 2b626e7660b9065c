package supervisor_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/qemu/guest"
)

// TestMKAInteropWithWPASupplicant runs, in a QEMU guest with the pinned
// Debian kernel, a secwire link (the supervisor with the software
// datapath) against Debian's wpa_supplicant keying the kernel's macsec
// driver:
//
//	h1 —[h1-eth0|sw-plain]— secwire —[sw-line|wp-line]— wpa_supplicant + macsec0 (ns peer)
//
// The CA must secure with secwire as key server, and again with
// wpa_supplicant as key server, and ping must pass both ways through the
// encrypted link. With different CAKs nothing may cross. Every case runs
// on both of secwire's datapaths available here: the Go software one and
// the kernel's macsec driver (what auto picks on veths).
func TestMKAInteropWithWPASupplicant(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.KernelDatapathModules, Files: []string{"/usr/bin/ip", "/usr/sbin/wpa_supplicant", "/usr/bin/ping"}, MemoryMB: 1024}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin:"+os.Getenv("PATH"))
	os.MkdirAll("/run/netns", 0o755)
	for _, f := range []string{"all", "default"} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644)
	}
	h1, err := netns.Add("h1")
	must(t, err)
	peer, err := netns.Add("peer")
	must(t, err)
	run(t, "ip", "link", "add", "sw-plain", "type", "veth", "peer", "name", "h1-eth0", "netns", h1.Name)
	run(t, "ip", "link", "add", "sw-line", "address", "02:5e:00:00:0a:01", "type", "veth", "peer", "name", "wp-line", "netns", peer.Name)
	run(t, "ip", "link", "set", "sw-plain", "up")
	run(t, "ip", "link", "set", "sw-line", "up")
	must(t, h1.IP("link", "set", "dev", "h1-eth0", "up"))
	must(t, h1.IP("addr", "add", "10.9.0.1/24", "dev", "h1-eth0"))
	must(t, peer.IP("link", "set", "dev", "wp-line", "address", "02:5e:00:00:0b:01"))
	must(t, peer.IP("link", "set", "dev", "wp-line", "up"))

	cak := strings.Repeat("c4", 16)
	ckn := strings.Repeat("5e", 16)
	cases := []interopCase{
		{"secwire is key server", 1, 100, cak, true, true},
		{"wpa_supplicant is key server", 200, 1, cak, true, false},
		{"CAK mismatch", 1, 100, strings.Repeat("d5", 16), false, false},
	}
	for _, dp := range []string{"software", "auto"} {
		t.Run("datapath "+dp, func(t *testing.T) { interopCases(t, dp, cases, h1, peer, cak, ckn) })
	}
}

type interopCase struct {
	name              string
	swPrio, wpPrio    int
	wpCAK             string
	wantSecured       bool
	wantKeyServerHere bool
}

func interopCases(t *testing.T, datapath string, cases []interopCase, h1, peer *netns.NS, cak, ckn string) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "wpa.conf")
			must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`ap_scan=0
eapol_version=3
network={
	key_mgmt=NONE
	eapol_flags=0
	macsec_policy=1
	mka_cak=%s
	mka_ckn=%s
	mka_priority=%d
}
`, c.wpCAK, ckn, c.wpPrio)), 0o600))
			wlog, _ := os.Create(filepath.Join(dir, "wpa.log"))
			wpa := peer.Command("wpa_supplicant", "-i", "wp-line", "-D", "macsec_linux", "-c", conf)
			wpa.Stdout, wpa.Stderr = wlog, wlog
			must(t, wpa.Start())
			defer func() {
				wpa.Process.Kill()
				wpa.Wait()
				out, _ := exec.Command("ip", "-n", "peer", "-o", "link", "show", "type", "macsec").Output()
				for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if f := strings.Fields(l); len(f) > 1 {
						peer.IP("link", "del", "dev", strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
					}
				}
				if t.Failed() {
					b, _ := os.ReadFile(filepath.Join(dir, "wpa.log"))
					t.Logf("wpa_supplicant:\n%s", b)
				}
			}()

			prio := c.swPrio
			cfg := &config.Config{Links: []config.Link{{
				Name: "l0", Plain: "sw-plain", Line: "sw-line", Cipher: macsec.GCMAES128, Datapath: config.Datapath(datapath),
				MKA: &config.MKA{Priority: &prio, KeyChain: []config.CAKEntry{{CKN: mustHex(ckn), CAK: cak}}},
			}}}
			ctx, cancel := context.WithCancel(context.Background())
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			sup, err := supervisor.Start(ctx, cfg, supervisor.Options{Log: log, StateDir: dir})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			defer func() { sup.Stop(); cancel() }()
			if b := sup.Status().Links[0].Backend; (datapath == "auto") != (b == "kernel") {
				t.Fatalf("datapath %s runs on %q", datapath, b)
			}

			if !c.wantSecured {
				time.Sleep(12 * time.Second) // two MKA life times
				st := sup.Status().Links[0]
				if st.MKA.Latest != nil || st.EncodingSA != -1 {
					t.Fatalf("a SAK with a mismatched CAK: %+v", st.MKA)
				}
				if ping(h1, "10.9.0.2") {
					t.Fatal("ping crossed")
				}
				for _, ctr := range st.DatapathCounters {
					if (ctr.Name == "PlainOut" || ctr.Name == "LineOut") && ctr.Value != 0 {
						t.Errorf("%s = %d with no CA", ctr.Name, ctr.Value)
					}
				}
				bad := st.MKA.Drops[0]
				if bad.Reason != "bad-icv" || bad.Count == 0 {
					t.Errorf("wpa_supplicant's MKPDUs not counted as bad ICV: %+v", st.MKA.Drops)
				}
				return
			}
			deadline := time.Now().Add(30 * time.Second)
			var macsecIf string
			for time.Now().Before(deadline) {
				st := sup.Status().Links[0]
				if macsecIf == "" {
					out, _ := exec.Command("ip", "-n", "peer", "-o", "link", "show", "type", "macsec").Output()
					if f := strings.Fields(string(out)); len(f) > 1 {
						macsecIf = strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
						must(t, peer.IP("addr", "add", "10.9.0.2/24", "dev", macsecIf))
						must(t, peer.IP("link", "set", "dev", macsecIf, "up"))
					}
				}
				if st.MKA != nil && st.MKA.Latest != nil && st.MKA.Latest.Transmit && macsecIf != "" {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			st := sup.Status().Links[0]
			if st.MKA == nil || st.MKA.Latest == nil || !st.MKA.Latest.Transmit || macsecIf == "" {
				t.Fatalf("CA not secured within 30 s (macsec interface %q): %+v", macsecIf, st.MKA)
			}
			ks := st.MKA.CAs[0].KeyServer
			if (ks == "this end") != c.wantKeyServerHere {
				t.Errorf("key server %q", ks)
			}
			t.Logf("secured: key server %s, KN %d, AN %d", ks, st.MKA.Latest.KN, st.MKA.Latest.AN)
			if !waitPing(h1, "10.9.0.2") {
				t.Fatalf("no ping from behind secwire to the wpa_supplicant peer: %+v", sup.Status().Links[0].DatapathCounters)
			}
			if !ping(peer, "10.9.0.1") {
				t.Fatal("no ping from the wpa_supplicant peer to behind secwire")
			}
			st = sup.Status().Links[0]
			for _, ctr := range st.TxSCCounters {
				if ctr.Name == "OutPktsEncrypted" && ctr.Value == 0 {
					t.Error("nothing was encrypted")
				}
			}
		})
	}
}

func ping(ns *netns.NS, addr string) bool {
	out, err := ns.Command("ping", "-c", "3", "-i", "0.2", "-W", "2", addr).CombinedOutput()
	fmt.Fprintf(os.Stderr, "ping %s: %s\n", addr, strings.TrimSpace(string(out)))
	return err == nil
}

func waitPing(ns *netns.NS, addr string) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ping(ns, addr) {
			return true
		}
	}
	return false
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
