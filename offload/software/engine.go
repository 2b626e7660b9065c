// Package software is the bump-in-the-wire datapath in Go: it moves frames
// between a plaintext port and a line port through the MACsec codec, on
// AF_PACKET rings, with workers per direction in a fanout group so flows
// keep their order. It fails closed: a frame leaves the line port only
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
	"os"
	"sync"
	"sync/atomic"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
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
	Workers        int // per direction; 0 means one per CPU
	Log            *slog.Logger
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
	opts    Options
	Stats   Stats
	rxPlain []*afpacket.Rx
	rxLine  []*afpacket.Rx
	txPlain []*afpacket.Tx
	txLine  []*afpacket.Tx
	eapolTx *afpacket.Tx
	eapolMu sync.Mutex
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	err     atomic.Pointer[error]

	visMu    sync.Mutex
	watchers int  // captures that asked to see transmitted frames
	closed   bool // the sockets are gone
}

var fanoutSeq atomic.Uint32

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
	// Fanout group ids are per network namespace; make them unique per
	// process and engine.
	base := uint16(os.Getpid()*7+int(fanoutSeq.Add(2))) | 1
	if o.Workers == 1 {
		// One socket per port needs no fanout group, and joining one
		// fails while the port is down (a plaintext port held down by
		// link-fault pass-through).
		base = 0
	}
	// The rings open in parallel: each costs the kernel an RCU grace
	// period, which would otherwise add up on every link start.
	n := o.Workers
	e.rxPlain, e.rxLine = make([]*afpacket.Rx, n), make([]*afpacket.Rx, n)
	e.txPlain, e.txLine = make([]*afpacket.Tx, n), make([]*afpacket.Tx, n)
	errs := make([]error, 4*n+1)
	var opening sync.WaitGroup
	open := func(i int, fn func() error) { opening.Go(func() { errs[i] = o.Open(fn) }) }
	for w := range n {
		open(4*w, func() (err error) {
			e.rxPlain[w], err = afpacket.OpenRx(o.Plain, afpacket.RxOptions{FanoutGroup: base, Promiscuous: true})
			return err
		})
		open(4*w+1, func() (err error) {
			e.rxLine[w], err = afpacket.OpenRx(o.Line, afpacket.RxOptions{FanoutGroup: lineGroup(base), Promiscuous: true})
			return err
		})
		open(4*w+2, func() (err error) {
			e.txLine[w], err = afpacket.OpenTx(o.Line, afpacket.TxOptions{Dropped: &e.Stats.LineTxDropped})
			return err
		})
		open(4*w+3, func() (err error) {
			e.txPlain[w], err = afpacket.OpenTx(o.Plain, afpacket.TxOptions{Dropped: &e.Stats.PlainTxDropped})
			return err
		})
	}
	open(4*n, func() (err error) {
		e.eapolTx, err = afpacket.OpenTx(o.Line, afpacket.TxOptions{Frames: 16, Dropped: &e.Stats.LineTxDropped})
		return err
	})
	opening.Wait()
	for _, err := range errs {
		if err != nil {
			e.close()
			return nil, fmt.Errorf("software datapath %s<->%s: %w", o.Plain, o.Line, err)
		}
	}
	ctx, e.cancel = context.WithCancel(ctx)
	for i := range o.Workers {
		e.wg.Add(2)
		go e.run(ctx, e.rxPlain[i], e.txLine[i], e.protect)
		go e.run(ctx, e.rxLine[i], e.txPlain[i], e.validate)
	}
	o.Log.Info("software datapath up", "plain", o.Plain, "line", o.Line, "workers", o.Workers,
		"cipher", o.SecY.Config().Suite, "policy", map[bool]string{true: "should-secure", false: "must-secure"}[o.ShouldSecure])
	return e, nil
}

func lineGroup(base uint16) uint16 {
	if base == 0 {
		return 0
	}
	return base + 1
}

// Stop stops the workers and closes the rings. After Stop nothing more
// crosses: the datapath is the only path between the ports. It returns
// promptly whatever the ports' state.
func (e *Engine) Stop() {
	e.cancel()
	// Closing the receive rings wakes workers waiting for frames.
	closeAll(e.rings(true, false))
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
	for _, t := range append(append(append([]*afpacket.Tx{}, e.txPlain...), e.txLine...), e.eapolTx) {
		if t != nil {
			if err := t.SetQdiscBypass(e.watchers == 0); err != nil {
				e.opts.Log.Warn("capture visibility", "port", t.Ifname, "err", err)
			}
		}
	}
}

func (e *Engine) close() {
	e.visMu.Lock()
	e.closed = true
	e.visMu.Unlock()
	closeAll(e.rings(true, true))
}

