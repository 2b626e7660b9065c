// Package supervisor turns the configuration into running links: for each
// link it checks the ports and their MTU, builds the SecY, installs the
// keys, starts the datapath, and passes line faults to the plaintext port.
// It is the one place that knows both the config and the datapath; the
// management plane reads its Status.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/health"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/internal/ifquiet"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/software"
)

// Options are the supervisor's runtime settings (not the config).
type Options struct {
	Log *slog.Logger
	// StateDir keeps what must survive a restart: the transmit PN
	// ceilings of static keys.
	StateDir string
	// Now is the clock of the uptime; nil is time.Now.
	Now func() time.Time
	// Clock is the synchronised wall clock of key chain start and end
	// times (firmware/timesync); nil is time.Now.
	Clock func() time.Time
	// ClockSynced reports whether that clock was ever synchronised; while
	// it was not, start/end times are flagged unreliable. Nil: unknown,
	// never flagged.
	ClockSynced func() bool
	// PNReserve is how far ahead of a static transmit SA's PN its ceiling
	// is recorded; 0 is 2^24 (tests use less to reach it).
	PNReserve uint64
	// StopTimeout bounds how long stopping a link may take (default
	// DefaultStopTimeout).
	StopTimeout time.Duration
}

// DefaultStopTimeout is how long Stop and Update wait for a link to stop
// before they report what is stuck. Every part stops in well under a
// second unless it is wedged.
const DefaultStopTimeout = 10 * time.Second

// ErrStuck is wrapped by Stop's and Update's errors when a link did not
// stop in time: its datapath may still run, so nothing may be started in
// its place; only a reset (the watchdog) helps.
var ErrStuck = errors.New("is wedged")

// Supervisor runs the links of one config. Its methods are called by
// one owner at a time (the commit manager); each link runs on its own, so
// an update restarts only the links whose change needs it.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
	cfg    *config.Config // what runs

	lmu   sync.Mutex // serialises Start, Update and Stop, which change links
	links []*link
	// view is links as last published: readers (status, health, rekey)
	// use it and never wait for lmu, which an update holds while links
	// stop.
	view atomic.Pointer[[]*link]

	mu      sync.Mutex
	cleared map[string]LinkStatus // counters at the last ClearCounters
}

type link struct {
	cancel context.CancelFunc // ends the link's goroutines
	wg     sync.WaitGroup     // its watch loop and KaY
	// tasks are the link's goroutines and stop steps under way, by name:
	// what a stop that times out names.
	tmu      sync.Mutex
	tasks    map[string]int
	stopOnce sync.Once
	stopping atomic.Bool
	stopped  chan struct{} // closed once shutdown has stopped everything
	beat     health.Beat   // marked by the watch loop each time round
	reader   statusReader
	cfg      config.Link
	keyDir   string // relative key files are read from here (Config.KeyDir)
	secyCfg  macsec.Config
	// dp is the one backend that runs the link (backend.go): MKA and
	// static keys drive its SecY seam.
	dp       datapath
	backend  string // offload-mac, offload-phy, kernel or software
	datapath string // the backend and why others were not used
	lineMTU  int
	guard    *pnGuard // static keys: no PN reuse across restarts
	kay      *mka.KaY // MKA links

	mu       sync.Mutex
	plainUp  bool   // what link-fault pass-through last set
	fault    string // why the plaintext port is held down, "" when not
	lineLink bool
	dataDiag string // why data frames fail validation, "" when they do not
	data     dataPlane
}

