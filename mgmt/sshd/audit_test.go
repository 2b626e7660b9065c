package sshd

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/mgmt/audit"
)

// hostileName is the user name of flood connection i: up to 100 KiB,
// with newlines that would start forged entries, NULs and ANSI escapes.
func hostileName(i int) string {
	forged := "\n2026-11-22T10:00:00Z user=admin from=console commit\n    + set system users mallory role admin\n"
	switch i % 5 {
	case 0:
		return strings.Repeat("A\x1b[2J\x00"+forged, 100<<10/len(forged))[:100<<10]
	case 1:
		return "root" + forged
	case 2:
		return "\x1b]0;owned\x07\x1b[31madmin\x1b[0m\r"
	case 3:
		return "x\x00y\u2028" + strings.Repeat("é", 5000)
	default:
		return fmt.Sprintf("guess%d", i)
	}
}

// 10,000 failed logins with hostile names from many addresses: the
// audit log gets no forged entry and no raw control character, the
// failure records stay within their documented bounds, and a commit made
// afterwards is shown by `show log audit`.
func TestAuditSurvivesLoginFlood(t *testing.T) {
	ts := startServer(t, nil)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ts.clock.Store(t0.UnixNano())
	const attempts = 10000
	var sent atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				from := fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
				auth := ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
					sent.Add(1)
					return "wrong password", nil
				}), 6)
				if c, err := ts.dial(hostileName(i), []ssh.AuthMethod{auth}, from); err == nil {
					c.Close()
					t.Errorf("a hostile name logged in from %s", from)
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; sent.Load() < attempts; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("%d failed logins in %s", sent.Load(), time.Since(start).Round(time.Millisecond))

	raw, err := os.ReadFile(ts.audit.Path)
	if err != nil {
		t.Fatal(err)
	}
	checkAuditLines(t, string(raw), t0)

	// A minute later the administrator commits; show log audit has it.
	ts.clock.Store(t0.Add(61 * time.Second).UnixNano())
	admin := ts.login(t, "admin")
	if out := run(t, admin, "configure; set system hostname after-flood; commit"); !strings.Contains(out, "commit complete") {
		t.Fatalf("commit after the flood:\n%s", out)
	}
	shown := run(t, admin, "show log audit")
	if !regexp.MustCompile(`(?m)^2026-11-22T10:01:01Z user=admin from=ssh 127\.0\.0\.1:\d+ commit\n    \+ set system hostname after-flood$`).MatchString(shown) {
		t.Fatalf("show log audit lacks the commit:\n%s", shown)
	}
	if strings.ContainsAny(shown, "\x00\x1b\x07\r") {
		t.Fatalf("show log audit shows raw control characters:\n%q", shown)
	}
	if !strings.Contains(shown, "more failed or refused logins from") {
		t.Errorf("show log audit lacks the summary of the failures not recorded one by one:\n%s", shown)
	}
}

var (
	stamp    = regexp.MustCompile(`^2026-11-22T10:0\d:\d\dZ user=`)
	failure  = regexp.MustCompile(`^ from=ssh (127\.1\.\d+\.\d+):\d+ (login failed \(password\)|login refused: .+|connection refused: .+)$`)
	plainRec = regexp.MustCompile(`^(-|[a-z0-9_.-]+)( from=\S+ \S+)? `)
)

// checkAuditLines parses every line: a record starts with the time and a
// user field (a valid name, or a quoted one); failure records come from
// the flood's addresses, within the per-source and total bounds.
func checkAuditLines(t *testing.T, log string, t0 time.Time) {
	t.Helper()
	for i, c := range []byte(log) {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Fatalf("raw control character %#02x at byte %d of the audit log", c, i)
		}
	}
	perSource := map[string]int{}
	total := 0
	for n, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if strings.HasPrefix(line, "    ") {
			t.Fatalf("line %d: a detail line in a log with no commit yet (forged?): %q", n+1, line)
		}
		loc := stamp.FindStringIndex(line)
		if loc == nil {
			t.Fatalf("line %d does not start a record: %.200q", n+1, line)
		}
		rest := line[loc[1]:]
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("line %d: bad quoted user: %.200q", n+1, rest)
			}
			rest = regexp.MustCompile(`^\.\.\.\(\d+ bytes\)`).ReplaceAllString(rest[len(q):], "")
		} else if m := plainRec.FindString(rest); m != "" {
			user := strings.Fields(m)[0]
			if user != "system" && !strings.HasPrefix(user, "guess") && user != "-" {
				t.Fatalf("line %d: a record for %q (forged?): %q", n+1, user, line)
			}
			if user == "system" {
				continue // the summary of suppressed failures
			}
			rest = rest[len(user):]
		} else {
			t.Fatalf("line %d: bad user field: %.200q", n+1, line)
		}
		m := failure.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("line %d is not a failure record of the flood: %.300q", n+1, line)
		}
		perSource[m[1]]++
		total++
	}
	for src, n := range perSource {
		if n > audit.FailuresPerSource {
			t.Errorf("%d failure records for %s in one minute, the bound is %d", n, src, audit.FailuresPerSource)
		}
	}
	if total > audit.FailuresTotal || total == 0 {
		t.Errorf("%d failure records in one minute, want 1..%d", total, audit.FailuresTotal)
	}
	t.Logf("%d failure records from %d addresses in the flood's minute", total, len(perSource))
}
