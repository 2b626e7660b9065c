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
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/sakexport"
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
	// Clock and ClockSynced are the synchronised clock the links' key
	// chains run on (supervisor.Options).
	Clock       func() time.Time
	ClockSynced func() bool
	// Check refuses a commit that the services besides the links cannot
	// take (a metrics port in use); nil accepts all.
	Check func(*config.Config) error
	// SealKey, where the box has a TPM, seals the device key at the path
	// it is given with it (config.SealKeyInTPM); nil keeps it in clear.
	SealKey func(keyPath string) (string, error)
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
	expiry  *Expiry // the last automatic rollback, until the next commit

	view      atomic.Pointer[view]  // what readers see, published under mu
	busySince atomic.Int64          // unix ns since a change holds mu, 0 when none
	wedged    atomic.Pointer[error] // links that did not stop: only a reset helps

	watchMu  sync.Mutex
	watchers map[int]func(string)
	nextW    int
}

// view is what readers see: the running config, its supervisor and the
// commit confirmed deadline, as of the last completed change.
type view struct {
	running *config.Config
	sup     *supervisor.Supervisor
	pending time.Time
	expiry  *Expiry
}

// BusyLimit is how long a change may hold the config before Health calls
// the management plane wedged: twice a supervisor's stop timeout, and
// room for starting the links again.
const BusyLimit = 2*supervisor.DefaultStopTimeout + 40*time.Second

type pendingConfirm struct {
	previous  *config.Config
	committed *config.Config
	who       Who
	deadline  time.Time
	stop      func() bool
}

// Expiry is a commit confirmed that was not confirmed in time and was
// rolled back.
type Expiry struct {
	Who        Who            // who made the commit confirmed
	At         time.Time      // when it was rolled back
	RolledBack *config.Config // the config it had committed
	Restored   *config.Config // the config running again
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
	keyFile := filepath.Join(filepath.Dir(o.ConfigPath), config.SealKeyName)
	var keyErr error
	if o.SealKey != nil {
		if what, err := o.SealKey(keyFile); err != nil {
			keyErr = fmt.Errorf("TPM: %w", err)
		} else {
			o.Log.Info(what)
		}
	}
	s, err := config.LoadSealer(keyFile)
	if errors.Is(err, config.ErrForeignKey) {
		// The config partition came from another box: come up manageable,
		// with a device key of this TPM for new commits; the foreign one
		// is kept (it opens in its own box's TPM).
		aside := keyFile + ".tpm.other-box"
		if rerr := os.Rename(keyFile+".tpm", aside); rerr != nil {
			return nil, fmt.Errorf("%w; moving it aside failed too: %v", err, rerr)
		}
		keyErr = fmt.Errorf("%w (kept as %s)", err, aside)
		if o.SealKey != nil {
			if _, serr := o.SealKey(keyFile); serr != nil {
				return nil, fmt.Errorf("%w; sealing a new device key failed: %v", keyErr, serr)
			}
		}
		s, err = config.LoadSealer(keyFile)
	} else if errors.Is(err, config.ErrDamagedKey) {
		// Better a box that comes up manageable (its sealed CAKs to be
		// entered again) than one that cannot start; the damaged key is
		// kept for recovery.
		aside := keyFile + ".damaged"
		if rerr := os.Rename(keyFile, aside); rerr != nil {
			return nil, fmt.Errorf("%w; moving it aside failed too: %v", err, rerr)
		}
		keyErr = fmt.Errorf("%w (kept as %s, a new device key made): CAKs sealed with it cannot be opened", err, aside)
		s, err = config.LoadSealer(keyFile)
	}
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
	return m, errors.Join(keyErr, startErr)
}

// publish makes the state readers see the current one. Called with mu held.
func (m *Manager) publish() {
	v := &view{running: m.running.Clone(), sup: m.sup, expiry: m.expiry}
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
	return supervisor.Options{Log: m.opts.Log, StateDir: m.opts.StateDir, Now: m.opts.Now, Clock: m.opts.Clock, ClockSynced: m.opts.ClockSynced}
}

// keyDir is where the config's relative key file paths point: the
// config file's directory.
func (m *Manager) keyDir() string { return filepath.Dir(m.opts.ConfigPath) }

