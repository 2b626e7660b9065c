package mka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KaY is the key agreement entity of one link.
type KaY struct {
	o    Options
	log  *slog.Logger
	in   chan []byte
	kick chan struct{}
	// progress is when Run last finished a step (unix nanoseconds): the
	// watchdog's proof that key agreement is alive.
	progress atomic.Int64
	stall    atomic.Int64 // test fault injection: nanoseconds to hang

	mu     sync.Mutex
	parts  []*participant
	outbox [][]byte // MKPDUs to send once the lock is released
	// latest and old are the SAKs installed in the SecY (the CP's view).
	latest, old *sak
	cp          cpState
	used        usedSAKs
	// lastPrincipal is the principal participant at the previous step.
	lastPrincipal *participant
	dest          destination
	drops         map[Reason]uint64
	stats         Counters
	diag          observations
}

// Counters are the KaY's own counters.
type Counters struct {
	MKPDUsSent, MKPDUsReceived, MKPDUsValid, SendErrors uint64
	SAKsGenerated, SAKsInstalled, SAKsRetired           uint64
	CALosses                                            uint64 // secured CA lost: no live peer left
}

// New checks the options and builds a KaY; Run starts it.
func New(o Options) (*KaY, error) {
	if o.SecY == nil || o.Send == nil {
		return nil, errors.New("mka: no SecY or send function")
	}
	if !o.Suite.Valid() {
		return nil, fmt.Errorf("mka: cipher suite %d", o.Suite)
	}
	if err := checkChain(o.Keys, o.Fallback); err != nil {
		return nil, err
	}
	if o.EtherType == 0 {
		o.EtherType = EtherTypeEAPOL
	}
	if o.PNThreshold == 0 {
		o.PNThreshold = o.Suite.DefaultPNThreshold()
	}
	if o.Hello == 0 {
		o.Hello = HelloTime
	}
	if o.Life == 0 {
		o.Life = LifeFor(o.Hello)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	k := &KaY{
		o: o, log: o.Log.With("component", "mka"),
		in: make(chan []byte, receiveQueueSize), kick: make(chan struct{}, 1),
		drops: map[Reason]uint64{},
	}
	k.dest.configure(o.Destination, o.AutoDestination)
	k.progress.Store(o.Now().UnixNano())
	// Participants exist from the start, so status never shows a KaY
	// without its CAs while Run has yet to be scheduled.
	k.schedule(o.Now())
	return k, nil
}

// Receive hands the KaY an EAPOL frame from the line port. It never
// blocks: when the queue is full the frame is dropped and counted.
func (k *KaY) Receive(frame []byte) {
	select {
	case k.in <- frame:
	default:
		k.mu.Lock()
		k.drops[ReasonQueueFull]++
		k.mu.Unlock()
	}
}

// Run runs the protocol until ctx ends. It leaves installed SAs to the
// caller, which deletes them with the SecY.
func (k *KaY) Run(ctx context.Context) {
	t := time.NewTicker(tick)
	defer t.Stop()
	k.handle(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-k.in:
			k.handle(f)
		case <-k.kick:
			k.handle(nil)
		case <-t.C:
			k.handle(nil)
		}
	}
}

// handle processes one received frame (nil: none) and the timers, then
// sends what that produced with the lock released.
func (k *KaY) handle(frame []byte) {
	k.mu.Lock()
	if d := k.stall.Swap(0); d > 0 {
		time.Sleep(time.Duration(d)) // a wedged KaY, for watchdog tests
	}
	if frame != nil {
		k.receive(frame)
	}
	k.step()
	out := k.outbox
	k.outbox = nil
	k.mu.Unlock()
	k.transmit(out)
	k.progress.Store(time.Now().UnixNano())
}

// transmit sends MKPDUs; errors are counted, and logged once per burst.
func (k *KaY) transmit(out [][]byte) {
	var sent, failed uint64
	var last error
	for _, f := range out {
		if err := k.o.Send(f); err != nil {
			failed++
			last = err
		} else {
			sent++
		}
	}
	if len(out) == 0 {
		return
	}
	k.mu.Lock()
	before := k.stats.SendErrors
	k.stats.MKPDUsSent += sent
	k.stats.SendErrors += failed
	total := k.stats.SendErrors
	k.mu.Unlock()
	// Logged at the 1st, 2nd, 4th, 8th ... error: a line that is down
	// for hours cannot fill the log.
	if failed > 0 && (before == 0 || bits.Len64(before) != bits.Len64(total)) {
		k.log.Warn("cannot send MKPDU", "err", last, "send_errors", total)
	}
}

