package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/internal/golden"
	"github.com/secwire/secwire/mgmt/audit"
)

var update = flag.Bool("update", false, "rewrite the transcripts in testdata with the actual output")

// Transcript files (testdata/*.txt) are CLI sessions: the test replays the
// directives and checks that the whole output is what the file holds.
//
//	> LINE        run LINE (the file shows the prompt, then the output)
//	?> TEXT       press '?' after TEXT
//	tab> TEXT     press Tab after TEXT
//	input> TEXT   the answer to the next prompt (a secret or yes/no)
//	as> ROLE USER start a new session as this user
//	! expire      the commit confirmed timer fires
//	# ...         a comment
//
// Dates are replaced by YYYY-MM-DD and times of day by HH:MM:SS, and the
// commit manager runs on a pinned clock, so a transcript passes on any day.

type harness struct {
	t       *testing.T
	env     *Env
	out     bytes.Buffer
	sh      *Shell
	inputs  []string
	mu      sync.Mutex
	pending []func()
	unwatch func()
}

func newHarness(t *testing.T, now time.Time) *harness {
	t.Helper()
	needPorts(t)
	h := &harness{t: t}
	dir := t.TempDir()
	audit := &audit.Log{Path: filepath.Join(dir, "audit.log")}
	m, err := commit.Open(context.Background(), commit.Options{
		ConfigPath: filepath.Join(dir, "secwire.json"), StateDir: filepath.Join(dir, "state"), Audit: audit,
		Now: func() time.Time { return now },
		AfterFunc: func(d time.Duration, f func()) func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			i := len(h.pending)
			h.pending = append(h.pending, f)
			return func() bool {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.pending[i] = nil
				return true
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	h.env = &Env{Manager: m, Audit: audit, Uptime: func() time.Duration { return 42 * time.Minute }}
	h.login("admin", "admin")
	return h
}

func (h *harness) login(user, role string) {
	ask := func(p string) (string, error) {
		h.out.WriteString(p + "\n")
		if len(h.inputs) == 0 {
			h.t.Fatalf("prompt %q with no input> queued", p)
		}
		s := h.inputs[0]
		h.inputs = h.inputs[1:]
		return s, nil
	}
	if h.unwatch != nil {
		h.unwatch()
	}
	h.sh = New(h.env, Session{User: user, Role: config.Role(role), From: "test", Out: &h.out, AskSecret: ask, AskLine: ask})
	h.unwatch = h.sh.Watch()
}

// needPorts creates the veth pairs the transcripts name: swt-p0/swt-l0
// (plaintext, line) with peers that nothing listens on, and no addresses.
func needPorts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create veth pairs (make test runs as root in CI)")
	}
	// The names are fixed (the transcripts show them): test processes
	// that use them take turns.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "secwire-swt-ports.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // after the ports are deleted: cleanups run last-in first-out
	// Fixed MACs (no three decimal octets in a row, which the time mask
	// would take for a time) keep show interfaces the same every run.
	for i, p := range []string{"swt-p0", "swt-l0"} {
		exec.Command("ip", "link", "del", p).Run()
		if out, err := exec.Command("ip", "link", "add", p, "address", fmt.Sprintf("02:5e:0a:0b:0c:%02x", i),
			"type", "veth", "peer", "name", p+"x").CombinedOutput(); err != nil {
			t.Fatalf("ip link add %s: %v: %s", p, err, out)
		}
		exec.Command("ip", "link", "set", p+"x", "up").Run()
		t.Cleanup(func() { exec.Command("ip", "link", "del", p).Run() })
	}
}

var (
	clock = regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`)
	date  = regexp.MustCompile(`\b\d{4}-\d\d-\d\d\b`)
)

func (h *harness) run(script string) string {
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		dir, arg, _ := strings.Cut(l, "> ")
		switch {
		case strings.HasPrefix(l, "#"):
			h.out.WriteString(l + "\n")
		case dir == "":
			// The input> lines after a command answer its prompts.
			for _, next := range lines[i+1:] {
				in, ok := strings.CutPrefix(next, "input> ")
				if !ok {
					break
				}
				h.inputs = append(h.inputs, in)
			}
			h.out.WriteString(h.sh.Prompt() + arg + "\n")
			h.sh.Exec(arg)
			if len(h.inputs) > 0 {
				h.t.Fatalf("%q left input unread: %q", arg, h.inputs)
			}
		case dir == "?":
			h.out.WriteString("?> " + arg + "\n")
			h.out.WriteString(h.sh.Help(arg))
		case dir == "tab":
			h.out.WriteString("tab> " + arg + "\n")
			done, list := h.sh.Complete(arg)
			h.out.WriteString("=> " + done + "|\n" + list)
		case dir == "input":
			h.out.WriteString(l + "\n")
		case dir == "as":
			h.out.WriteString(l + "\n")
			role, user, _ := strings.Cut(arg, " ")
			h.login(user, role)
		case l == "! expire":
			h.out.WriteString(l + "\n")
			h.mu.Lock()
			fs := h.pending
			h.pending = nil
			h.mu.Unlock()
			for _, f := range fs {
				if f != nil {
					f()
				}
			}
		}
	}
	return date.ReplaceAllString(clock.ReplaceAllString(h.out.String(), "HH:MM:SS"), "YYYY-MM-DD")
}

// script keeps only the directive lines of a transcript.
func script(transcript string) string {
	var s []string
	for _, l := range strings.Split(transcript, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "! ") || regexp.MustCompile(`^(\?|tab|input|as)?> `).MatchString(l) {
			s = append(s, l)
		} else if m := regexp.MustCompile(`^[a-z]+@[a-z0-9-]+[>#] (.*)$`).FindStringSubmatch(l); m != nil {
			s = append(s, "> "+m[1])
		}
	}
	return strings.Join(s, "\n")
}

func TestTranscripts(t *testing.T) {
	testTranscripts(t, time.Now())
}

// TestTranscriptsOnOtherDates replays the transcripts with the clock in
// other years: nothing in them may depend on the date.
func TestTranscriptsOnOtherDates(t *testing.T) {
	if *update {
		t.Skip("-update rewrites the transcripts from TestTranscripts")
	}
	for _, now := range []time.Time{
		time.Date(2031, 2, 28, 23, 59, 58, 0, time.UTC),
		time.Date(1999, 12, 31, 12, 0, 0, 0, time.Local),
	} {
		t.Run(now.Format("2006"), func(t *testing.T) { testTranscripts(t, now) })
	}
}

func testTranscripts(t *testing.T, now time.Time) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := newHarness(t, now).run(script(string(want)))
			if *update {
				os.WriteFile(f, []byte(got), 0o644)
				return
			}
			if got != string(want) {
				t.Errorf("transcript differs (go test ./mgmt/cli -run Transcripts -update rewrites it; review the diff)\n%s", golden.Diff(string(want), got))
			}
		})
	}
}