// Running is a copy of the running config. It never waits for a commit
// in progress: during one it is the config before it.
func (m *Manager) Running() *config.Config { return m.view.Load().running.Clone() }

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

// Who is the author of a change, for the audit log and the commit list;
// Comment is their note on a commit (commit comment "...").
type Who struct{ User, From, Comment string }

// Result says what a commit did.
type Result struct {
	// Changes say what the commit did to each link (restarted, changed in
	// place, started, stopped); links it did not touch are not listed.
	Changes   []supervisor.Change
	Confirm   time.Time // commit confirmed: rolled back at this time unless confirmed
	Confirmed bool      // this commit confirmed an earlier commit confirmed
}

// Commit validates cand, applies it and stores it. changes describe the
// difference for the audit log (never secret values). With confirm > 0
// the commit rolls back after that long unless another commit confirms it.
func (m *Manager) Commit(cand *config.Config, who Who, changes []string, confirm time.Duration) (Result, error) {
	cand = cand.Clone()
	cand.SetKeyDir(m.keyDir())
	if errs := cand.Check(); len(errs) > 0 {
		return Result{}, errs
	}
	if m.opts.Check != nil {
		if err := m.opts.Check(cand); err != nil {
			return Result{}, err
		}
	}
	defer m.lock()()
	var r Result
	prev := m.running
	done, err := m.apply(cand)
	if err != nil {
		m.record(who, "commit failed", err.Error())
		return r, err
	}
	r.Changes = done
	meta := store.Meta{Time: m.opts.Now(), User: who.User, From: who.From, Comment: who.Comment}
	if err := m.history.Save(m.running.Sealed(m.sealer).Marshal(), meta); err != nil {
		m.apply(prev)
		return r, fmt.Errorf("storing the config failed, the previous config is running again: %w", err)
	}
	// Only a commit that took confirms a pending commit confirmed.
	if m.pending != nil {
		m.pending.stop()
		m.pending = nil
		r.Confirmed = true
	}
	m.expiry = nil
	what := "commit"
	if confirm > 0 {
		r.Confirm = m.opts.Now().Add(confirm)
		what = fmt.Sprintf("commit confirmed (rolls back at %s unless confirmed)", r.Confirm.Format(time.TimeOnly))
		p := &pendingConfirm{previous: prev, committed: m.running.Clone(), who: who, deadline: r.Confirm}
		p.stop = m.opts.AfterFunc(confirm, func() { m.expire(p) })
		m.pending = p
	}
	if who.Comment != "" {
		what += fmt.Sprintf(" comment %q", who.Comment)
	}
	m.record(who, what, changes...)
	m.opts.OnChange(m.running.Clone())
	return r, nil
}

// expire rolls a commit confirmed back and tells every watching session.
func (m *Manager) expire(p *pendingConfirm) {
	unlock := m.lock()
	if m.pending != p {
		unlock()
		return // confirmed meanwhile
	}
	m.pending = nil
	if _, err := m.apply(p.previous); err != nil {
		m.opts.Log.Error("commit confirmed expired, but the previous config does not start again", "err", err)
	}
	now := m.opts.Now()
	meta := store.Meta{Time: now, User: "system", Comment: "commit confirmed by " + p.who.User + " expired: rolled back"}
	if err := m.history.Save(m.running.Sealed(m.sealer).Marshal(), meta); err != nil {
		m.opts.Log.Error("commit confirmed expired: storing the previous config failed", "err", err)
	}
	m.expiry = &Expiry{Who: p.who, At: now, RolledBack: p.committed, Restored: m.running.Clone()}
	m.record(Who{User: "system"}, "commit confirmed expired: rolled back to the previous config")
	m.opts.OnChange(m.running.Clone())
	unlock()
	msg := fmt.Sprintf("commit confirmed by %s (%s) was not confirmed in time: rolled back at %s, the previous configuration is running again",
		p.who.User, p.who.From, now.Format(time.TimeOnly))
	m.opts.Log.Warn(msg)
	m.notify(msg)
}

// LastExpiry is the last automatic rollback of a commit confirmed, nil if
// there was none since the last commit.
func (m *Manager) LastExpiry() *Expiry { return m.view.Load().expiry }

