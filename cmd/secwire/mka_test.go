package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/offload/macsec"
)

// mkaConfig writes side's config keyed by MKA with chain; A has the lower
// priority value, so A is the key server.
func (tp *topo) mkaConfig(side string, chain []config.CAKEntry, mutate func(*config.Link)) string {
	prio := 10
	if side == "b" {
		prio = 20
	}
	return tp.config(side, "", func(l *config.Link) {
		l.Static = nil
		l.LinkFault = nil // default: the plaintext port follows the CA
		l.Workers = 1
		l.MKA = &config.MKA{KeyChain: chain, Priority: &prio}
		if mutate != nil {
			mutate(l)
		}
	})
}

func cak(ckn string, n int, fill string) config.CAKEntry {
	return config.CAKEntry{CKN: config.Hex(ckn), CAK: strings.Repeat(fill, n)}
}

// mkaStatus reads side's MKA status through the management socket.
func (tp *topo) mkaStatus(side string) *mka.Status {
	st, err := ctl.Status(tp.socket(side))
	if err != nil || len(st.Links) != 1 {
		return nil
	}
	return st.Links[0].MKA
}

func secured(m *mka.Status) bool {
	return m != nil && m.Secured && m.Latest != nil && m.Latest.Transmit
}

func (tp *topo) waitMKA(what string, within time.Duration, cond func(a, b *mka.Status) bool) time.Duration {
	tp.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond(tp.mkaStatus("a"), tp.mkaStatus("b")) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tp.t.Fatalf("%s: not within %s\nA:\n%s\nB:\n%s", what, within, tp.log("a"), tp.log("b"))
	return 0
}

// Two daemons form a secure CA with MKA for every cipher suite, within
// ten seconds of starting, and carry traffic encrypted.
func TestMKADaemonsSecureEverySuite(t *testing.T) {
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tp := newTopo(t, suite)
			chain := []config.CAKEntry{cak("secwire-lab", suite.KeyLen(), "5a")}
			// A provider that filters the default group address and
			// EtherType: with GCM-AES-256, MKPDUs go to broadcast with
			// the alternate EtherType.
			dst, et := []byte{0x01, 0x80, 0xc2, 0, 0, 3}, []byte{0x88, 0x8e}
			var mutate func(*config.Link)
			if suite == macsec.GCMAES256 {
				dst, et = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []byte{0x87, 0x6f}
				mutate = func(l *config.Link) {
					l.EAPOLEtherType = altEAPOL
					l.MKA.Destination = config.Destination{MAC: config.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
				}
			}
			stop := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
			tp.start("a", tp.mkaConfig("a", chain, mutate))
			tp.start("b", tp.mkaConfig("b", chain, mutate))
			took := tp.waitMKA("CA secured", 10*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
			t.Logf("%s: CA secured %s after both daemons were up", suite, took.Round(time.Millisecond))
			if !tp.waitPing("10.9.0.2") || !tp.ping("10.9.0.2", 5) {
				t.Fatalf("no ping across the MKA-keyed link\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
			}
			frames := stop()
			checkLine(t, frames)
			eapol := 0
			for _, f := range frames {
				if bytes.Equal(f[12:14], et) {
					if !bytes.Equal(f[:6], dst) {
						t.Errorf("MKPDU to %x, want %x", f[:6], dst)
					}
					eapol++
				}
			}
			if eapol < 2 {
				t.Errorf("%d MKPDUs on the line", eapol)
			}
			out, err := exec.Command(secwireBinary(t), "show", "mka", "--socket", tp.socket("b")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "SECURED") || !strings.Contains(string(out), "live") {
				t.Fatalf("show mka: %v\n%s", err, out)
			}
			if strings.Contains(string(out), strings.Repeat("5a", 16)) {
				t.Fatal("show mka printed the CAK")
			}
			t.Logf("show mka on B:\n%s", out)
		})
	}
}

var pingLoss = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingFlow runs a bounded ping at 100 packets a second from h1 and
// returns a function that waits for it and reports sent and received.
func (tp *topo) pingFlow(count int) func() (int, int) {
	cmd := tp.h1.Command("ping", "-q", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "2", "10.9.0.2")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	return func() (int, int) {
		cmd.Wait()
		m := pingLoss.FindStringSubmatch(out.String())
		if m == nil {
			tp.t.Fatalf("ping: %s", out.String())
		}
		var sent, recv int
		fmt.Sscan(m[1], &sent)
		fmt.Sscan(m[2], &recv)
		return sent, recv
	}
}

