package store

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHistoryKeepsRollbacks(t *testing.T) {
	h := Open(filepath.Join(t.TempDir(), "secwire.json"))
	if b, err := h.Active(); b != nil || err != nil {
		t.Fatalf("empty store: %q, %v", b, err)
	}
	for i := 0; i < Keep+3; i++ {
		if err := h.Save([]byte(fmt.Sprint("v", i)), Meta{Time: time.Date(2030, 1, 1, 0, i, 0, 0, time.UTC), User: fmt.Sprint("u", i), From: "ssh", Comment: fmt.Sprint("change ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	last := Keep + 2
	for n := 0; n <= Keep; n++ {
		b, err := h.Version(n)
		if err != nil || string(b) != fmt.Sprint("v", last-n) {
			t.Fatalf("rollback %d = %q, %v; want v%d", n, b, err, last-n)
		}
	}
	if _, err := h.Version(Keep + 1); err == nil || !strings.Contains(err.Error(), "want 0..10") {
		t.Fatalf("rollback past the kept commits: %v", err)
	}
	if len(h.List()) != Keep+1 {
		t.Fatalf("List: %v", h.List())
	}
	// Each entry shows when its version was committed, by whom and why.
	for _, e := range h.List() {
		if want := time.Date(2030, 1, 1, 0, last-e.N, 0, 0, time.UTC); !e.Time.Equal(want) {
			t.Errorf("rollback %d committed at %v, want %v", e.N, e.Time, want)
		}
		if e.User != fmt.Sprint("u", last-e.N) || e.Comment != fmt.Sprint("change ", last-e.N) || e.From != "ssh" {
			t.Errorf("rollback %d: %+v", e.N, e)
		}
	}
	// The same content twice (A, B, A): each version keeps its own commit.
	h2 := Open(filepath.Join(t.TempDir(), "c.json"))
	for i, v := range []string{"A", "B", "A"} {
		h2.Save([]byte(v), Meta{Time: time.Date(2030, 1, 1, 0, i, 0, 0, time.UTC), User: fmt.Sprint("u", i)})
	}
	if l := h2.List(); len(l) != 3 || l[0].User != "u2" || l[1].User != "u1" || l[2].User != "u0" {
		t.Errorf("A, B, A: %+v", l)
	}
	if err := h.Wipe(); err != nil || len(h.List()) != 0 {
		t.Fatalf("Wipe: %v, left %v", err, h.List())
	}
}

// The writer child: saves two large, distinguishable configs in turn
// until it is killed.
func TestMain(m *testing.M) {
	if p := os.Getenv("SECWIRE_STORE_WRITER"); p != "" {
		h := Open(p)
		for i := 0; ; i++ {
			h.Save(version(i%2), Meta{Time: time.Now()})
		}
	}
	os.Exit(m.Run())
}

func version(i int) []byte {
	return bytes.Repeat([]byte{'A' + byte(i)}, 1<<20) // 1 MiB: a kill lands mid-write
}

// TestTornWriteKeepsConfig kills a writer at random points in Save and
// checks that the active config and every rollback copy are always one
// whole version, never a mix or a truncation.
func TestTornWriteKeepsConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secwire.json")
	if err := Open(p).Save(version(0), Meta{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	whole := func(name string, b []byte) {
		t.Helper()
		if !bytes.Equal(b, version(0)) && !bytes.Equal(b, version(1)) {
			t.Fatalf("%s is torn: %d bytes, starts %q", name, len(b), b[:min(len(b), 8)])
		}
	}
	kills, midWrite := 0, 0
	for round := 0; round < 20; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SECWIRE_STORE_WRITER="+p)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+round*7) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills++
		if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
			midWrite++ // killed between create and rename
		}
		h := Open(p) // as the firmware does at boot
		b, err := h.Active()
		if err != nil || b == nil {
			t.Fatalf("round %d: active config unreadable: %v", round, err)
		}
		whole(p, b)
		for _, e := range h.List() {
			b, err := h.Version(e.N)
			if err != nil {
				t.Fatal(err)
			}
			whole(fmt.Sprint("rollback ", e.N), b)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
			t.Fatalf("Open left temporary files: %v", left)
		}
	}
	if midWrite == 0 {
		t.Fatal("no kill landed in the middle of a write: the test proved nothing")
	}
	t.Logf("%d writers killed, %d of them mid-write; the config was whole every time", kills, midWrite)
}
