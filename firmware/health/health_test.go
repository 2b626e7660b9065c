package health

import (
	"errors"
	"testing"
	"time"
)

func TestStaleAndMonitor(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var b Beat
	if err := Stale("loop", b.Last(), now, StaleAfter); err == nil || err.Error() != "loop has not started" {
		t.Fatalf("never marked: %v", err)
	}
	b.Mark(now.Add(-StaleAfter))
	if err := Stale("loop", b.Last(), now, StaleAfter); err != nil {
		t.Fatalf("marked %s ago: %v", StaleAfter, err)
	}
	b.Mark(now.Add(-12 * time.Second))
	if err := Stale("loop", b.Last(), now, StaleAfter); err == nil || err.Error() != "loop has made no progress for 12s" {
		t.Fatalf("marked 12 s ago: %v", err)
	}
	m := &Monitor{}
	m.Add("a", func(time.Time) error { return nil })
	if err := m.Check(now); err != nil {
		t.Fatal(err)
	}
	m.Add("b", func(time.Time) error { return errors.New("wedged") })
	m.Add("c", func(time.Time) error { return errors.New("also wedged") })
	if err := m.Check(now); err == nil || err.Error() != "b: wedged\nc: also wedged" {
		t.Fatalf("check: %q", err)
	}
}

func TestReadRuntime(t *testing.T) {
	r := ReadRuntime()
	if r.Goroutines < 1 || r.Threads < 1 || r.RSSBytes < 1<<20 {
		t.Fatalf("runtime: %+v", r)
	}
}
