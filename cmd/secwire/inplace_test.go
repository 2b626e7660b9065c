package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/offload/macsec"
)

// caOf is A's view of the CA: its member identifier and the SAK in use.
func caOf(m *mka.Status) (mi string, kn uint32, sak string) {
	if m == nil || len(m.CAs) == 0 || m.Latest == nil {
		return "", 0, ""
	}
	return m.CAs[len(m.CAs)-1].MI, m.Latest.KN, m.Latest.SAK
}

// Two MKA daemons are secured; over SSH, A takes one commit per in-place
// setting. After each, A's CA keeps its MI and SAK (KN), both plaintext
// ports keep their carrier (no bounce of the customer's router port),
// and the commit says it changed the link in place, or did not touch it.
// A change that does need a restart then shows up in the same checks.
func TestCommitsApplyInPlace(t *testing.T) {
	needTools(t, "ip", "ping", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	users := []config.User{{Name: "admin", Role: "admin", Password: hash}}
	for _, side := range []string{"a", "b"} {
		tp.startWithSSH(side, tp.mkaConfig(side, []config.CAKEntry{cak("in-place", 16, "7c")}, nil), users)
	}
	tp.waitMKA("CA secured", 20*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, tp.log("a"))
	}
	defer c.Close()
	cli := func(line string) string {
		s, _ := c.NewSession()
		defer s.Close()
		out, _ := s.CombinedOutput(line)
		return string(out)
	}
	mi, kn, sak := caOf(tp.mkaStatus("a"))
	plainA, plainB := carrierChanges(t, tp.a, "plain"), carrierChanges(t, tp.b, "plain")
	same := func(what string) {
		t.Helper()
		m := tp.mkaStatus("a")
		gotMI, gotKN, gotSAK := caOf(m)
		if !secured(m) || gotMI != mi || gotKN != kn || gotSAK != sak {
			t.Fatalf("%s: the CA changed: MI %s KN %d SAK %s, was MI %s KN %d SAK %s (secured %v)\n%s",
				what, gotMI, gotKN, gotSAK, mi, kn, sak, secured(m), tp.log("a"))
		}
		if a, b := carrierChanges(t, tp.a, "plain"), carrierChanges(t, tp.b, "plain"); a != plainA || b != plainB {
			t.Fatalf("%s: a plaintext port bounced: carrier changes A %s->%s, B %s->%s", what, plainA, a, plainB, b)
		}
	}
	for _, change := range []string{
		"set system hostname enc-a",
		"set system users olga role operator; set system users olga password " + hash,
		"set system ssh idle-timeout 30m",
		"set system management interface mgmt0 address 192.0.2.10/24",
		"set links link0 mka rekey-interval 1h",
		"set links link0 mka priority 5", // still below B's 20: A stays key server
		"set links link0 mka eapol-destination 01:80:c2:00:00:00",
		"set links link0 mka icv-indicator",
		"set links link0 mka transmit-interval 1s",
		// A key for later joins the chain; the running CA goes on.
		"set links link0 mka key-chain 0c0d cak " + strings.Repeat("3e", 16) + "; set links link0 mka key-chain 0c0d start 2099-01-01T00:00:00Z",
	} {
		isMKA := strings.Contains(change, " mka ")
		check := cli("configure; " + change + "; commit check")
		out := cli("configure; " + change + "; commit")
		if !strings.Contains(out, "commit complete") || strings.Contains(check, "will restart") || strings.Contains(out, "restarted") {
			t.Fatalf("%s:\ncommit check:\n%s\ncommit:\n%s", change, check, out)
		}
		if isMKA && (!strings.Contains(check, "link link0 will change in place") || !strings.Contains(out, "link link0 changed in place")) {
			t.Fatalf("%s: not reported as in place:\n%s\n%s", change, check, out)
		}
		same(change)
	}
	if out := cli("clear counters"); !strings.Contains(out, "counters cleared") {
		t.Fatalf("clear counters: %s", out)
	}
	same("clear counters")
	// Several hello times later the CA is still the same one: nothing
	// was lost in a peer's view either.
	time.Sleep(7 * time.Second)
	same("seven seconds later")
	if m := tp.mkaStatus("a"); m.Priority != 5 {
		t.Errorf("A's priority is %d after the in-place change, want 5", m.Priority)
	}

	// The daemon's log is in the SSH CLI, in-place changes included.
	if out := cli("show log | match \"key server priority changed\""); !strings.Contains(out, "from=10 to=5") {
		t.Errorf("show log over SSH:\n%s", out)
	}
	// A rekey from the host's command line says what it did.
	req, err := exec.Command(secwireBinary(t), "request", "mka", "rekey", "link0", "--socket", tp.socket("a")).CombinedOutput()
	if err != nil || !strings.Contains(string(req), "link link0: rekey requested") {
		t.Fatalf("request mka rekey: %v\n%s", err, req)
	}
	tp.waitMKA("a new SAK", 20*time.Second, func(a, b *mka.Status) bool {
		_, k, _ := caOf(a)
		return secured(a) && secured(b) && k > kn
	})

	// A change that needs a restart says so before and after, and the
	// same checks see it: a new MI and a bounce.
	check := cli("configure; set links link0 replay-window 32; commit check")
	out := cli("configure; set links link0 replay-window 32; commit")
	if !strings.Contains(check, "link link0 will restart") || !strings.Contains(out, "link link0 restarted for: replay-window") {
		t.Fatalf("replay-window:\n%s\n%s", check, out)
	}
	tp.waitMKA("CA secured again", 20*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if newMI, _, _ := caOf(tp.mkaStatus("a")); newMI == mi {
		t.Errorf("the restarted link kept MI %s", mi)
	}
	if a := carrierChanges(t, tp.a, "plain"); a == plainA {
		t.Errorf("the restart did not bounce A's plaintext port (carrier changes %s)", a)
	}
}
