// Package noc runs what a network operations centre watches the box
// with: clock synchronisation (firmware/timesync), remote syslog
// (mgmt/syslog) and the Prometheus endpoint (mgmt/metrics), all
// following the running config; and it renders them for `show system
// time|syslog|metrics`.
package noc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/firmware/timesync"
	"github.com/secwire/secwire/mgmt/metrics"
	"github.com/secwire/secwire/mgmt/syslog"
)

// Options set up the services.
type Options struct {
	ConfigDir string // where a syslog CA file is found
	// Setter sets the system clock (the appliance); nil on a host, where
	// the daemon keeps its own clock view and never sets the host's.
	Setter timesync.Setter
	RTC    timesync.RTC
	// HostSynced: with no NTP server configured, whether the host's own
	// clock is synchronised (the host daemon).
	HostSynced func() bool
	Audit      commit.Recorder // clock steps over a minute are audited
	Version    string
	Slot       func() string
}

// Services are the running NOC services.
type Services struct {
	Time    *timesync.Service
	Syslog  *syslog.Forwarder
	Metrics *metrics.Server
	log     *slog.Logger
}

// New makes the services. Wrap the system log's handler with
// Syslog.Handler, then call SetLog with the logger made of it.
func New(o Options) *Services {
	s := &Services{log: slog.New(slog.DiscardHandler)}
	s.Syslog = syslog.New(syslog.Options{ConfigDir: o.ConfigDir})
	s.Time = timesync.New(timesync.Options{Setter: o.Setter, RTC: o.RTC, HostSynced: o.HostSynced, ConfigDir: o.ConfigDir,
		Log: slog.New(s.Syslog.Handler(slog.DiscardHandler)), // replaced in SetLog
		OnStep: func(by time.Duration, from, to time.Time) {
			if o.Audit != nil {
				o.Audit.Record(commit.Who{User: "system"}, "clock stepped by "+by.Round(time.Millisecond).String()+" (NTP)",
					"from "+from.UTC().Format(time.RFC3339), "to "+to.UTC().Format(time.RFC3339))
			}
		}})
	s.Metrics = &metrics.Server{Log: s.log, Collector: metrics.NewCollector(metrics.Sources{
		Time: s.Time.Status, Syslog: s.Syslog.Status, Version: o.Version, Slot: o.Slot})}
	return s
}

// SetLog gives the services the system logger (built on Syslog.Handler).
func (s *Services) SetLog(l *slog.Logger) {
	s.log = l
	s.Syslog.SetLog(l)
	s.Time.SetLog(l)
	s.Metrics.Log = l
}

// SetLinks gives the metrics the links' raw status (the commit manager's
// RawStatus, which exists only once the manager runs).
func (s *Services) SetLinks(f func() supervisor.Status) { s.Metrics.Collector.SetLinks(f) }

// Run keeps the clock synchronised until ctx ends, then stops the
// endpoint and the collectors.
func (s *Services) Run(ctx context.Context) {
	s.Time.Run(ctx)
	s.Metrics.Close()
	s.Syslog.Close()
}

// Check is the commit manager's Check: what would fail in c.
func (s *Services) Check(c *config.Config) error {
	return errors.Join(s.Syslog.Check(c), s.Metrics.Check(c))
}

// Apply follows a new running config (the commit manager's OnChange).
func (s *Services) Apply(c *config.Config) {
	s.Syslog.Apply(c)
	s.Time.Apply(c)
	s.Metrics.Apply(c)
}

// Status is everything `show system time|syslog|metrics` shows.
type Status struct {
	Time    timesync.Status     `json:"time"`
	Syslog  []syslog.HostStatus `json:"syslog"`
	Metrics metrics.Status      `json:"metrics"`
}

// Status reports the services.
func (s *Services) Status() Status {
	return Status{Time: s.Time.Status(), Syslog: s.Syslog.Status(), Metrics: s.Metrics.Status()}
}
