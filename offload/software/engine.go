// Package software is the bump-in-the-wire datapath in Go: it moves frames
// between a plaintext port and a line port through the MACsec codec, on
// AF_PACKET (or AF_XDP) rings. Each direction's workers share one receive
// and one transmit ring: they take frames and PNs in arrival order, run
// the crypto in parallel, and transmit in arrival order, so every SA's
// frames leave in PN order and a peer with replay window 0 accepts them. It fails closed: a frame leaves the line port only
// protected by a transmit SA (or in clear under should-secure while no SA
// is up), and leaves the plaintext port only after a receive SA validated
// it (or, under should-secure, in clear while no receive SA is up).
package software

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/afxdp"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/ring"
)

// Options configure an engine.
type Options struct {
	Plain, Line string // interface names
	SecY        *macsec.SecY
	// VLANsInClear tags (0..2) stay ahead of the SecTAG on the line.
	VLANsInClear int
	// ShouldSecure forwards in clear while no SA is up. Off: must-secure.
	ShouldSecure bool
	// EAPOLTypes arriving on the line port go to OnEAPOL and are never
	// forwarded. OnEAPOL gets a copy it may keep; it must not block long.
	EAPOLTypes []uint16
	OnEAPOL    func(frame []byte)
	// InClear are the protocol exceptions: frames they match cross in
	// clear both ways, whatever the policy and SA state.
	InClear []Exception
	// ManagementVLAN, when not 0, is the in-band management VLAN of the
	// plaintext port (802.1Q): its frames stay on the plaintext port's
	// wire and never cross, either way.
	ManagementVLAN uint16
	Workers        int // per direction; 0 means 1
	// Rings is the kernel interface the frames cross: "af_xdp" (native
	// XDP, zero copy where the driver can, else copy mode), "af_packet",
	// or "" / "auto": AF_XDP where both ports' drivers do zero copy, else
	// AF_PACKET. Copy mode costs about what AF_PACKET costs, and AF_XDP
	// hides the ports' frames from the host's capture tools (monitor
	// traffic still sees them).
	Rings string
	Log   *slog.Logger
	// Open opens the rings (tests may join a namespace first); nil opens
	// them in the current network namespace.
	Open func(fn func() error) error
}

// Stats are the engine's own counters, beside the codec's IEEE ones.
type Stats struct {
	PlainIn, LineIn   atomic.Uint64 // frames read from each port
	PlainOut, LineOut atomic.Uint64 // frames written to each port
	ToKeyAgreement    atomic.Uint64 // EAPOL frames from the line port
	DroppedNoSA       atomic.Uint64 // must-secure: no SA, frame dropped
	DroppedPNLimit    atomic.Uint64 // the transmit SA is held at its PN limit
	ClearForwarded    atomic.Uint64 // should-secure: crossed in clear
	Dropped           atomic.Uint64 // codec drops (its counters say why)
	BadVLANInClear    atomic.Uint64 // line frames without the configured tags
	RingTruncated     atomic.Uint64 // frames larger than a ring block
	// Protocol exceptions that crossed in clear, to and from the line.
	InClearToLine, InClearFromLine atomic.Uint64
	ManagementVLANDropped          atomic.Uint64 // management VLAN frames kept off the link
	// Frames a port could not send: down, no carrier, or a driver that
	// does not free its transmit ring.
	LineTxDropped  atomic.Uint64
	PlainTxDropped atomic.Uint64
	TxErrors       atomic.Uint64
}

// Engine is a running datapath for one link.
type Engine struct {
	opts       Options
	Stats      Stats
	rings      string // which kernel interface carries the frames
	rxPlain    ring.Rx
	rxLine     ring.Rx
	txPlain    ring.Tx
	txLine     ring.Tx
	eapolTx    *afpacket.Tx
	eapolMu    sync.Mutex
	protecting *pipe // plaintext port to line port
	validating *pipe // line port to plaintext port
	wg         sync.WaitGroup
	cancel     context.CancelFunc
	err        atomic.Pointer[error]

	visMu    sync.Mutex
	watchers int  // captures that asked to see transmitted frames
	closed   bool // the sockets are gone
}

