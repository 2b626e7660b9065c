package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/commit"
)

// A log written before records were escaped (raw escapes, a 200 KiB
// line) still shows its later entries, escaped and cut.
func TestTailSurvivesAnyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	raw := "2026-01-01T00:00:00Z user=\x1b[31mroot\x00 login failed\n" + strings.Repeat("x", 200<<10) + "\n2026-01-01T00:00:01Z user=admin commit\n    + set system hostname a\n"
	if err := os.WriteFile(p, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	got := (&Log{Path: p}).Tail(100)
	if len(got) != 4 || got[2] != "2026-01-01T00:00:01Z user=admin commit" || got[3] != "    + set system hostname a" {
		t.Fatalf("tail: %q", got)
	}
	if got[0] != `2026-01-01T00:00:00Z user=\x1b[31mroot\x00 login failed` {
		t.Errorf("control characters not escaped: %q", got[0])
	}
	if len(got[1]) > 1024 || !strings.HasSuffix(got[1], "...(204800 bytes)") {
		t.Errorf("overlong line shown as %d bytes ending %q", len(got[1]), got[1][max(0, len(got[1])-30):])
	}
}

// Failure records are bounded per source and in all per minute; the rest
// are summed up once the minute is over.
func TestFailuresAreBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.log"), Now: func() time.Time { return now }}
	for i := range 100 {
		l.Failure("192.0.2.1", commit.Who{User: "root", From: "ssh 192.0.2.1:1"}, "login failed (password)")
		l.Failure("192.0.2."+string(rune('2'+i%7)), commit.Who{User: "x", From: "ssh"}, "login failed (password)")
	}
	for i := range 100 {
		l.Failure("198.51.100."+string(rune('0'+i%10))+string(rune('0'+i/10)), commit.Who{User: "y"}, "login failed (password)")
	}
	count := func() (per map[string]int, total int) {
		b, _ := os.ReadFile(l.Path)
		per = map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(line, "login failed") {
				total++
				per[strings.Fields(line)[1]]++
			}
		}
		return per, total
	}
	if per, total := count(); total != FailuresTotal || per["user=root"] != FailuresPerSource {
		t.Fatalf("%d records (root: %d), want %d (root: %d)", total, per["user=root"], FailuresTotal, FailuresPerSource)
	}
	now = now.Add(time.Minute)
	l.Failure("192.0.2.1", commit.Who{User: "root"}, "login failed (password)")
	b, _ := os.ReadFile(l.Path)
	if !strings.Contains(string(b), "user=system 90 more failed or refused logins from 192.0.2.1 not recorded one by one (at most 10 per source and 60 in all per minute)") {
		t.Fatalf("no summary for 192.0.2.1:\n%s", b)
	}
	if _, total := count(); total != FailuresTotal+1 {
		t.Fatalf("the new minute's first failure was not recorded (%d records)", total)
	}
}

// Erase wipes the files and records nothing more.
// TestFailureSummaryPrecedesLaterEvents: the summary of a minute's
// suppressed failures is written before the next event of any kind, not
// only before the next failure (which may never come), so the log stays
// in time order and a commit after a flood is the last record.
func TestFailureSummaryPrecedesLaterEvents(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.log"), Now: func() time.Time { return now }}
	for range FailuresPerSource + 5 {
		l.Failure("192.0.2.1", commit.Who{User: "root", From: "ssh 192.0.2.1:1"}, "login failed (password)")
	}
	now = now.Add(61 * time.Second)
	l.Record(commit.Who{User: "admin", From: "console"}, "commit", "+ set system hostname b")
	tail := l.Tail(3)
	if len(tail) != 3 || !strings.Contains(tail[0], "5 more failed or refused logins from 192.0.2.1") || !strings.Contains(tail[1], "user=admin from=console commit") {
		t.Fatalf("want the summary, then the commit; the log ends:\n%s", strings.Join(tail, "\n"))
	}
}

func TestErase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l := &Log{Path: p}
	l.Record(commit.Who{User: "admin"}, "login")
	os.WriteFile(p+".1", []byte("old\n"), 0o600)
	if err := l.Erase(); err != nil {
		t.Fatal(err)
	}
	l.Record(commit.Who{User: "admin"}, "logout")
	for _, f := range []string{p, p + ".1"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Erase: %v", f, err)
		}
	}
}
