package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/offload/macsec"
)

// principalCA is the CKN of the CA whose SAKs key the link, and whether
// it is the fallback CA.
func principalCA(m *mka.Status) (ckn string, fallback bool) {
	if m == nil {
		return "", false
	}
	for _, ca := range m.CAs {
		if ca.Principal {
			return ca.CKN, ca.Fallback
		}
	}
	return "", false
}

// A key rotation botched at one end: B's primary CAK differs, so the link
// secures on the fallback CA, and `show mka` says so. Fixing B's primary
// over SSH (a commit applied in place) moves the link back to the primary
// CA while a ping runs, without losing one.
func TestMKAFallbackCAK(t *testing.T) {
	needTools(t, "ip", "ping", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAESXPN256)
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	users := []config.User{{Name: "admin", Role: "admin", Password: hash}}
	good, fb := cak("primary", 32, "5a"), cak("fallback", 32, "f0")
	fallback := func(l *config.Link) {
		l.MKA.Fallback = &config.FallbackKey{CKN: fb.CKN, CAK: fb.CAK}
	}
	tp.startWithSSH("a", tp.mkaConfig("a", []config.CAKEntry{good}, fallback), users)
	tp.startWithSSH("b", tp.mkaConfig("b", []config.CAKEntry{cak("primary", 32, "6b")}, fallback), users)
	onFallback := func(m *mka.Status) bool { ckn, f := principalCA(m); return secured(m) && f && ckn == fb.CKN.String() }
	tp.waitMKA("secured on the fallback CA", 20*time.Second, func(a, b *mka.Status) bool { return onFallback(a) && onFallback(b) })
	show := func(side string) string {
		out, err := exec.Command(secwireBinary(t), "show", "mka", "--socket", tp.socket(side)).CombinedOutput()
		if err != nil {
			t.Fatalf("show mka: %v\n%s", err, out)
		}
		return string(out)
	}
	out := show("b")
	for _, want := range []string{"status: SECURED", "CA CKN " + fb.CKN.String() + ": SECURED, FALLBACK key, principal", "CA CKN " + good.CKN.String() + ": not secured"} {
		if !strings.Contains(out, want) {
			t.Errorf("show mka on B, on the fallback, lacks %q:\n%s", want, out)
		}
	}
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping on the fallback CA")
	}

	done := tp.pingFlow(1500)
	c, err := dialSSH(t, tp.b, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, tp.log("b"))
	}
	defer c.Close()
	s, _ := c.NewSession()
	cmt, _ := s.CombinedOutput(fmt.Sprintf("configure; set links link0 mka key-chain %s cak %s; commit comment \"fix the rotation\"", good.CKN, good.CAK))
	s.Close()
	if !strings.Contains(string(cmt), "commit complete") || !strings.Contains(string(cmt), "changed in place") {
		t.Fatalf("commit on B:\n%s", cmt)
	}
	onPrimary := func(m *mka.Status) bool {
		ckn, f := principalCA(m)
		return secured(m) && !f && ckn == good.CKN.String() && m.Latest != nil && m.Latest.CKN == good.CKN.String() && m.Old == nil
	}
	took := tp.waitMKA("back on the primary CA", 20*time.Second, func(a, b *mka.Status) bool { return onPrimary(a) && onPrimary(b) })
	t.Logf("back on the primary CA %s after the commit", took.Round(time.Millisecond))
	sent, recv := done()
	t.Logf("ping across the move: %d sent, %d received", sent, recv)
	if sent < 1000 || recv != sent {
		t.Fatalf("%d of %d pings lost moving from the fallback CA to the primary\n%s\nA:\n%s\nB:\n%s", sent-recv, sent, tp.counters(), tp.log("a"), tp.log("b"))
	}
	out = show("b")
	for _, want := range []string{"status: SECURED", "CA CKN " + good.CKN.String() + ": SECURED, principal"} {
		if !strings.Contains(out, want) {
			t.Errorf("show mka on B, back on the primary, lacks %q:\n%s", want, out)
		}
	}
	for _, side := range []string{"a", "b"} {
		if !strings.Contains(tp.log(side), "key chain CA is live again: the fallback CAK gives way") ||
			!strings.Contains(tp.log(side), "fallback CAK takes over") {
			t.Errorf("%s's log does not say when the fallback took over and gave way:\n%s", side, tp.log(side))
		}
	}
}