// Start opens the rings and starts the workers.
func Start(ctx context.Context, o Options) (*Engine, error) {
	if o.SecY == nil {
		return nil, errors.New("software datapath: no SecY")
	}
	if o.VLANsInClear < 0 || o.VLANsInClear > 2 {
		return nil, fmt.Errorf("software datapath: %d VLAN tags in clear: want 0..2", o.VLANsInClear)
	}
	for _, x := range o.InClear {
		if err := x.check(o.EAPOLTypes); err != nil {
			return nil, fmt.Errorf("software datapath: %w", err)
		}
	}
	if o.ManagementVLAN > 4094 {
		return nil, fmt.Errorf("software datapath: management VLAN %d: want 1..4094", o.ManagementVLAN)
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Open == nil {
		o.Open = func(fn func() error) error { return fn() }
	}
	e := &Engine{opts: o}
	var err error
	switch o.Rings {
	case "af_xdp":
		err = e.openXDP(false)
	case "", "auto":
		if xerr := e.openXDP(true); xerr != nil {
			o.Log.Info("software datapath: AF_XDP not available, using AF_PACKET", "reason", xerr)
			err = e.openPacket()
		}
	case "af_packet":
		err = e.openPacket()
	default:
		err = fmt.Errorf("rings %q: want auto, af_xdp or af_packet", o.Rings)
	}
	if err != nil {
		return nil, fmt.Errorf("software datapath %s<->%s: %w", o.Plain, o.Line, err)
	}
	e.protecting = newPipe(e, e.rxPlain, e.txLine, (*Engine).protect, (*Engine).seal)
	e.validating = newPipe(e, e.rxLine, e.txPlain, nil, (*Engine).validate)
	ctx, e.cancel = context.WithCancel(ctx)
	for range o.Workers {
		e.wg.Add(2)
		go e.run(ctx, e.protecting, o.Plain)
		go e.run(ctx, e.validating, o.Line)
	}
	o.Log.Info("software datapath up", "plain", o.Plain, "line", o.Line, "workers", o.Workers, "rings", e.rings,
		"cipher", o.SecY.Config().Suite, "policy", map[bool]string{true: "should-secure", false: "must-secure"}[o.ShouldSecure])
	return e, nil
}

// openPacket opens AF_PACKET rings on both ports. The rings open in
// parallel: each costs the kernel an RCU grace period, which would
// otherwise add up on every link start. All the workers of a direction
// share one receive and one transmit ring.
func (e *Engine) openPacket() error {
	o := &e.opts
	e.rings = "af_packet"
	errs := make([]error, 5)
	var opening sync.WaitGroup
	open := func(i int, fn func() error) { opening.Go(func() { errs[i] = o.Open(fn) }) }
	open(0, func() (err error) {
		e.rxPlain, err = openRx(o.Plain)
		return err
	})
	open(1, func() (err error) {
		e.rxLine, err = openRx(o.Line)
		return err
	})
	open(2, func() (err error) {
		e.txLine, err = openTx(o.Line, &e.Stats.LineTxDropped)
		return err
	})
	open(3, func() (err error) {
		e.txPlain, err = openTx(o.Plain, &e.Stats.PlainTxDropped)
		return err
	})
	open(4, e.openEAPOL)
	opening.Wait()
	if err := errors.Join(errs...); err != nil {
		e.close()
		return err
	}
	return nil
}

// openXDP opens AF_XDP on both ports; it fails, leaving nothing open,
// where a port's driver or the kernel cannot run it natively, or, with
// zeroCopy, where a driver cannot map the rings without copies.
func (e *Engine) openXDP(zeroCopy bool) error {
	o := &e.opts
	e.rings = "af_xdp"
	var plain, line *afxdp.Port
	errs := make([]error, 3)
	var opening sync.WaitGroup
	opening.Go(func() {
		errs[0] = o.Open(func() (err error) {
			plain, err = afxdp.Open(o.Plain, afxdp.Options{Dropped: &e.Stats.PlainTxDropped})
			return err
		})
	})
	opening.Go(func() {
		errs[1] = o.Open(func() (err error) {
			line, err = afxdp.Open(o.Line, afxdp.Options{Dropped: &e.Stats.LineTxDropped})
			return err
		})
	})
	opening.Go(func() { errs[2] = o.Open(e.openEAPOL) })
	opening.Wait()
	if zeroCopy {
		for _, p := range []*afxdp.Port{plain, line} {
			if p != nil && !p.ZeroCopy() {
				errs = append(errs, fmt.Errorf("%s: the driver has no zero-copy AF_XDP", p.Ifname))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		for _, p := range []*afxdp.Port{plain, line} {
			if p != nil {
				p.Close()
			}
		}
		if e.eapolTx != nil {
			e.eapolTx.Close()
			e.eapolTx = nil
		}
		return err
	}
	e.rxPlain, e.txPlain = plain, plain.Tx()
	e.rxLine, e.txLine = line, line.Tx()
	return nil
}

func (e *Engine) openEAPOL() (err error) {
	e.eapolTx, err = afpacket.OpenTx(e.opts.Line, afpacket.TxOptions{Frames: 16, Dropped: &e.Stats.LineTxDropped})
	return err
}

func openRx(port string) (ring.Rx, error) {
	return afpacket.OpenRx(port, afpacket.RxOptions{Promiscuous: true})
}

func openTx(port string, dropped *atomic.Uint64) (ring.Tx, error) {
	return afpacket.OpenTx(port, afpacket.TxOptions{Dropped: dropped})
}

// Rings names the kernel interface that carries the frames: af_packet or
// af_xdp.
func (e *Engine) Rings() string { return e.rings }

// Stop stops the workers and closes the rings. After Stop nothing more
// crosses: the datapath is the only path between the ports. It returns
// promptly whatever the ports' state.
func (e *Engine) Stop() {
	e.cancel()
	// Interrupting the receive rings wakes workers waiting for frames.
	for _, r := range []ring.Rx{e.rxPlain, e.rxLine} {
		r.Interrupt()
	}
	e.wg.Wait()
	e.close()
}

// Err is the first error that stopped a worker, if any.
func (e *Engine) Err() error {
	if p := e.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Visible makes the frames the engine transmits visible to capture
// sockets on its ports (on), or sends them straight to the driver again
// when the last capture is done (off). Straight transmission skips the
// kernel's capture taps: without this, a capture on a port sees only the
// frames it receives.
func (e *Engine) Visible(on bool) {
	e.visMu.Lock()
	defer e.visMu.Unlock()
	if e.closed {
		return
	}
	before := e.watchers
	if on {
		e.watchers++
	} else if e.watchers > 0 {
		e.watchers--
	}
	if (before == 0) == (e.watchers == 0) {
		return
	}
	for _, t := range []ring.Tx{e.txPlain, e.txLine, e.eapolTx} {
		if err := t.SetQdiscBypass(e.watchers == 0); err != nil {
			e.opts.Log.Warn("capture visibility", "err", err)
		}
	}
	// AF_XDP takes received frames before the capture taps: while
	// watched, they come through the kernel stack.
	for _, r := range []ring.Rx{e.rxPlain, e.rxLine} {
		if v, ok := r.(interface{ SetVisible(bool) error }); ok {
			if err := v.SetVisible(e.watchers > 0); err != nil {
				e.opts.Log.Warn("capture visibility", "err", err)
			}
		}
	}
}

func (e *Engine) close() {
	e.visMu.Lock()
	e.closed = true
	e.visMu.Unlock()
	var rings []io.Closer
	for _, r := range []ring.Rx{e.rxPlain, e.rxLine} {
		if r != nil && !isNil(r) {
			rings = append(rings, r)
		}
	}
	for _, t := range []ring.Tx{e.txPlain, e.txLine} {
		if t != nil && !isNil(t) {
			rings = append(rings, t)
		}
	}
	if e.eapolTx != nil {
		rings = append(rings, e.eapolTx)
	}
	closeAll(rings)
}

// isNil reports a typed nil in an interface (a ring that failed to open).
func isNil(x any) bool {
	v := reflect.ValueOf(x)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// closeAll closes rings in parallel: each close waits for an RCU grace
// period in the kernel.
func closeAll(rings []io.Closer) {
	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Go(func() { r.Close() })
	}
	wg.Wait()
}

// SendEAPOL transmits a key agreement frame on the line port, unprotected
// (802.1X frames are never MACsec-protected). It never blocks for long:
// while the line cannot send, the frame is dropped, counted
// (LineTxDropped) and an error says so.
func (e *Engine) SendEAPOL(frame []byte) error {
	e.eapolMu.Lock()
	defer e.eapolMu.Unlock()
	err := e.eapolTx.Send(frame)
	if err == nil {
		err = e.eapolTx.Flush()
	}
	if errors.Is(err, afpacket.ErrDropped) {
		return fmt.Errorf("line port %s cannot send (down or no carrier): key agreement frame dropped", e.opts.Line)
	}
	return err
}

// run is one worker of a direction.
func (e *Engine) run(ctx context.Context, p *pipe, port string) {
	defer e.wg.Done()
	// The SecY wipes a retired SA's key schedule only once this worker is
	// between batches.
	r := e.opts.SecY.NewReader()
	defer e.opts.SecY.Release(r)
	b := p.newBatch()
	for {
		if err := p.step(ctx, r, b); err != nil {
			if ctx.Err() == nil && !errors.Is(err, afpacket.ErrClosed) {
				e.err.CompareAndSwap(nil, &err)
				e.opts.Log.Error("datapath worker stopped", "port", port, "err", err)
			}
			return
		}
	}
}

// protect handles a frame from the plaintext port; it runs while the
// pipe's order is held, so PNs are taken in arrival order. The frame is
// sealed later, in parallel with other workers, by seal.
func (e *Engine) protect(it *item, frame []byte) {
	if e.managementVLAN(frame) {
		e.Stats.ManagementVLANDropped.Add(1)
		return
	}
	if len(e.opts.InClear) > 0 && e.inClear(frame) {
		it.pass(frame, &e.Stats.InClearToLine)
		return
	}
	tags := e.opts.VLANsInClear
	inner := frame
	if tags > 0 {
		if vlanTags(frame, tags) < tags {
			// Untagged (or under-tagged) customer frames cannot go out
			// with the tags the circuit needs: drop, never send them
			// another way.
			e.Stats.BadVLANInClear.Add(1)
			return
		}
		// Protect the frame without its tags, then put them back between
		// the addresses and the SecTAG. The frame is ours until
		// released: the addresses move over the tags in place.
		it.tags = it.tagBuf[:4*tags]
		copy(it.tags, frame[12:])
		copy(frame[4*tags:], frame[:12])
		inner = frame[4*tags:]
	}
	r, err := e.opts.SecY.Reserve(inner)
	if err == nil {
		it.kind, it.in, it.res = sealFrame, inner, r
		return
	}
	if errors.Is(err, macsec.ErrNoTxSA) {
		if e.opts.ShouldSecure {
			it.kind, it.in, it.ctr = restoreTags, inner, &e.Stats.ClearForwarded
			return
		}
		e.Stats.DroppedNoSA.Add(1)
		return
	}
	if errors.Is(err, macsec.ErrPNLimit) {
		e.Stats.DroppedPNLimit.Add(1)
		return
	}
	e.Stats.Dropped.Add(1) // too long, PN exhausted: the codec counted it
}

// validate handles a frame from the line port, in parallel with other
// workers; its replay check completes in arrival order (accept).
func (e *Engine) validate(it *item, frame []byte) {
	tags := e.opts.VLANsInClear
	n := vlanTags(frame, tags)
	if len(frame) >= 14+4*n {
		et := binary.BigEndian.Uint16(frame[12+4*n:])
		for _, t := range e.opts.EAPOLTypes {
			if et == t {
				e.Stats.ToKeyAgreement.Add(1)
				it.kind, it.in = keyAgreement, frame
				return
			}
		}
	}
	if len(e.opts.InClear) > 0 && e.inClear(frame) {
		it.pass(frame, &e.Stats.InClearFromLine)
		it.plain = true
		return
	}
	if tags > 0 && n < tags {
		e.Stats.BadVLANInClear.Add(1)
		return
	}
	in := frame
	if tags > 0 {
		it.tags = it.tagBuf[:4*tags]
		copy(it.tags, frame[12:])
		copy(frame[4*tags:], frame[:12])
		in = frame[4*tags:]
	}
	// The plaintext goes to the batch's buffer (never into the ring the
	// frame sits in).
	pt, op, err := e.opts.SecY.Open(it.dst(4*tags), in)
	if err != nil {
		if errors.Is(err, macsec.ErrNoTag) && e.opts.ShouldSecure && !e.rxUp() {
			it.kind, it.ctr, it.plain = restoreTags, &e.Stats.ClearForwarded, true
			it.out = it.withTags(append(it.dst(4*tags), in...))
			return
		}
		e.Stats.Dropped.Add(1)
		return
	}
	it.kind, it.out, it.opened, it.plain = openedFrame, it.withTags(pt), op, true
}

// toPlain sends a frame from the line to the plaintext port, counting it
// in ctr too when given, unless it is on the management VLAN: frames of
// that VLAN from the far end would reach the management network.
// It reports whether the frame was queued.
func (e *Engine) toPlain(out ring.Tx, frame []byte, ctr *atomic.Uint64) bool {
	if e.managementVLAN(frame) {
		e.Stats.ManagementVLANDropped.Add(1)
		return false
	}
	if ctr != nil {
		ctr.Add(1)
	}
	return e.send(out, frame)
}

// send queues a frame and reports whether it could.
func (e *Engine) send(out ring.Tx, frame []byte) bool {
	if err := out.Send(frame); err != nil {
		if !errors.Is(err, afpacket.ErrDropped) { // the ring counted those
			e.Stats.TxErrors.Add(1)
		}
		return false
	}
	return true
}

// rxUp reports whether any receive SA is installed.
func (e *Engine) rxUp() bool {
	for _, sc := range e.opts.SecY.RxSCs() {
		for an := range uint8(4) {
			if sc.SA(an) != nil {
				return true
			}
		}
	}
	return false
}

// vlanTags counts the 802.1Q/802.1ad tags after the MAC addresses, up to max.
func vlanTags(frame []byte, max int) int {
	n := 0
	for n < max && len(frame) >= 12+4*(n+1)+2 {
		et := binary.BigEndian.Uint16(frame[12+4*n:])
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		n++
	}
	return n
}