// Watch calls f with every notice the sessions should see at once (an
// automatic rollback); stop ends it. f must not call back into m's
// commit methods.
func (m *Manager) Watch(f func(notice string)) (stop func()) {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchers == nil {
		m.watchers = map[int]func(string){}
	}
	id := m.nextW
	m.nextW++
	m.watchers[id] = f
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		delete(m.watchers, id)
	}
}

func (m *Manager) notify(msg string) {
	m.watchMu.Lock()
	fs := make([]func(string), 0, len(m.watchers))
	for _, f := range m.watchers {
		fs = append(fs, f)
	}
	m.watchMu.Unlock()
	for _, f := range fs {
		f(msg)
	}
}

// Pending is the deadline of an unconfirmed commit confirmed, zero if none.
func (m *Manager) Pending() time.Time { return m.view.Load().pending }

// apply makes c the running config, touching only the links whose
// config changed; on failure the old config runs again. Called with mu
// held.
func (m *Manager) apply(c *config.Config) ([]supervisor.Change, error) {
	old := m.running
	changes, err := m.sup.Update(c)
	if err == nil {
		m.wedged.Store(nil)
		m.running = c
		return changes, nil
	}
	if errors.Is(err, supervisor.ErrStuck) {
		// Starting links beside one that may still forward could put two
		// datapaths on one port: stay as we are, and let the watchdog
		// reset the box (Health reports it from now on).
		err = fmt.Errorf("%w; the new config was not applied, and the box must be reset (the watchdog does it)", err)
		m.wedged.Store(&err)
		m.opts.Log.Error("commit: " + err.Error())
		return changes, err
	}
	m.opts.Log.Error("commit did not apply; restoring the previous config", "err", err)
	if serr := m.sup.Stop(); serr != nil {
		err = fmt.Errorf("%w; the links did not stop either (%v): the box must be reset (the watchdog does it)", err, serr)
		m.wedged.Store(&err)
		return changes, err
	}
	var againErr error
	if m.sup, againErr = supervisor.Start(m.ctx, old, m.supOpts()); againErr != nil {
		m.sup, _ = supervisor.Start(m.ctx, &config.Config{}, m.supOpts())
		return changes, fmt.Errorf("apply failed (%w) and the previous config does not start either (%v); running without links", err, againErr)
	}
	return changes, fmt.Errorf("apply failed, the previous config is running again: %w", err)
}

// Plan says what committing cand would do to each link, before it
// happens (commit check, compare).
func (m *Manager) Plan(cand *config.Config) []supervisor.Change {
	return supervisor.Plan(m.view.Load().running, cand)
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
	c.SetKeyDir(m.keyDir())
	return c, nil
}

// History lists the stored commits, newest first.
func (m *Manager) History() []store.Entry { return m.history.List() }

// Status is the links' status. It never waits for a commit in progress
// and answers within the supervisor's status budget even when a link is
// wedged.
func (m *Manager) Status() supervisor.Status {
	v := m.view.Load()
	st := v.sup.Status()
	st.Hostname = v.running.System.Hostname
	if st.Hostname == "" {
		st.Hostname = "secwire" // as the prompt says
	}
	return st
}

// RawStatus is the links' status with counters that `clear counters`
// does not reset (for the metrics endpoint).
func (m *Manager) RawStatus() supervisor.Status {
	v := m.view.Load()
	st := v.sup.RawStatus()
	if h := v.running.System.Hostname; h != "" {
		st.Hostname = h
	}
	return st
}

// Rekey asks a link's key server for a new SAK.
func (m *Manager) Rekey(link string) error { return m.view.Load().sup.Rekey(link) }

// ExportKeys copies a link's current SAKs (see supervisor.ExportKeys).
func (m *Manager) ExportKeys(link string) (*sakexport.File, error) {
	return m.view.Load().sup.ExportKeys(link)
}

// Monitor prepares a capture on port (see supervisor.Monitor).
func (m *Manager) Monitor(port string) (release func()) { return m.view.Load().sup.Monitor(port) }

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
	key := filepath.Join(filepath.Dir(m.opts.ConfigPath), config.SealKeyName)
	for _, f := range append(extra, key, key+".tpm", key+".tpm.other-box") {
		errs = append(errs, store.WipeFile(f))
	}
	if m.opts.StateDir != "" {
		errs = append(errs, store.WipeTree(m.opts.StateDir))
	}
	return errors.Join(errs...)
}