// Twenty forced rekeys under continuous traffic: not one frame may be
// lost.
func TestMKARekeysLoseNothing(t *testing.T) {
	tp := newTopo(t, macsec.GCMAESXPN256)
	chain := []config.CAKEntry{cak("rekeys", 32, "1f")}
	tp.start("a", tp.mkaConfig("a", chain, nil))
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 10*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping")
	}
	done := tp.pingFlow(3000) // 30 s or more at 100/s
	kn := tp.mkaStatus("a").Latest.KN
	for i := 1; i <= 20; i++ {
		out, err := exec.Command(secwireBinary(t), "request", "mka", "rekey", "link0", "--socket", tp.socket("a")).CombinedOutput()
		if err != nil {
			t.Fatalf("rekey %d: %v\n%s", i, err, out)
		}
		want := kn + uint32(i)
		tp.waitMKA(fmt.Sprintf("rekey %d", i), 10*time.Second, func(a, b *mka.Status) bool {
			return a != nil && b != nil && a.Latest != nil && b.Latest != nil && a.Latest.KN == want && b.Latest.KN == want &&
				a.Latest.Transmit && b.Latest.Transmit && a.Old == nil && b.Old == nil
		})
	}
	if out, err := exec.Command(secwireBinary(t), "request", "mka", "rekey", "link0", "--socket", tp.socket("b")).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "not the key server") {
		t.Errorf("rekey on the non-key-server: %v %s", err, out)
	}
	sent, recv := done()
	t.Logf("20 rekeys: ping %d sent, %d received", sent, recv)
	if sent < 1000 || recv != sent {
		t.Fatalf("20 rekeys under traffic: %d of %d pings lost\n%s\nA:\n%s", sent-recv, sent, tp.counters(), tp.log("a"))
	}
}

// A key chain rollover under continuous traffic: the CA moves from the
// first CAK to the second while both run, and not one frame is lost.
func TestMKAKeyChainRolloverLosesNothing(t *testing.T) {
	tp := newTopo(t, macsec.GCMAES128)
	t0 := time.Now().UTC().Truncate(time.Second)
	first, second := cak("chain-1", 16, "1f"), cak("chain-2", 32, "2e")
	// The second CAK starts at t0+15s, the first expires at t0+25s.
	second.Start = t0.Add(15 * time.Second)
	first.End = t0.Add(25 * time.Second)
	chain := []config.CAKEntry{first, second}
	tp.start("a", tp.mkaConfig("a", chain, nil))
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 10*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if got := tp.mkaStatus("a").Latest.CKN; got != first.CKN.String() {
		t.Fatalf("first SAK from CKN %s", got)
	}
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping")
	}
	// Ping from now (before the second CAK starts) until past t0+28s.
	n := int(time.Until(t0.Add(28*time.Second)) / (10 * time.Millisecond))
	done := tp.pingFlow(n)
	tp.waitMKA("CA rolled over to the second CAK", 40*time.Second, func(a, b *mka.Status) bool {
		return a != nil && b != nil && len(a.CAs) == 1 && len(b.CAs) == 1 &&
			a.CAs[0].CKN == second.CKN.String() && b.CAs[0].CKN == second.CKN.String() && secured(a) && secured(b)
	})
	sent, recv := done()
	t.Logf("key chain rollover: ping %d sent, %d received", sent, recv)
	if recv != sent {
		t.Fatalf("rollover under traffic: %d of %d pings lost\nA:\n%s", sent-recv, sent, tp.log("a"))
	}
	if got := tp.mkaStatus("b").Latest.CKN; got != second.CKN.String() {
		t.Errorf("after the rollover B's SAK is from CKN %s", got)
	}
}

// Different CAKs under the same CKN: the CA never forms, the plaintext
// port stays down, and nothing crosses.
func TestMKACAKMismatchStaysClosed(t *testing.T) {
	tp := newTopo(t, macsec.GCMAES128)
	lineCap := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
	tp.start("a", tp.mkaConfig("a", []config.CAKEntry{cak("same", 16, "01")}, nil))
	tp.start("b", tp.mkaConfig("b", []config.CAKEntry{cak("same", 16, "02")}, nil))
	tp.waitMKA("bad ICVs counted", 10*time.Second, func(a, b *mka.Status) bool {
		return a != nil && b != nil && a.Drops[0].Reason == "bad-icv" && a.Drops[0].Count > 0 && b.Drops[0].Count > 0
	})
	if tp.ping("10.9.0.2", 3) {
		t.Fatal("ping crossed a link whose CAKs differ")
	}
	st, _ := ctl.Status(tp.socket("a"))
	if st.Links[0].Plain.Up || secured(st.Links[0].MKA) {
		t.Errorf("plaintext port up %v, MKA %+v", st.Links[0].Plain.Up, st.Links[0].MKA)
	}
	frames := lineCap()
	checkLine(t, frames)
	for _, f := range frames {
		if f[12] == 0x88 && f[13] == 0xe5 {
			t.Fatalf("a MACsec frame crossed the line without a CA: %x", f[:32])
		}
	}
}

// counters is `show counters` of both daemons, for failure messages.
func (tp *topo) counters() string {
	var b strings.Builder
	for _, side := range []string{"a", "b"} {
		out, _ := exec.Command(secwireBinary(tp.t), "show", "counters", "--socket", tp.socket(side)).CombinedOutput()
		fmt.Fprintf(&b, "%s counters:\n%s", strings.ToUpper(side), out)
	}
	return b.String()
}
