package access

import (
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLimiterBlocksAfterFailures(t *testing.T) {
	l := NewLimiter()
	for i := range l.MaxFails {
		if _, blocked := l.Blocked("192.0.2.1"); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail("192.0.2.1")
	}
	if wait, blocked := l.Blocked("192.0.2.1"); !blocked || wait <= 0 || wait > time.Minute {
		t.Fatalf("after %d failures: blocked %v, wait %v", l.MaxFails, blocked, wait)
	}
	if _, blocked := l.Blocked("192.0.2.2"); blocked {
		t.Fatal("another source is blocked too")
	}
	l.Window = time.Millisecond // the failures age out
	time.Sleep(5 * time.Millisecond)
	if _, blocked := l.Blocked("192.0.2.1"); blocked {
		t.Fatal("still blocked after the window")
	}
}

func TestIdleEndsSessionAndKeepsInput(t *testing.T) {
	pr, pw := io.Pipe()
	fired := make(chan struct{})
	i := NewIdle(pr, 50*time.Millisecond, func() { close(fired) })
	go pw.Write([]byte("show mka\r"))
	b := make([]byte, 64)
	n, err := i.Read(b)
	if err != nil || string(b[:n]) != "show mka\r" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	if _, err := i.Read(b); err != io.EOF {
		t.Fatalf("idle read: %v, want EOF", err)
	}
	select {
	case <-fired:
	default:
		t.Fatal("onIdle not called")
	}
	// The console keeps the reader for the next login.
	i.SetTimeout(0, nil)
	go pw.Write([]byte("admin\r"))
	n, _ = i.Read(b)
	if !strings.HasPrefix(string(b[:n]), "admin") {
		t.Fatalf("after idle: read %q", b[:n])
	}
}

// Parallel attempts from one source cannot get past the limit: each
// reserves its place before its password is checked.
func TestLimiterCountsAttemptsInProgress(t *testing.T) {
	l := NewLimiter()
	var dones []func(bool)
	for range 20 {
		if done, _, blocked := l.Begin("192.0.2.1"); !blocked {
			dones = append(dones, done)
		}
	}
	if len(dones) != l.MaxFails {
		t.Fatalf("%d attempts admitted at once, want %d", len(dones), l.MaxFails)
	}
	for _, d := range dones {
		d(false)
	}
	if _, _, blocked := l.Begin("192.0.2.1"); !blocked {
		t.Fatal("not blocked after the failures")
	}
	if l.Score("192.0.2.1") != l.MaxFails || l.Score("192.0.2.9") != 0 {
		t.Fatalf("scores %d and %d", l.Score("192.0.2.1"), l.Score("192.0.2.9"))
	}
	done, _, _ := l.Begin("192.0.2.2")
	done(true)
	done(false) // a second call changes nothing
	if l.Score("192.0.2.2") != -1 || l.Rank("192.0.2.2") != -1 {
		t.Fatalf("a known good source scores %d and ranks %d, want -1 (ahead of unknown ones)", l.Score("192.0.2.2"), l.Rank("192.0.2.2"))
	}
}

// The gate runs one check at a time, serves the best score first, and
// refuses the worst when its queue is full.
func TestGateOrderAndQueue(t *testing.T) {
	g := &Gate{Queue: 2, Share: 1}
	release := make(chan struct{})
	started := make(chan struct{})
	go g.Do(0, func() bool { close(started); <-release; return true })
	<-started
	var order []int
	var mu sync.Mutex
	results := make(chan error, 4)
	for _, score := range []int{5, 3} {
		go func() {
			_, err := g.Do(score, func() bool { mu.Lock(); order = append(order, score); mu.Unlock(); return true })
			results <- err
		}()
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := g.Do(9, func() bool { return true }); err != ErrBusy {
		t.Fatalf("a worse check with a full queue: %v, want ErrBusy", err)
	}
	go func() {
		_, err := g.Do(0, func() bool { mu.Lock(); order = append(order, 0); mu.Unlock(); return true })
		results <- err
	}() // pushes out score 5
	time.Sleep(20 * time.Millisecond)
	close(release)
	var busy int
	for range 3 {
		if err := <-results; err == ErrBusy {
			busy++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if busy != 1 || len(order) != 2 || order[0] != 0 || order[1] != 3 {
		t.Fatalf("order %v, %d pushed out; want [0 3] and 1", order, busy)
	}
}

// A full admission table takes a newcomer with a better score in place
// of the worst connection, and refuses one that is no better.
func TestAdmissionMakesRoomForBetterSources(t *testing.T) {
	scores := map[string]int{"bad": 5, "good": 0}
	a := &Admission{Max: 2, PerSource: 2, Score: func(s string) int { return scores[s] }}
	dropped := 0
	for range 2 {
		if _, ok := a.Admit("bad", func() { dropped++ }); !ok {
			t.Fatal("refused with room left")
		}
	}
	if _, ok := a.Admit("bad", func() {}); ok {
		t.Fatal("a third from a full source admitted")
	}
	done, ok := a.Admit("good", func() {})
	if !ok || dropped != 1 || a.Len() != 2 {
		t.Fatalf("good newcomer: admitted %v, %d dropped, %d in the table", ok, dropped, a.Len())
	}
	if _, ok := a.Admit("good", func() {}); !ok || dropped != 2 {
		t.Fatalf("second good newcomer: admitted %v, %d dropped", ok, dropped)
	}
	scores["other"] = 0
	if _, ok := a.Admit("other", func() {}); ok {
		t.Fatal("admitted in place of a source that is no worse")
	}
	done()
	done()
	if a.Len() != 1 {
		t.Fatalf("%d in the table after done", a.Len())
	}
}

// A closed Idle's reader goroutine ends once its source is closed, even
// with input nobody will read: an SSH session that ran one command and
// left must not keep a goroutine.
func TestIdleCloseEndsReader(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 20 {
		pr, pw := io.Pipe()
		i := NewIdle(pr, 0, nil)
		go pw.Write([]byte("input nobody reads"))
		time.Sleep(time.Millisecond)
		i.Close()
		pw.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left behind by 20 closed Idles", n-before)
	}
}
