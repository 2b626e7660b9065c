// Package commit owns the running configuration: a commit validates a
// candidate, applies it to the links and only then stores it, so the
// stored config is always one that ran. If applying fails the previous
// config is restored. `commit confirmed N` rolls back by itself unless
// the change is confirmed in time; rollback N loads an earlier commit.
package commit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/firmware/supervisor"
)

// Options configure a Manager.
type Options struct {
	// ConfigPath is the active config file; rollback copies and the device
	// key that seals secrets live beside it.
	ConfigPath string
	StateDir   string // the supervisor's state (static-key PN ceilings)
	Log        *slog.Logger
	Audit      Recorder // nil: commits are not audited
	// AfterFunc runs f after d (commit confirmed); nil is time.AfterFunc.
	// Tests pass one they fire themselves.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// OnChange is told the new running config after every commit and
	// rollback (the management address and SSH follow it).
	OnChange func(*config.Config)
	// Now is the clock of commit times and confirm deadlines; nil is
	// time.Now. Tests pin it so transcripts pass on any date.
	Now func() time.Time
}

// Manager is the running config and the links it drives.
type Manager struct {
	opts    Options
	ctx     context.Context
	history *store.History
	sealer  *config.Sealer

	// mu serialises changes (commits, confirm expiry, stop); readers never
	// take it. A change may wait up to the supervisor's stop timeout for
	// wedged links, and show, the CLI prompt and the watchdog must not
	// wait behind that.
	mu      sync.Mutex
	running *config.Config
	sup     *supervisor.Supervisor
	pending *pendingConfirm

	view      atomic.Pointer[view]  // what readers see, published under mu
	busySince atomic.Int64          // unix ns since a change holds mu, 0 when none
	wedged    atomic.Pointer[error] // links that did not stop: only a reset helps
}

// view is what readers see: the running config, its supervisor and the
// commit confirmed deadline, as of the last completed change.
type view struct {
	running *config.Config
	sup     *supervisor.Supervisor
	pending time.Time
}

// BusyLimit is how long a change may hold the config before Health calls
// the management plane wedged: twice a supervisor's stop timeout, and
// room for starting the links again.
const BusyLimit = 2*supervisor.DefaultStopTimeout + 40*time.Second

type pendingConfirm struct {
	previous *config.Config
	deadline time.Time
	stop     func() bool
}

// Open loads the active config (an empty one on first boot) and starts
// its links. A stored config that no longer starts (a NIC was removed)
// is reported and the box comes up without links, still manageable.
func Open(ctx context.Context, o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.OnChange == nil {
		o.OnChange = func(*config.Config) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	s, err := config.LoadSealer(filepath.Join(filepath.Dir(o.ConfigPath), config.SealKeyName))
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: o, ctx: ctx, history: store.Open(o.ConfigPath), sealer: s, running: &config.Config{}}
	b, err := m.history.Active()
	if err != nil {
		return nil, err
	}
	var startErr error
	if b != nil {
		c, err := config.Load(o.ConfigPath) // resolves key files, opens sealed secrets
		if err != nil {
			startErr = fmt.Errorf("stored config %s: %w", o.ConfigPath, err)
		} else {
			m.running = c
		}
	}
	if startErr == nil {
		if m.sup, startErr = supervisor.Start(ctx, m.running, m.supOpts()); startErr != nil {
			startErr = fmt.Errorf("stored config does not start: %w", startErr)
		}
	}
	if startErr != nil {
		o.Log.Error(startErr.Error() + "; running without links until a commit fixes it")
		m.sup, _ = supervisor.Start(ctx, &config.Config{}, m.supOpts())
	}
	m.publish()
	return m, startErr
}

// publish makes the state readers see the current one. Called with mu held.
func (m *Manager) publish() {
	v := &view{running: m.running.Clone(), sup: m.sup}
	if m.pending != nil {
		v.pending = m.pending.deadline
	}
	m.view.Store(v)
}

// lock takes mu for a change; the returned func publishes the result and
// releases it.
func (m *Manager) lock() (unlock func()) {
	m.mu.Lock()
	m.busySince.Store(time.Now().UnixNano())
	return func() {
		m.publish()
		m.busySince.Store(0)
		m.mu.Unlock()
	}
}

