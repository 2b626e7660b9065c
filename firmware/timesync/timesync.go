// Package timesync keeps the box's clock: set from the RTC at boot, then
// stepped or slewed from NTP servers (github.com/beevik/ntp), with the
// RTC kept updated. Key chain start/end times and the audit log depend
// on it, so it also says whether the clock was ever synchronised.
//
// On the appliance it sets the system clock. The host daemon never
// touches its host's clock: it keeps its own view (the host clock plus
// the measured offset), which key agreement uses.
package timesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/beevik/ntp"

	"github.com/secwire/secwire/firmware/config"
)

// Setter changes the system clock.
type Setter interface {
	Step(d time.Duration) error // jump by d
	Slew(d time.Duration) error // converge by d gradually
}

// RTC is the battery-backed real-time clock, kept in UTC.
type RTC interface {
	Read() (time.Time, error)
	Set(time.Time) error
}

// Sample is one server's answer.
type Sample struct {
	Offset  time.Duration // server clock minus ours
	RTT     time.Duration
	Stratum int
	// Distance is the root distance: how far the server may be from UTC.
	Distance time.Duration
	NTS      bool // the answer was authenticated with NTS
}

// Thresholds of the clock discipline.
const (
	// StepThreshold: a larger offset is stepped, a smaller one slewed.
	StepThreshold = 128 * time.Millisecond
	// AuditThreshold: a step larger than this is audited.
	AuditThreshold = time.Minute
	// rtcInterval: how often the RTC is written while synchronised, as
	// the kernel's 11-minute mode does.
	rtcInterval = 11 * time.Minute
)

// Options tune the service.
type Options struct {
	// Setter sets the system clock; nil keeps the clock view of this
	// process only (the host daemon).
	Setter Setter
	// RTC is written while synchronised; nil for none.
	RTC RTC
	Log *slog.Logger
	// OnStep is told of every step larger than AuditThreshold (the audit
	// log).
	OnStep func(by time.Duration, from, to time.Time)
	// Query asks a server; nil uses NTP (UDP port 123), with NTS for
	// servers that have it set.
	Query func(ctx context.Context, server config.NTPServer, now func() time.Time) (Sample, error)
	// ConfigDir is where relative NTS CA file names are found.
	ConfigDir string
	// Poll is the interval once synchronised (default 64 s); before the
	// first synchronisation the servers are asked every Retry (2 s).
	Poll, Retry time.Duration
	// HostSynced reports whether the host's own clock is synchronised by
	// someone else; used when no NTP server is configured (the host
	// daemon). Nil: never.
	HostSynced func() bool
}

// Service synchronises the clock.
type Service struct {
	o    Options
	kick chan struct{}

	mu        sync.Mutex
	servers   []config.NTPServer
	nts       map[string]**ntsSession // NTS sessions by server address
	offset    time.Duration           // the process's view: Now is time.Now plus offset (no Setter)
	synced    bool
	last      time.Time // last synchronisation, on our clock
	source    string
	sourceNTS bool
	stratum   int
	measured  time.Duration // offset measured at the last synchronisation
	rtcSet    time.Time
	rtcErr    string
	per       map[string]*ServerStatus
}

// New makes the service; Apply gives it servers and Run runs it.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, kick: make(chan struct{}, 1), per: map[string]*ServerStatus{}, nts: map[string]**ntsSession{}}
	if s.o.Query == nil {
		s.o.Query = s.query
	}
	if s.o.Poll == 0 {
		s.o.Poll = 64 * time.Second
	}
	if s.o.Retry == 0 {
		s.o.Retry = 2 * time.Second
	}
	return s
}

// Now is the synchronised clock. It carries Go's monotonic reading, so
// durations between two readings are unaffected by steps.
func (s *Service) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.offset)
}

// Synced reports whether the clock was synchronised since start (or,
// with no NTP server configured, whether the host's clock is).
func (s *Service) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.servers) == 0 && s.o.HostSynced != nil {
		return s.o.HostSynced()
	}
	return s.synced
}

