package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/mgmt/show"
	"github.com/secwire/secwire/offload/macsec"
)

// A wedged KaY (the test hook hangs it inside its lock) on a host daemon:
// show mka and the CLI prompt keep answering within a second, with the
// link's status marked as not answering; a commit that restarts the
// links fails after the supervisor's stop timeout, naming the KaY,
// instead of hanging; /health names the KaY; and the daemon's watchdog
// ends it. Restarted, it secures again. (The VM test shows the same on
// the appliance, where the hardware watchdog resets the box.)
func TestWatchdogWedgedKaY(t *testing.T) {
	needTools(t, "ip", "ping")
	tp := newTopoNoTools(t, macsec.GCMAES256)
	chain := []config.CAKEntry{cak("watchdog", 32, "7d")}
	cfgA := tp.mkaConfig("a", chain, nil)
	tp.addAdmin(cfgA)
	tp.startArgs("a", cfgA, "--ssh", "127.0.0.1:2222", "--test-hooks", "--watchdog", "30s")
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if err := ctl.Health(tp.socket("a")); err != nil {
		t.Fatalf("health before the stall: %v", err)
	}
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh to A: %v\n%s", err, tp.log("a"))
	}
	defer c.Close()
	in, scr := interactiveShell(t, c)
	scr.WaitFor(t, "admin@secwire> ")

	stalled := time.Now()
	if err := ctl.StallMKA(tp.socket("a"), "link0", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every second: show mka over the socket, and a prompt on the
	// interactive session, each within 1 s. Once /health names the KaY, a
	// commit that restarts the links waits for the KaY to stop, at most
	// the stop timeout, then fails and says what is stuck.
	sawStale, sawHealth := false, ""
	var commitOut chan string
	for i := 0; time.Since(stalled) < 30*time.Second && len(commitOut) == 0; i++ {
		start := time.Now()
		st, err := ctl.Status(tp.socket("a"))
		took := time.Since(start)
		if err != nil || took > showDeadline {
			t.Fatalf("show mka on A with a wedged KaY: %v after %s", err, took)
		}
		var out bytes.Buffer
		show.MKA(&out, st)
		sawStale = sawStale || strings.Contains(out.String(), "NOT ANSWERING")
		marker := strings.Count(scr.String(), "admin@secwire> ")
		start = time.Now()
		io.WriteString(in, "\r")
		for strings.Count(scr.String(), "admin@secwire> ") <= marker && time.Since(start) < 2*showDeadline {
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(start); took > showDeadline {
			t.Fatalf("the CLI prompt took %s with a wedged KaY and a commit under way", took)
		}
		if err := ctl.Health(tp.socket("a")); err != nil && sawHealth == "" {
			sawHealth = err.Error()
			t.Logf("health %s after the stall: %v", time.Since(stalled).Round(time.Second), err)
			commitOut = make(chan string, 1)
			go func() {
				start := time.Now()
				out := sshRun(t, c, "configure; set links link0 replay-window 128; commit")
				commitOut <- time.Since(start).Round(time.Millisecond).String() + "\n" + out
			}()
		}
		time.Sleep(time.Second)
	}
	if !sawStale {
		t.Error("show mka never said that the wedged link is not answering")
	}
	// A rekey request is refused in bounded time, not hung.
	start := time.Now()
	if err := ctl.Rekey(tp.socket("a"), "link0"); err == nil || !strings.Contains(err.Error(), "key agreement does not answer") || time.Since(start) > 3*time.Second {
		t.Errorf("rekey of the wedged KaY: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	if !strings.Contains(sawHealth, "link link0 MKA has made no progress") {
		t.Errorf("health with a wedged KaY: %q", sawHealth)
	}
	if commitOut == nil {
		t.Fatalf("health never reported the wedged KaY\n%s", tp.log("a"))
	}
	select {
	case out := <-commitOut:
		t.Logf("commit with a wedged KaY took %s", out)
		if !strings.Contains(out, "link link0 is wedged: it did not stop within 10s (still running: MKA)") {
			t.Errorf("commit with a wedged KaY did not say what is stuck:\n%s", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the commit hangs behind the wedged KaY\n%s", tp.stacks("a"))
	}
	// The watchdog ends the daemon: 10 s without progress, then 30 s unfed.
	exited := make(chan error, 1)
	go func() { exited <- tp.daemons["a"].Wait() }()
	select {
	case err := <-exited:
		delete(tp.daemons, "a")
		t.Logf("daemon A ended %s after the stall: %v", time.Since(stalled).Round(time.Second), err)
		// The feeder names the KaY: stale, or (when the commit began first)
		// not stopping.
		if err == nil || !regexp.MustCompile(`watchdog: not fed: links: .*(link link0 MKA has made no progress|link link0 is wedged: .*MKA)`).MatchString(tp.log("a")) ||
			!strings.Contains(tp.log("a"), "unless this clears, the watchdog ends the daemon 30s after the last feed") ||
			!strings.Contains(tp.log("a"), "watchdog expired") {
			var lines []string
			for _, l := range strings.Split(tp.log("a"), "\n") {
				if strings.Contains(l, "watchdog") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("daemon A did not end by its watchdog:\n%s", strings.Join(lines, "\n"))
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the watchdog did not end daemon A\n%s", tp.log("a"))
	}
	// Restarted, it secures again with B, which never stopped.
	restart := time.Now()
	tp.startArgs("a", cfgA, "--test-hooks", "--watchdog", "30s")
	took := tp.waitMKA("CA secured after the restart", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	t.Logf("secured %s after the restart (%s after the daemon started)", time.Since(restart).Round(time.Millisecond), took.Round(time.Millisecond))
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("no traffic after the restart\nA:\n%s", tp.log("a"))
	}
	if err := ctl.Health(tp.socket("a")); err != nil {
		t.Errorf("health after the restart: %v", err)
	}
}