func (m *Manager) supOpts() supervisor.Options {
	return supervisor.Options{Log: m.opts.Log, StateDir: m.opts.StateDir, Now: m.opts.Now}
}

// Running is a copy of the running config. It never waits for a commit
// in progress: during one it is the config before it.
func (m *Manager) Running() *config.Config { return m.view.Load().running.Clone() }

// Hostname is the configured host name, "" if none (the CLI prompt).
func (m *Manager) Hostname() string { return m.view.Load().running.System.Hostname }

// System is a copy of the running config's system settings (users,
// management, SSH): what logins and prompts read, without the links and
// their keys. Like Running, it never waits for a commit.
func (m *Manager) System() config.System { return m.view.Load().running.System.Copy() }

// Recorder keeps the audit trail of commits (mgmt/audit).
type Recorder interface {
	Record(who Who, event string, details ...string)
}

func (m *Manager) record(who Who, event string, details ...string) {
	if m.opts.Audit != nil {
		m.opts.Audit.Record(who, event, details...)
	}
}

// Who is the author of a change, for the audit log.
type Who struct{ User, From string }

// Result says what a commit did.
type Result struct {
	Restarted bool      // the links were restarted
	Confirm   time.Time // commit confirmed: rolled back at this time unless confirmed
	Confirmed bool      // this commit confirmed an earlier commit confirmed
}

// Commit validates cand, applies it and stores it. changes describe the
// difference for the audit log (never secret values). With confirm > 0
// the commit rolls back after that long unless another commit confirms it.
func (m *Manager) Commit(cand *config.Config, who Who, changes []string, confirm time.Duration) (Result, error) {
	if errs := cand.Check(); len(errs) > 0 {
		return Result{}, errs
	}
	defer m.lock()()
	var r Result
	if m.pending != nil {
		m.pending.stop()
		m.pending = nil
		r.Confirmed = true
	}
	prev := m.running
	restarted, err := m.apply(cand.Clone())
	if err != nil {
		m.record(who, "commit failed", err.Error())
		return r, err
	}
	r.Restarted = restarted
	if err := m.history.Save(m.running.Sealed(m.sealer).Marshal(), m.opts.Now()); err != nil {
		m.apply(prev)
		return r, fmt.Errorf("storing the config failed, the previous config is running again: %w", err)
	}
	what := "commit"
	if confirm > 0 {
		r.Confirm = m.opts.Now().Add(confirm)
		what = fmt.Sprintf("commit confirmed (rolls back at %s unless confirmed)", r.Confirm.Format(time.TimeOnly))
		p := &pendingConfirm{previous: prev, deadline: r.Confirm}
		p.stop = m.opts.AfterFunc(confirm, func() { m.expire(p) })
		m.pending = p
	}
	m.record(who, what, changes...)
	m.opts.OnChange(m.running.Clone())
	return r, nil
}

// expire rolls a commit confirmed back.
func (m *Manager) expire(p *pendingConfirm) {
	defer m.lock()()
	if m.pending != p {
		return // confirmed meanwhile
	}
	m.pending = nil
	if _, err := m.apply(p.previous); err != nil {
		m.opts.Log.Error("commit confirmed expired, but the previous config does not start again", "err", err)
	}
	if err := m.history.Save(m.running.Sealed(m.sealer).Marshal(), m.opts.Now()); err != nil {
		m.opts.Log.Error("commit confirmed expired: storing the previous config failed", "err", err)
	}
	m.record(Who{User: "system"}, "commit confirmed expired: rolled back to the previous config")
	m.opts.OnChange(m.running.Clone())
	m.opts.Log.Warn("commit confirmed was not confirmed in time: the previous config is running again")
}

// Pending is the deadline of an unconfirmed commit confirmed, zero if none.
func (m *Manager) Pending() time.Time { return m.view.Load().pending }

