package watchdog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/health"
)

type countingDevice struct{ n atomic.Int64 }

func (d *countingDevice) Keepalive() error    { d.n.Add(1); return nil }
func (d *countingDevice) Consequence() string { return "the test notices" }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The device is fed while every check passes, not while one fails, and
// again once it passes; the log says why it stopped.
func TestFeedOnlyWhileHealthy(t *testing.T) {
	var wedged atomic.Bool
	mon := &health.Monitor{}
	mon.Add("links", func(time.Time) error { return nil })
	mon.Add("mka", func(time.Time) error {
		if wedged.Load() {
			return errors.New("link l0 MKA has made no progress for 12s")
		}
		return nil
	})
	dev := &countingDevice{}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Feed(ctx, dev, mon, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
		close(done)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: not within 5 s", what)
			}
		}
	}
	waitFor("fed while healthy", func() bool { return dev.n.Load() >= 3 })
	wedged.Store(true)
	waitFor("starvation logged", func() bool { return strings.Contains(logs.String(), "not fed") })
	n := dev.n.Load()
	time.Sleep(100 * time.Millisecond)
	if got := dev.n.Load(); got != n {
		t.Fatalf("fed %d times while the KaY was wedged", got-n)
	}
	if !strings.Contains(logs.String(), `watchdog: not fed: mka: link l0 MKA has made no progress for 12s; unless this clears, the test notices`) {
		t.Errorf("log: %s", logs.String())
	}
	if c := strings.Count(logs.String(), "not fed"); c != 1 {
		t.Errorf("starvation logged %d times in 100 ms, want once (then every 10 s)", c)
	}
	wedged.Store(false)
	waitFor("fed again", func() bool { return dev.n.Load() > n })
	waitFor("recovery logged", func() bool { return strings.Contains(logs.String(), "fed again") })
	cancel()
	<-done
}

func TestSoftExpiresUnfed(t *testing.T) {
	s := &Soft{Timeout: 50 * time.Millisecond}
	start := time.Now()
	err := s.Run(context.Background())
	if !errors.Is(err, ErrExpired) || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("unfed soft watchdog: %v after %s", err, time.Since(start))
	}
	// Fed, it runs until its context ends.
	s = &Soft{Timeout: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			s.Keepalive()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("fed soft watchdog: %v", err)
	}
}