// rings lists the receive and/or transmit rings that opened.
func (e *Engine) rings(rx, tx bool) []io.Closer {
	var out []io.Closer
	for _, r := range append(e.rxPlain, e.rxLine...) {
		if rx && r != nil {
			out = append(out, r)
		}
	}
	for _, t := range append(e.txPlain, append(e.txLine, e.eapolTx)...) {
		if tx && t != nil {
			out = append(out, t)
		}
	}
	return out
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

// worker state: its own output buffer, reused for every frame.
type handler func(out *afpacket.Tx, buf []byte, frame []byte) []byte

func (e *Engine) run(ctx context.Context, in *afpacket.Rx, out *afpacket.Tx, h handler) {
	defer e.wg.Done()
	buf := make([]byte, 0, 64<<10) // room for a jumbo frame three times over
	// The SecY wipes a retired SA's key schedule only once this worker is
	// between batches.
	r := e.opts.SecY.NewReader()
	defer e.opts.SecY.Release(r)
	for {
		r.Enter()
		_, trunc, err := in.Receive(ctx, func(frame []byte) { buf = h(out, buf, frame) })
		r.Leave()
		if trunc > 0 {
			e.Stats.RingTruncated.Add(uint64(trunc))
		}
		if ferr := out.Flush(); ferr != nil && !errors.Is(ferr, afpacket.ErrDropped) {
			e.Stats.TxErrors.Add(1)
		}
		if err != nil {
			if ctx.Err() == nil {
				e.err.CompareAndSwap(nil, &err)
				e.opts.Log.Error("datapath worker stopped", "port", in.Ifname, "err", err)
			}
			return
		}
	}
}

func (e *Engine) send(out *afpacket.Tx, frame []byte, ctr *atomic.Uint64) {
	if err := out.Send(frame); err != nil {
		if !errors.Is(err, afpacket.ErrDropped) { // the ring counted those
			e.Stats.TxErrors.Add(1)
		}
		return
	}
	ctr.Add(1)
}

// protect handles a frame from the plaintext port.
func (e *Engine) protect(out *afpacket.Tx, buf, frame []byte) []byte {
	e.Stats.PlainIn.Add(1)
	if e.managementVLAN(frame) {
		e.Stats.ManagementVLANDropped.Add(1)
		return buf
	}
	if len(e.opts.InClear) > 0 && e.inClear(frame) {
		e.Stats.InClearToLine.Add(1)
		e.send(out, frame, &e.Stats.LineOut)
		return buf
	}
	s := e.opts.SecY
	tags := e.opts.VLANsInClear
	if tags == 0 {
		p, err := s.Protect(buf, frame)
		if err == nil {
			e.send(out, p, &e.Stats.LineOut)
			return buf
		}
		e.protectFailed(out, frame, err)
		return buf
	}
	// Tags in clear: protect the frame without them, then put them back
	// between the addresses and the SecTAG.
	n := vlanTags(frame, tags)
	if n < tags {
		// Untagged (or under-tagged) customer frames cannot go out with
		// the tags the circuit needs: drop, never send them another way.
		e.Stats.BadVLANInClear.Add(1)
		return buf
	}
	hdr := 12 + 4*tags
	inner := buf[:0]
	inner = append(inner, frame[:12]...)
	inner = append(inner, frame[hdr:]...)
	p, err := s.Protect(inner[len(inner):], inner)
	if err != nil {
		e.protectFailed(out, frame, err)
		return buf
	}
	// p lives after inner in buf's backing array; build the wire frame
	// after it.
	wire := p[len(p):]
	wire = append(wire, p[:12]...)
	wire = append(wire, frame[12:hdr]...)
	wire = append(wire, p[12:]...)
	e.send(out, wire, &e.Stats.LineOut)
	return buf
}

func (e *Engine) protectFailed(out *afpacket.Tx, frame []byte, err error) {
	if errors.Is(err, macsec.ErrNoTxSA) {
		if e.opts.ShouldSecure {
			e.Stats.ClearForwarded.Add(1)
			e.send(out, frame, &e.Stats.LineOut)
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

// validate handles a frame from the line port.
func (e *Engine) validate(out *afpacket.Tx, buf, frame []byte) []byte {
	e.Stats.LineIn.Add(1)
	tags := e.opts.VLANsInClear
	n := vlanTags(frame, tags)
	if len(frame) >= 14+4*n {
		et := binary.BigEndian.Uint16(frame[12+4*n:])
		for _, t := range e.opts.EAPOLTypes {
			if et == t {
				e.Stats.ToKeyAgreement.Add(1)
				if e.opts.OnEAPOL != nil {
					e.opts.OnEAPOL(append([]byte(nil), frame...))
				}
				return buf
			}
		}
	}
	if len(e.opts.InClear) > 0 && e.inClear(frame) {
		e.Stats.InClearFromLine.Add(1)
		e.send(out, frame, &e.Stats.PlainOut)
		return buf
	}
	s := e.opts.SecY
	if tags > 0 && n < tags {
		e.Stats.BadVLANInClear.Add(1)
		return buf
	}
	// The plaintext goes to buf (never into the ring the frame sits in).
	in, dst := frame, buf[:0]
	if tags > 0 {
		hdr := 12 + 4*tags
		in = append(append(buf[:0], frame[:12]...), frame[hdr:]...)
		dst = in[len(in):]
	}
	pt, err := s.Validate(dst, in)
	if err != nil {
		if errors.Is(err, macsec.ErrNoTag) && e.opts.ShouldSecure && !e.rxUp() {
			e.toPlain(out, frame, &e.Stats.ClearForwarded)
			return buf
		}
		e.Stats.Dropped.Add(1)
		return buf
	}
	if tags > 0 {
		// The customer sees the frame as it entered the far end: with
		// its tags.
		w := pt[len(pt):]
		w = append(w, pt[:12]...)
		w = append(w, frame[12:12+4*tags]...)
		w = append(w, pt[12:]...)
		pt = w
	}
	e.toPlain(out, pt, nil)
	return buf
}

// toPlain sends a frame from the line to the plaintext port, counting it
// in ctr too when given, unless it is on the management VLAN: frames of
// that VLAN from the far end would reach the management network.
func (e *Engine) toPlain(out *afpacket.Tx, frame []byte, ctr *atomic.Uint64) {
	if e.managementVLAN(frame) {
		e.Stats.ManagementVLANDropped.Add(1)
		return
	}
	if ctr != nil {
		ctr.Add(1)
	}
	e.send(out, frame, &e.Stats.PlainOut)
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