// Wipe clears every key the KaY holds (its CAKs and what they derive,
// and its copies of the SAKs) once it has stopped: the SecY forgets its
// own copies when its SAs are deleted.
func (k *KaY) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.parts {
		p.wipe()
	}
	for _, c := range k.o.Keys {
		c.Key.Wipe()
	}
	if k.o.Fallback != nil {
		k.o.Fallback.Key.Wipe()
	}
	for _, s := range []*sak{k.latest, k.old} {
		if s != nil {
			s.key.Wipe()
		}
	}
}

// Progress is when the KaY last completed a step: a KaY that stops
// making progress is wedged.
func (k *KaY) Progress() time.Time { return time.Unix(0, k.progress.Load()) }

// Stall makes the KaY hang for d inside its lock at its next step, as a
// wedged KaY would: a fault injection hook for watchdog tests.
func (k *KaY) Stall(d time.Duration) {
	k.stall.Store(int64(d))
	k.poke()
}

// ErrNotKeyServer is returned by Rekey on a participant that does not
// distribute keys.
var ErrNotKeyServer = errors.New("this end is not the key server; request the rekey on the key server")

// Rekey asks for a new SAK (for `request security mka rekey`, a PN
// threshold, or a test). Only the key server can honour it.
func (k *KaY) Rekey(why string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.principal()
	if p == nil {
		return errors.New("no secure connectivity association: nothing to rekey")
	}
	if !k.isKeyServer(p) {
		return ErrNotKeyServer
	}
	p.pendingRekey = why
	k.poke()
	return nil
}

// Reconfigure changes the tunables of a running KaY: the CA, its member
// identifiers and its SAKs stay as they are.
func (k *KaY) Reconfigure(t Tunables) error {
	if t.Hello == 0 {
		t.Hello = HelloTime
	}
	if t.Hello < MinHello || t.Hello > MaxHello {
		return fmt.Errorf("mka: hello time %s: want %s to %s", t.Hello, MinHello, MaxHello)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if t.Priority != k.o.Priority {
		k.log.Info("key server priority changed", "from", k.o.Priority, "to", t.Priority)
	}
	k.o.Priority, k.o.RekeyInterval, k.o.ICVIndicator = t.Priority, t.RekeyInterval, t.ICVIndicator
	k.o.Hello, k.o.Life = t.Hello, LifeFor(t.Hello)
	if !slices.Equal(t.Destination, k.o.Destination) || t.AutoDestination != k.o.AutoDestination {
		k.o.Destination, k.o.AutoDestination = t.Destination, t.AutoDestination
		k.dest.configure(t.Destination, t.AutoDestination)
	}
	for _, p := range k.parts {
		p.due = k.o.Now() // tell the peers at once
	}
	k.poke()
	return nil
}

func (k *KaY) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// step runs the timers: key chain schedule, peer expiry, key server work,
// the Controlled Port's SAK transitions and MKPDU transmission.
func (k *KaY) step() {
	now := k.o.Now()
	k.schedule(now)
	for _, p := range k.parts {
		k.expirePeers(p, now)
	}
	p := k.principal()
	k.principalChanged(p)
	if p == nil {
		if k.latest != nil || k.old != nil {
			k.log.Warn("secure connectivity association lost: no live peer; all SAs deleted (must-secure drops traffic)")
			k.deleteSAK(k.old)
			k.deleteSAK(k.latest)
			k.old, k.latest = nil, nil
			k.setCP(cpUnsecured)
			k.stats.CALosses++
		}
	} else {
		if k.isKeyServer(p) {
			k.serveKeys(p, now)
		} else if s := k.latest; s != nil && s.ca == p && s.ki.MI == p.mi {
			k.abandonLatest() // made while we were key server; we are not any more
		}
		k.ensureReceive(p)
		k.transition(p, now)
	}
	k.dest.step(now, k.anyLive() || now.Sub(k.diag.valid) < k.o.Life, k.o.Life)
	for _, p := range k.parts {
		if !now.Before(p.due) {
			k.send(p, now)
		}
	}
}

func (k *KaY) anyLive() bool {
	for _, p := range k.parts {
		if p.hasLive() {
			return true
		}
	}
	return false
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