// apply makes c the running config; on failure the old one runs again.
// Called with mu held.
func (m *Manager) apply(c *config.Config) (bool, error) {
	if reflect.DeepEqual(c.Links, m.running.Links) {
		m.running = c
		return false, nil
	}
	old := m.running
	if err := m.sup.Stop(); err != nil {
		// Starting the new links beside ones that may still forward could
		// put two datapaths on one port: stay as we are, and let the
		// watchdog reset the box (Health reports it from now on).
		err = fmt.Errorf("%w; the new config was not applied, and the box must be reset (the watchdog does it)", err)
		m.wedged.Store(&err)
		m.opts.Log.Error("commit: " + err.Error())
		return true, err
	}
	m.wedged.Store(nil)
	sup, err := supervisor.Start(m.ctx, c, m.supOpts())
	if err != nil {
		m.opts.Log.Error("commit did not apply; restoring the previous config", "err", err)
		var againErr error
		if m.sup, againErr = supervisor.Start(m.ctx, old, m.supOpts()); againErr != nil {
			m.sup, _ = supervisor.Start(m.ctx, &config.Config{}, m.supOpts())
			return true, fmt.Errorf("apply failed (%w) and the previous config does not start either (%v); running without links", err, againErr)
		}
		return true, fmt.Errorf("apply failed, the previous config is running again: %w", err)
	}
	m.sup = sup
	m.running = c
	return true, nil
}

// Rollback returns rollback n (0: the running config, 1: the previous
// commit) as a new candidate.
func (m *Manager) Rollback(n int) (*config.Config, error) {
	b, err := m.history.Version(n)
	if err != nil {
		return nil, err
	}
	c, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("rollback %d: %w", n, err)
	}
	if err := c.Unseal(m.sealer); err != nil {
		return nil, fmt.Errorf("rollback %d: %w", n, err)
	}
	return c, nil
}

// History lists the stored commits, newest first.
func (m *Manager) History() []store.Entry { return m.history.List() }

// Status is the links' status. It never waits for a commit in progress
// (during one it shows the links being replaced) and answers within the
// supervisor's status budget even when a link is wedged.
func (m *Manager) Status() supervisor.Status {
	v := m.view.Load()
	st := v.sup.Status()
	if h := v.running.System.Hostname; h != "" {
		st.Hostname = h
	}
	return st
}

// Rekey asks a link's key server for a new SAK.
func (m *Manager) Rekey(link string) error { return m.view.Load().sup.Rekey(link) }

// ClearCounters makes the counters count from now.
func (m *Manager) ClearCounters() { m.view.Load().sup.ClearCounters() }

// StallMKA makes a link's key agreement hang for d: the test hook that
// shows the watchdog resets a box whose KaY is wedged.
func (m *Manager) StallMKA(link string, d time.Duration) error {
	return m.view.Load().sup.Stall(link, d)
}

// Health reports why the links or the config are not making progress:
// links that did not stop for a commit, a commit that holds the config
// for longer than BusyLimit, a link whose supervisor loop or key
// agreement is wedged. nil when all is well.
func (m *Manager) Health(now time.Time) error {
	var errs []error
	if p := m.wedged.Load(); p != nil {
		errs = append(errs, *p)
	}
	if b := m.busySince.Load(); b != 0 {
		if d := now.Sub(time.Unix(0, b)); d > BusyLimit {
			errs = append(errs, fmt.Errorf("a commit has held the configuration for %s", d.Round(time.Second)))
		}
	}
	return errors.Join(append(errs, m.view.Load().sup.Health(now))...)
}

// Stop stops the links (their keys are forgotten).
func (m *Manager) Stop() {
	defer m.lock()()
	if m.pending != nil {
		m.pending.stop()
		m.pending = nil
	}
	if err := m.sup.Stop(); err != nil {
		m.opts.Log.Error("stop: " + err.Error())
	}
}

// Zeroize stops the links and wipes (overwrites, then deletes) the
// config, every rollback copy, the device key, the PN state directory
// and the extra files (the SSH host key, the audit log): the next boot
// is a first boot.
func (m *Manager) Zeroize(extra ...string) error {
	m.Stop()
	defer m.lock()()
	m.running = &config.Config{}
	errs := []error{m.history.Wipe()}
	for _, f := range append(extra, filepath.Join(filepath.Dir(m.opts.ConfigPath), config.SealKeyName)) {
		errs = append(errs, store.WipeFile(f))
	}
	if m.opts.StateDir != "" {
		errs = append(errs, store.WipeTree(m.opts.StateDir))
	}
	return errors.Join(errs...)
}
