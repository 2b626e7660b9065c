package access

import (
	"io"
	"runtime"
	"strings"
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
