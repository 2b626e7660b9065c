package console

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/internal/termtest"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/audit"
	"github.com/secwire/secwire/mgmt/cli"
)

// screen collects what an interactive session shows.
type screen = termtest.Screen

const password = "console secret 1"

// startConsole runs a console with one administrator on pipes.
func startConsole(t *testing.T) (in io.Writer, scr *screen, env *cli.Env) {
	t.Helper()
	dir := t.TempDir()
	hash, err := config.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(config.Config{System: config.System{Users: []config.User{{Name: "admin", Role: "admin", Password: hash}}}})
	cfg := filepath.Join(dir, "secwire.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := commit.Open(ctx, commit.Options{ConfigPath: cfg, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	env = &cli.Env{Manager: m, Audit: &audit.Log{Path: filepath.Join(dir, "audit.log")}}
	inR, inW := io.Pipe()
	scr = &screen{}
	c := &Console{Env: env, Limiter: access.NewLimiter(), Sessions: &access.Sessions{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, struct {
			io.Reader
			io.Writer
		}{inR, scr})
	}()
	t.Cleanup(func() { cancel(); inW.Close(); <-done; m.Stop() })
	return inW, scr, env
}

// After a logout the next console login starts with an empty history,
// and a CAK typed under an abbreviated keyword is masked in it.
func TestConsoleHistoryIsPerLogin(t *testing.T) {
	in, scr, _ := startConsole(t)
	cak := strings.Repeat("9f", 16)
	login := func(at int) int {
		at = scr.WaitFrom(t, at, "secwire login: ")
		io.WriteString(in, "admin\r")
		at = scr.WaitFrom(t, at, "Password: ")
		io.WriteString(in, password+"\r")
		return scr.WaitFrom(t, at, "admin@secwire> ")
	}
	at := login(0)
	io.WriteString(in, "configure\r")
	at = scr.WaitFrom(t, at, "admin@secwire# ")
	io.WriteString(in, "set links l0 mka key-chain 01 ca "+cak+"\r")
	at = scr.WaitFrom(t, at, "admin@secwire# ")
	io.WriteString(in, "\x1b[A") // up: the line comes back, the CAK masked
	at = scr.WaitFrom(t, at, "set links l0 mka key-chain 01 ca <secret>")
	io.WriteString(in, "\x15exit discard\rexit\r")
	at = scr.WaitFrom(t, at, "Exiting configuration mode")
	at = login(at)
	io.WriteString(in, "\x1b[A\x1b[A\r") // up twice, then Enter
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(scr.String()[at:], "Exiting") || strings.Contains(scr.String()[at:], "login: ") {
		t.Fatalf("the new login recalled the previous user's commands:\n%s", scr.String()[at:])
	}
	after := scr.WaitFrom(t, at, "admin@secwire> ")
	if recalled := scr.String()[at:after]; strings.ContainsAny(recalled, "abcdefghijklmnopqrstuvwxyz") && recalled != "\r\nadmin@secwire> " {
		t.Errorf("the new login recalled a line from the previous user's history: %q", recalled)
	}
	if n := strings.Count(scr.String(), cak); n != 1 {
		t.Fatalf("the CAK appeared %d times on the console (once: as typed)", n)
	}
}