// Start brings up every link of cfg. On error nothing is left running.
func Start(ctx context.Context, cfg *config.Config, o Options) (*Supervisor, error) {
	if errs := cfg.Check(); len(errs) > 0 {
		return nil, errs
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StateDir == "" {
		return nil, errors.New("no state directory: static keys need one to never reuse a PN across restarts")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	s := &Supervisor{opts: o, log: o.Log, start: o.Now(), cfg: cfg.Clone()}
	s.ctx, s.cancel = context.WithCancel(ctx)
	for i := range cfg.Links {
		l, err := s.launch(cfg.Links[i], cfg.KeyDir(), managementVLAN(cfg, cfg.Links[i]))
		if err != nil {
			if serr := s.Stop(); serr != nil {
				s.log.Error(serr.Error())
			}
			return nil, err
		}
		s.links = append(s.links, l)
	}
	s.publish()
	return s, nil
}

// publish makes links what readers see. Called with lmu held.
func (s *Supervisor) publish() {
	links := slices.Clone(s.links)
	s.view.Store(&links)
}

// current is the links as last published.
func (s *Supervisor) current() []*link {
	if p := s.view.Load(); p != nil {
		return *p
	}
	return nil
}

// spawn runs fn on a goroutine of the link that shutdown waits for, under
// a name a stop that times out reports.
func (l *link) spawn(name string, fn func()) {
	l.wg.Add(1)
	l.task(name, 1)
	go func() {
		defer l.wg.Done()
		defer l.task(name, -1)
		fn()
	}()
}

func (l *link) task(name string, d int) {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if l.tasks == nil {
		l.tasks = map[string]int{}
	}
	if l.tasks[name] += d; l.tasks[name] <= 0 {
		delete(l.tasks, name)
	}
}

// launch starts one link and its watch loop.
func (s *Supervisor) launch(lc config.Link, keyDir string, mgmtVLAN uint16) (*link, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	l, err := s.startLink(ctx, lc, keyDir, mgmtVLAN)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("link %s: %w", lc.Name, err)
	}
	l.cancel = cancel
	w := &faultWatch{log: s.log.With("link", lc.Name), first: true}
	w.check(l)
	l.spawn("supervisor loop", func() { s.watch(ctx, l, w) })
	if l.guard != nil {
		l.spawn("PN ceiling writer", func() { l.guard.run(ctx) })
	}
	return l, nil
}

// beginShutdown starts ending the link's goroutines, then its datapath
// and keys, in the background; once is enough.
func (l *link) beginShutdown() {
	l.stopOnce.Do(func() {
		l.stopping.Store(true)
		go func() {
			l.cancel()
			l.wg.Wait()
			step := "datapath stop (" + l.backend + ")"
			l.task(step, 1)
			l.stop()
			l.task(step, -1)
			close(l.stopped)
		}()
	})
}

// awaitShutdown waits for a shutdown until deadline, and names what is
// still running if it has not ended by then.
func (l *link) awaitShutdown(deadline <-chan time.Time, timeout time.Duration) error {
	select {
	case <-l.stopped:
		return nil
	case <-deadline:
	}
	l.tmu.Lock()
	stuck := slices.Sorted(maps.Keys(l.tasks))
	l.tmu.Unlock()
	return fmt.Errorf("link %s %w: it did not stop within %s (still running: %s)", l.cfg.Name, ErrStuck, timeout, strings.Join(stuck, ", "))
}

// shutdown stops the link, waiting at most timeout.
func (l *link) shutdown(timeout time.Duration) error {
	l.beginShutdown()
	t := time.NewTimer(timeout)
	defer t.Stop()
	return l.awaitShutdown(t.C, timeout)
}

// Stop stops every link. With link-fault pass-through the plaintext port
// is taken down, so the customer's router sees the encryptor go away
// instead of a silent blackhole. It waits at most Options.StopTimeout,
// then returns an error (wrapping ErrStuck) naming what has not stopped:
// a wedged datapath or key agreement. A later Stop waits for the same
// links again.
func (s *Supervisor) Stop() error {
	s.cancel()
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for _, l := range s.links {
		l.beginShutdown()
	}
	t := time.NewTimer(s.opts.StopTimeout)
	defer t.Stop()
	var errs []error
	for _, l := range s.links {
		if err := l.awaitShutdown(t.C, s.opts.StopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // the wedged links stay in view
	}
	s.links = nil
	s.publish()
	return nil
}

// Stall makes the named link's key agreement hang for d, as a wedged KaY
// would (test hooks only: the watchdog test).
func (s *Supervisor) Stall(name string, d time.Duration) error {
	for _, l := range s.current() {
		if l.cfg.Name != name {
			continue
		}
		if l.kay == nil {
			return fmt.Errorf("link %s is keyed with static SAKs, not MKA", name)
		}
		l.kay.Stall(d)
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoLink, name)
}

// Health reports the links whose supervisor loop or key agreement has made
// no progress for health.StaleAfter, or nil. A link being stopped reports
// nothing: the stop's own timeout bounds that.
func (s *Supervisor) Health(now time.Time) error {
	var errs []error
	for _, l := range s.current() {
		if l.stopping.Load() {
			continue
		}
		if err := health.Stale("link "+l.cfg.Name+" supervisor loop", l.beat.Last(), now, health.StaleAfter); err != nil {
			errs = append(errs, err)
		}
		if l.kay != nil {
			if err := health.Stale("link "+l.cfg.Name+" MKA", l.kay.Progress(), now, health.StaleAfter); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Update makes cfg the running config and touches only what changed:
// links that are gone stop, new links start, a link whose change the
// running link can absorb is changed in place (same CA, same SAK, no port
// bounce), and only a link whose change needs it is restarted (Plan says
// which). On error the links may be half updated: the caller stops the
// supervisor and starts a known config again, except when a link did not
// stop (ErrStuck): then nothing may start in its place.
func (s *Supervisor) Update(cfg *config.Config) ([]Change, error) {
	if errs := cfg.Check(); len(errs) > 0 {
		return nil, errs
	}
	plan := Plan(s.cfg, cfg)
	s.lmu.Lock()
	defer s.lmu.Unlock()
	byName := map[string]*link{}
	for _, l := range s.links {
		byName[l.cfg.Name] = l
	}
	for _, c := range plan {
		l := byName[c.Link]
		switch c.Action {
		case ActionStop, ActionRestart:
			if err := l.shutdown(s.opts.StopTimeout); err != nil {
				return plan, err
			}
			delete(byName, c.Link)
		case ActionInPlace:
			nl := cfg.Link(c.Link)
			// The KaY takes the change under its lock: a wedged one must
			// not hang the commit.
			done := make(chan error, 1)
			go func() { done <- l.reconfigure(*nl) }()
			select {
			case err := <-done:
				if err != nil {
					return plan, fmt.Errorf("link %s: %w", c.Link, err)
				}
			case <-time.After(s.opts.StopTimeout):
				return plan, fmt.Errorf("link %s %w: its key agreement did not take the change within %s", c.Link, ErrStuck, s.opts.StopTimeout)
			}
		}
	}
	var links []*link
	defer func() { s.links = links; s.publish() }()
	for i := range cfg.Links {
		lc := cfg.Links[i]
		if l := byName[lc.Name]; l != nil {
			links = append(links, l)
			continue
		}
		l, err := s.launch(lc, cfg.KeyDir(), managementVLAN(cfg, lc))
		if err != nil {
			for _, l := range byName {
				links = append(links, l)
			}
			return plan, err
		}
		links = append(links, l)
	}
	s.cfg = cfg.Clone()
	return plan, nil
}

// stop stops the link's datapath and forgets its keys.
func (l *link) stop() {
	if l.cfg.LinkFaultPassthrough() {
		setLink(l.cfg.Plain, false)
	}
	if l.kay != nil {
		l.kay.Wipe() // its CAKs, KEKs, ICKs and SAK copies
	}
	l.dp.Stop() // and it forgets the SAs and their keys
}

// managementVLAN is the in-band management VLAN on the link's plaintext
// port, 0 when there is none.
func managementVLAN(cfg *config.Config, lc config.Link) uint16 {
	if m := cfg.System.Management; m != nil && m.Interface == lc.Plain {
		return uint16(m.VLAN)
	}
	return 0
}

// inClear turns the link's protocol exceptions into the datapath's rules.
func inClear(lc config.Link) []software.Exception {
	var out []software.Exception
	for _, r := range lc.InClearRules() {
		out = append(out, software.Exception{Name: r.Name, EtherType: r.EtherType, DAs: r.DAs, Prefixes: r.Prefixes})
	}
	return out
}

func (s *Supervisor) startLink(ctx context.Context, lc config.Link, keyDir string, mgmtVLAN uint16) (*link, error) {
	plain, err := net.InterfaceByName(lc.Plain)
	if err != nil {
		return nil, fmt.Errorf("plaintext port %s: %w", lc.Plain, err)
	}
	line, err := net.InterfaceByName(lc.Line)
	if err != nil {
		return nil, fmt.Errorf("line port %s: %w", lc.Line, err)
	}
	l := &link{cfg: lc, keyDir: keyDir, lineMTU: line.MTU, stopped: make(chan struct{})}
	log := s.log.With("link", lc.Name)
	// The host's own stack must never talk on the line port: no IPv6
	// neighbour discovery or MLD, no addresses (they would leave in clear).
	// Disabling IPv6 also drops the link-local address it made.
	for _, port := range []string{lc.Line, lc.Plain} {
		if err := ifquiet.Quiet(port); err != nil {
			return nil, err
		}
	}
	if a := ifquiet.Addresses(lc.Line); len(a) > 0 {
		return nil, fmt.Errorf("line port %s has IP addresses %v: remove them (ip addr flush dev %s); a line port carries MACsec only", lc.Line, a, lc.Line)
	}
	if err := setLink(lc.Line, true); err != nil {
		return nil, fmt.Errorf("line port %s: cannot bring it up: %w", lc.Line, err)
	}
	if need := lc.LineMTU(); line.MTU < need {
		if err := setMTU(lc.Line, need); err != nil {
			log.Error(fmt.Sprintf("line port %s: MTU %d is below %d needed for %d-byte frames plus MACsec overhead; frames that do not fit are dropped and counted (OutPktsTooLong)",
				lc.Line, line.MTU, need, lc.PlainMTU()), "err", err)
		} else {
			log.Info("raised line port MTU", "port", lc.Line, "from", line.MTU, "to", need)
			l.lineMTU = need
		}
	}
	if plain.MTU > lc.PlainMTU() {
		log.Warn(fmt.Sprintf("plaintext port %s: MTU %d is above the link's %d; longer frames are dropped and counted", lc.Plain, plain.MTU, lc.PlainMTU()))
	}
	sci := macsec.MakeSCI(line.HardwareAddr, 1)
	if lc.Static != nil && lc.Static.SCI != 0 {
		sci = lc.Static.SCI
	}
	l.secyCfg = macsec.Config{
		Suite: lc.Suite(), SCI: sci, SendSCI: lc.SendsSCI(), EndStation: !lc.SendsSCI(),
		IntegrityOnly: lc.IntegrityOnly, Offset: lc.Offset,
		Validate: lc.ValidateMode(), ReplayWindow: lc.ReplayWindow,
		// Room for up to two customer VLAN tags inside the protected frame.
		MaxFrame:     lc.PlainMTU() + 14 + 8,
		MaxProtected: l.lineMTU + 14 + 8 - 4*lc.VLANsInClear,
		OnPNThreshold: func(an uint8, pn uint64) {
			if lc.MKA == nil {
				log.Warn("transmit SA passed its PN threshold: install a new SAK", "an", an, "pn", pn)
			} // with MKA the key server sees it and distributes a new SAK
		},
	}
	if err := s.startDatapath(ctx, l, mgmtVLAN, log); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			l.stop()
		}
	}()
	log.Info("datapath", "backend", l.backend, "detail", l.datapath)
	if err := s.installStatic(l, lc); err != nil {
		return nil, err
	}
	if lc.MKA != nil {
		if l.kay, err = newKaY(l, lc, line.HardwareAddr, sci, s.opts.Clock, log); err != nil {
			return nil, err
		}
		if w := s.clockWarning(lc); w != "" {
			log.Warn(w)
		}
	}
	onEAPOL := func(frame []byte) {
		if l.kay != nil {
			l.kay.Receive(frame)
		}
	}
	if err := l.dp.forward(ctx, onEAPOL); err != nil {
		return nil, err
	}
	if l.kay != nil {
		l.spawn("MKA", func() { l.kay.Run(ctx) })
	}
	if lc.ShouldSecure() {
		log.Warn("policy should-secure: frames cross IN CLEAR whenever no SA is up")
	}
	ok = true
	return l, nil
}

func (sv *Supervisor) installStatic(l *link, lc config.Link) error {
	s := l.dp
	st := lc.Static
	if st == nil {
		return nil
	}
	suite := lc.Suite()
	tx, err := st.TX.Params(suite, l.keyDir)
	if err != nil {
		return fmt.Errorf("static_keys.tx: %w", err)
	}
	configured := tx.PN
	log := sv.log.With("link", lc.Name)
	l.guard, tx.PN, err = newPNGuard(sv.opts.StateDir, l.secyCfg.SCI, tx.AN, tx.Key, tx.PN, sv.opts.PNReserve, log)
	if err != nil {
		return err
	}
	if tx.PN != configured {
		log.Info("static transmit SA resumes above the PNs a previous run may have used", "an", tx.AN, "pn", tx.PN)
	}
	if err := s.InstallTxSA(tx); err != nil {
		return err
	}
	// The guard holds transmission at the recorded PN ceiling; on the
	// kernel datapath it may take the SA away and put it back at pn.
	reinstall := func(pn uint64) error {
		p, err := st.TX.Params(suite, l.keyDir)
		if err != nil {
			return err
		}
		p.PN = pn
		if err := s.InstallTxSA(p); err != nil {
			return err
		}
		return s.SetEncodingSA(int(p.AN))
	}
	limit, _ := l.dp.(pnLimiter) // nil: the guard polls the PN instead
	if err := l.guard.attach(s, limit, reinstall); err != nil {
		return err
	}
	if err := s.SetEncodingSA(int(tx.AN)); err != nil {
		return err
	}
	for i, sc := range st.RX {
		sci := sc.SCI
		for j, sa := range sc.SAs {
			p, err := sa.Params(suite, l.keyDir)
			if err != nil {
				return fmt.Errorf("static_keys.rx[%d].sas[%d]: %w", i, j, err)
			}
			if err := s.InstallRxSA(sci, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// watch implements link-fault pass-through: the plaintext port is up only
// while the line has carrier and the secure channel is up (or the policy
// is should-secure).
func (s *Supervisor) watch(ctx context.Context, l *link, w *faultWatch) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.check(l)
		// Logged when it changes: the loop runs five times a second.
		if err := l.dp.Err(); err != nil && err.Error() != lastErr {
			w.log.Error("datapath failed", "err", err)
			lastErr = err.Error()
		} else if err == nil {
			lastErr = ""
		}
		l.checkDataPlane(w.log)
	}
}

// faultWatch follows a link's faults (line carrier, PN guard, secure
// channel) and holds the plaintext port down while there is one, with
// link-fault pass-through. Its first check runs before the link is
// reported started, so status never shows a link without its fault.
type faultWatch struct {
	log        *slog.Logger
	first      bool
	wasSecured bool
}

func (w *faultWatch) check(l *link) {
	l.beat.Mark(time.Now())
	carrier := readCarrier(l.cfg.Line)
	secured := l.dp.Secured()
	if secured != w.wasSecured {
		logSecured(w.log, l, secured)
		w.wasSecured = secured
	}
	fault := ""
	switch {
	case !carrier:
		fault = "line port " + l.cfg.Line + " has no carrier"
	case l.guard != nil && l.guard.status() != "":
		fault = "static keys: " + l.guard.status()
	case !secured && !l.cfg.ShouldSecure():
		fault = "secure channel down (no transmit or receive SA)"
	}
	l.mu.Lock()
	changed := w.first || fault != l.fault
	l.fault, l.lineLink = fault, carrier
	l.mu.Unlock()
	if changed && l.cfg.LinkFaultPassthrough() {
		up := fault == ""
		if err := setLink(l.cfg.Plain, up); err != nil {
			w.log.Error("link-fault pass-through: cannot set the plaintext port", "port", l.cfg.Plain, "up", up, "err", err)
		} else if up {
			w.log.Info("plaintext port up", "port", l.cfg.Plain)
		} else {
			w.log.Warn("plaintext port held down", "port", l.cfg.Plain, "reason", fault)
		}
		l.mu.Lock()
		l.plainUp = up
		l.mu.Unlock()
	}
	w.first = false
}

// checkDataPlane updates the data plane diagnosis, and logs a change.
func (l *link) checkDataPlane(log *slog.Logger) {
	if !l.dp.Secured() {
		return
	}
	ls, fresh := l.reader.read(l, statusBudget)
	if !fresh {
		return // a part of the link is slow to answer; look next time
	}
	diag, looked := l.data.look(time.Now(), ls)
	if !looked {
		return
	}
	l.mu.Lock()
	changed := diag != l.dataDiag
	l.dataDiag = diag
	l.mu.Unlock()
	if changed && diag != "" {
		log.Warn(diag)
	}
}

func readCarrier(ifname string) bool {
	b, err := os.ReadFile("/sys/class/net/" + ifname + "/carrier")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func setLink(ifname string, up bool) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

func setMTU(ifname string, mtu int) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(l, mtu)
}

// newKaY builds the link's MKA entity. MKPDUs leave through the
// datapath's line port, untagged, with the configured EtherType.
func newKaY(l *link, lc config.Link, mac net.HardwareAddr, sci macsec.SCI, clock func() time.Time, log *slog.Logger) (*mka.KaY, error) {
	m := lc.MKA
	keys, fallback, err := loadChain(m, l.keyDir)
	if err != nil {
		return nil, err
	}
	return mka.New(mka.Options{
		SecY: l.dp, SCI: sci, MAC: mac,
		Suite: lc.Suite(), Offset: lc.Offset, IntegrityOnly: lc.IntegrityOnly,
		Priority: m.KeyServerPriority(), Keys: keys, Fallback: fallback,
		Destination: m.DestinationAddress(), AutoDestination: m.AutoDestination(), Hello: m.Hello(),
		EtherType: lc.EAPOLSendType(), ICVIndicator: m.ICVIndicator, RekeyInterval: m.Interval(),
		Log: log, Now: clock,
		Send: l.dp.SendEAPOL,
	})
}

// loadChain reads the key chain's CAKs and the fallback CAK.
func loadChain(m *config.MKA, keyDir string) ([]mka.CAK, *mka.CAK, error) {
	var keys []mka.CAK
	for i := range m.KeyChain {
		e := &m.KeyChain[i]
		cak, err := e.LoadCAK(keyDir)
		if err != nil {
			return nil, nil, fmt.Errorf("mka.key_chain[%d]: %w", i, err)
		}
		start, end := e.Validity()
		keys = append(keys, mka.CAK{CKN: e.CKN, Key: cak, Start: start, End: end})
	}
	var fallback *mka.CAK
	if f := m.Fallback; f != nil {
		cak, err := f.LoadCAK(keyDir)
		if err != nil {
			return nil, nil, fmt.Errorf("mka.fallback_key: %w", err)
		}
		fallback = &mka.CAK{CKN: f.CKN, Key: cak}
	}
	return keys, fallback, nil
}

// rekeyWait bounds how long Rekey waits for the KaY.
const rekeyWait = 2 * time.Second

// Rekey asks the named link's key server for a new SAK.
func (s *Supervisor) Rekey(name string) error {
	for _, l := range s.current() {
		if l.cfg.Name != name {
			continue
		}
		if l.kay == nil {
			return fmt.Errorf("link %s is keyed with static SAKs, not MKA", name)
		}
		// A wedged KaY must not hang the operator's session: it is asked
		// on a goroutine (one stays behind while it is wedged).
		done := make(chan error, 1)
		go func() { done <- l.kay.Rekey("requested by the operator") }()
		select {
		case err := <-done:
			return err
		case <-time.After(rekeyWait):
			return fmt.Errorf("link %s: key agreement does not answer within %s (wedged; /health and the watchdog say so)", name, rekeyWait)
		}
	}
	return fmt.Errorf("%w: %s", ErrNoLink, name)
}

// Monitor prepares a capture on port: the software datapath sends its
// frames past the capture taps until release is called, so a capture sees
// both directions. Other datapaths (and ports of no link) need nothing.
func (s *Supervisor) Monitor(port string) (release func()) {
	for _, l := range s.current() {
		if c, ok := l.dp.(capturer); ok && (l.cfg.Plain == port || l.cfg.Line == port) {
			c.Visible(true)
			return func() { c.Visible(false) }
		}
	}
	return func() {}
}

// ErrNoLink is returned by lookups of unknown links.
var ErrNoLink = errors.New("no such link")
