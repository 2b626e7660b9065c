package timesync

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
)

type fakeSetter struct {
	mu          sync.Mutex
	steps, slew []time.Duration
}

func (f *fakeSetter) Step(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.steps = append(f.steps, d)
	return nil
}

func (f *fakeSetter) Slew(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slew = append(f.slew, d)
	return nil
}

type fakeRTC struct {
	t      time.Time
	writes int
}

func (r *fakeRTC) Read() (time.Time, error) { return r.t, nil }
func (r *fakeRTC) Set(t time.Time) error    { r.t = t; r.writes++; return nil }

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func servers(a ...string) *config.Config {
	c := &config.Config{System: config.System{NTP: &config.NTP{}}}
	for _, s := range a {
		c.System.NTP.Server = append(c.System.NTP.Server, config.NTPServer{Address: netip.MustParseAddr(s)})
	}
	return c
}

// The appliance: a large offset is stepped, logged and audited, and the
// RTC written; a small one is slewed. The better stratum wins.
func TestStepSlewAndAudit(t *testing.T) {
	set, rtc, lb := &fakeSetter{}, &fakeRTC{}, &logBuf{}
	offsets := map[string]Sample{
		"192.0.2.1": {Offset: 2 * time.Hour, Stratum: 2},
		"192.0.2.2": {Offset: 3 * time.Hour, Stratum: 3},
	}
	var audited []time.Duration
	s := New(Options{Setter: set, RTC: rtc, Log: slog.New(slog.NewTextHandler(lb, nil)),
		OnStep: func(by time.Duration, _, _ time.Time) { audited = append(audited, by) },
		Query: func(_ context.Context, srv config.NTPServer, _ func() time.Time) (Sample, error) {
			if sm, ok := offsets[srv.Address.String()]; ok {
				return sm, nil
			}
			return Sample{}, errors.New("no answer from " + srv.Address.String())
		}})
	s.Apply(servers("192.0.2.1", "192.0.2.2", "192.0.2.9"))
	if s.Synced() {
		t.Fatal("synchronised before asking anyone")
	}
	if !s.Sync(t.Context()) || !s.Synced() {
		t.Fatal("not synchronised")
	}
	if len(set.steps) != 1 || set.steps[0] != 2*time.Hour || len(audited) != 1 || rtc.writes != 1 {
		t.Fatalf("steps %v audited %v rtc writes %d; want one 2h step, audited, RTC written", set.steps, audited, rtc.writes)
	}
	if !strings.Contains(lb.String(), "clock stepped") {
		t.Errorf("step not logged:\n%s", lb.String())
	}
	st := s.Status()
	if st.Source != "192.0.2.1" || st.Stratum != 2 || !st.Servers[0].Reachable || st.Servers[2].Reachable ||
		!strings.Contains(st.Servers[2].Error, "no answer") {
		t.Errorf("status: %+v", st)
	}
	offsets["192.0.2.1"] = Sample{Offset: 3 * time.Millisecond, Stratum: 2}
	s.Sync(t.Context())
	if len(set.slew) != 1 || set.slew[0] != 3*time.Millisecond || len(audited) != 1 || rtc.writes != 1 {
		t.Fatalf("slews %v audited %v rtc writes %d: want one 3ms slew, nothing more audited, no RTC write within 11 min", set.slew, audited, rtc.writes)
	}
	if time.Until(s.Now()).Abs() > time.Second {
		t.Error("with a Setter, Now must be the system clock")
	}
}

// The host daemon keeps its own view of the clock: Now moves, the host's
// clock and RTC are never touched.
func TestHostDaemonKeepsItsOwnClock(t *testing.T) {
	s := New(Options{Query: func(_ context.Context, _ config.NTPServer, now func() time.Time) (Sample, error) {
		// A server an hour ahead of the host's clock.
		return Sample{Offset: time.Now().Add(time.Hour).Sub(now()), Stratum: 1}, nil
	}})
	s.Apply(servers("192.0.2.1"))
	start := time.Now()
	s.Sync(t.Context())
	if d := s.Now().Sub(start.Add(time.Hour)); d < -time.Second || d > time.Second {
		t.Fatalf("Now is %s off the server", d)
	}
	// Monotonic durations are unaffected by the step.
	a := s.Now()
	time.Sleep(10 * time.Millisecond)
	if d := s.Now().Sub(a); d < 10*time.Millisecond || d > time.Second {
		t.Errorf("elapsed %s across readings", d)
	}
}

func TestNeverSynchronised(t *testing.T) {
	s := New(Options{Query: func(context.Context, config.NTPServer, func() time.Time) (Sample, error) {
		return Sample{}, errors.New("no answer")
	}, HostSynced: func() bool { return true }})
	if !s.Synced() {
		t.Error("no servers configured: the host's own synchronisation counts")
	}
	s.Apply(servers("192.0.2.1"))
	if s.Sync(t.Context()) || s.Synced() {
		t.Error("synchronised with no answer")
	}
}

func TestSetFromRTC(t *testing.T) {
	now := time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	rtc := &fakeRTC{t: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
	set := &fakeSetter{}
	got, err := SetFromRTC(rtc, set, now)
	if err != nil || !got.Equal(rtc.t) || len(set.steps) != 1 || set.steps[0] != rtc.t.Sub(now) {
		t.Fatalf("got %s, %v, steps %v", got, err, set.steps)
	}
	rtc.t = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := SetFromRTC(rtc, set, now); err == nil || len(set.steps) != 1 {
		t.Errorf("an unset RTC: %v, steps %v", err, set.steps)
	}
}