// Apply takes the NTP servers of c.
func (s *Service) Apply(c *config.Config) {
	var servers []config.NTPServer
	if n := c.System.NTP; n != nil {
		servers = n.Server
	}
	s.mu.Lock()
	changed := !slices.Equal(servers, s.servers)
	s.servers = slices.Clone(servers)
	if changed {
		s.per, s.nts = map[string]*ServerStatus{}, map[string]**ntsSession{}
		for _, srv := range servers {
			s.nts[srv.Address.String()] = new(*ntsSession)
		}
	}
	s.mu.Unlock()
	if changed {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Run asks the servers until ctx ends.
func (s *Service) Run(ctx context.Context) {
	for {
		s.Sync(ctx)
		s.mu.Lock()
		wait := s.o.Poll
		if !s.synced {
			wait = s.o.Retry
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-time.After(wait):
		}
	}
}

// Sync asks every server once and corrects the clock from the best
// answer. It reports whether the clock was synchronised.
func (s *Service) Sync(ctx context.Context) bool {
	s.mu.Lock()
	servers := slices.Clone(s.servers)
	s.mu.Unlock()
	if len(servers) == 0 {
		return false
	}
	type answer struct {
		server string
		sample Sample
		err    error
	}
	answers := make([]answer, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sm, err := s.o.Query(ctx, srv, s.Now)
			answers[i] = answer{srv.Address.String(), sm, err}
		}()
	}
	wg.Wait()
	now := s.Now()
	var best *answer
	s.mu.Lock()
	for i := range answers {
		a := &answers[i]
		st := &ServerStatus{Address: a.server, LastTry: now}
		if old := s.per[a.server]; old != nil {
			st.LastAnswer = old.LastAnswer
		}
		if a.err != nil {
			st.Error = a.err.Error()
		} else {
			st.Reachable, st.Stratum, st.Offset, st.RTT, st.LastAnswer, st.NTS = true, a.sample.Stratum, a.sample.Offset, a.sample.RTT, now, a.sample.NTS
			if best == nil || a.sample.Stratum < best.sample.Stratum ||
				a.sample.Stratum == best.sample.Stratum && a.sample.Distance < best.sample.Distance {
				best = a
			}
		}
		if slices.ContainsFunc(s.servers, func(c config.NTPServer) bool { return c.Address.String() == a.server }) {
			s.per[a.server] = st
		}
	}
	s.mu.Unlock()
	if best == nil {
		s.mu.Lock()
		was := s.synced
		s.mu.Unlock()
		if !was {
			s.log().Warn("NTP: no server answered; the clock is not synchronised", "servers", servers, "err", answers[0].err)
		}
		return false
	}
	s.correct(best.server, best.sample)
	return true
}

// query asks one server: NTS when configured (never falling back to
// plain NTP, which would defeat it), else NTP.
func (s *Service) query(ctx context.Context, srv config.NTPServer, now func() time.Time) (Sample, error) {
	if !srv.NTS {
		return queryNTP(ctx, srv.Address.String(), now)
	}
	s.mu.Lock()
	slot := s.nts[srv.Address.String()]
	s.mu.Unlock()
	if slot == nil {
		slot = new(*ntsSession)
	}
	n := NTSServer{Address: srv.Address.String(), ServerName: srv.ServerName}
	if srv.CAFile != "" {
		n.CAFile = srv.CAFile
		if !filepath.IsAbs(n.CAFile) {
			n.CAFile = filepath.Join(s.o.ConfigDir, n.CAFile)
		}
	}
	return queryNTS(ctx, n, slot, now)
}

// correct applies a measured offset: a step above StepThreshold (logged,
// and audited above AuditThreshold), else a slew.
func (s *Service) correct(server string, sm Sample) {
	d := sm.Offset
	before := s.Now()
	step := d > StepThreshold || d < -StepThreshold
	var err error
	switch {
	case s.o.Setter == nil:
		s.mu.Lock()
		s.offset += d
		s.mu.Unlock()
	case step:
		err = s.o.Setter.Step(d)
	default:
		err = s.o.Setter.Slew(d)
	}
	if m, ok := s.o.Setter.(interface{ MarkSynced() error }); ok && err == nil {
		err = m.MarkSynced()
	}
	if err != nil {
		s.log().Error("NTP: cannot correct the clock", "server", server, "offset", d, "err", err)
		return
	}
	s.mu.Lock()
	first := !s.synced
	s.synced, s.last, s.source, s.stratum, s.measured, s.sourceNTS = true, s.nowLocked(), server, sm.Stratum, d, sm.NTS
	s.mu.Unlock()
	after := before.Add(d)
	switch {
	case step && (d > AuditThreshold || d < -AuditThreshold):
		s.log().Warn("clock stepped", "by", d.Round(time.Millisecond), "from", before.UTC().Format(time.RFC3339), "to", after.UTC().Format(time.RFC3339), "server", server)
		if s.o.OnStep != nil {
			s.o.OnStep(d, before, after)
		}
	case step:
		s.log().Info("clock stepped", "by", d.Round(time.Microsecond), "server", server)
	}
	if first {
		s.log().Info("clock synchronised by NTP", "server", server, "stratum", sm.Stratum, "offset", d.Round(time.Microsecond))
	}
	s.writeRTC(step)
}

// nowLocked is Now with mu held.
func (s *Service) nowLocked() time.Time { return time.Now().Add(s.offset) }

// writeRTC keeps the RTC at the synchronised time: after a step, and
// every rtcInterval.
func (s *Service) writeRTC(stepped bool) {
	if s.o.RTC == nil || s.o.Setter == nil {
		return
	}
	now := s.Now()
	s.mu.Lock()
	due := stepped || s.rtcSet.IsZero() || now.Sub(s.rtcSet) >= rtcInterval
	s.mu.Unlock()
	if !due {
		return
	}
	err := s.o.RTC.Set(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.rtcErr = err.Error()
		return
	}
	s.rtcSet, s.rtcErr = now, ""
}

// SetFromRTC sets the system clock from the RTC, as the boot does before
// NTP can answer. A clock that already reads later than the RTC (the
// kernel set it) is left alone unless the RTC is ahead.
func SetFromRTC(rtc RTC, set Setter, now time.Time) (time.Time, error) {
	t, err := rtc.Read()
	if err != nil {
		return time.Time{}, fmt.Errorf("RTC: %w", err)
	}
	if t.Year() < 2000 {
		return t, fmt.Errorf("RTC reads %s: not set (battery flat?); the clock waits for NTP", t.UTC().Format(time.RFC3339))
	}
	d := t.Sub(now)
	if d > -time.Second && d < time.Second {
		return t, nil
	}
	if err := set.Step(d); err != nil {
		return t, fmt.Errorf("setting the clock from the RTC: %w", err)
	}
	return t, nil
}

// ServerStatus is one server as `show system time` shows it.
type ServerStatus struct {
	Address    string        `json:"address"`
	Reachable  bool          `json:"reachable"`
	Stratum    int           `json:"stratum,omitempty"`
	Offset     time.Duration `json:"offset_ns,omitempty"`
	RTT        time.Duration `json:"rtt_ns,omitempty"`
	LastTry    time.Time     `json:"last_try"`
	LastAnswer time.Time     `json:"last_answer"`
	Error      string        `json:"error,omitempty"`
	NTS        bool          `json:"nts,omitempty"` // the last answer was NTS-authenticated
}

// Status is the clock for `show system time` and the metrics.
type Status struct {
	Now          time.Time      `json:"now"`
	Synchronized bool           `json:"synchronized"`
	SystemClock  bool           `json:"system_clock"` // sets the system clock (the appliance)
	Source       string         `json:"source,omitempty"`
	SourceNTS    bool           `json:"source_nts,omitempty"` // the source is authenticated with NTS
	Stratum      int            `json:"stratum,omitempty"`
	Offset       time.Duration  `json:"offset_ns"` // measured at the last synchronisation
	LastSync     time.Time      `json:"last_sync"`
	RTCWritten   time.Time      `json:"rtc_written"`
	RTCError     string         `json:"rtc_error,omitempty"`
	Servers      []ServerStatus `json:"servers"`
}

// Status reports the clock.
func (s *Service) Status() Status {
	synced := s.Synced()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Now: s.nowLocked(), Synchronized: synced, SystemClock: s.o.Setter != nil, Source: s.source, SourceNTS: s.sourceNTS, Stratum: s.stratum,
		Offset: s.measured, LastSync: s.last, RTCWritten: s.rtcSet, RTCError: s.rtcErr, Servers: []ServerStatus{}}
	for _, a := range s.servers {
		if p := s.per[a.Address.String()]; p != nil {
			st.Servers = append(st.Servers, *p)
		} else {
			st.Servers = append(st.Servers, ServerStatus{Address: a.Address.String(), Error: "not asked yet"})
		}
	}
	return st
}

// queryNTP asks a server with NTP (RFC 5905) on UDP port 123.
func queryNTP(ctx context.Context, server string, now func() time.Time) (Sample, error) {
	timeout := 3 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	r, err := ntp.QueryWithOptions(server, ntp.QueryOptions{Timeout: timeout, GetSystemTime: now})
	if err != nil {
		return Sample{}, fmt.Errorf("no answer from %s: %w", server, plain(err))
	}
	if err := r.Validate(); err != nil {
		return Sample{}, fmt.Errorf("%s answered but cannot be used: %w", server, err)
	}
	return Sample{Offset: r.ClockOffset, RTT: r.RTT, Stratum: int(r.Stratum), Distance: r.RootDistance}, nil
}

// plain shortens a network error to its cause.
func plain(err error) error {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out (is the server reachable, does it serve NTP on UDP port 123?)")
	}
	return err
}

// SetLog sets the logger (the system log, built after the service).
func (s *Service) SetLog(l *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.Log = l
}

func (s *Service) log() *slog.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Log
}
