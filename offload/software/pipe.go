package software

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/ring"
)

// A pipe is one direction of the datapath: frames from a receive ring,
// through the codec, to a transmit ring. Its workers share both rings:
//
//  1. in order (holding seq): take the frames waiting and, for protect,
//     classify them and reserve their PNs;
//  2. in parallel: seal or open them, each worker into its own buffer;
//  3. in order again (by ticket): complete the replay checks, transmit,
//     hand the receive slots back, flush.
//
// So frames leave in the order they arrived, and every SA's frames in PN
// order, however many workers run, as DPDK's ipsec-secgw does with its
// reorder library.
type pipe struct {
	e        *Engine
	in       ring.Rx
	out      ring.Tx
	ordered  func(e *Engine, it *item, frame []byte) // step 1, may be nil
	parallel func(e *Engine, it *item, frame []byte) // step 2
	// The engine's counters of frames read and written, added to once
	// per batch.
	inCtr, outCtr *atomic.Uint64

	seq    sync.Mutex
	ticket uint64 // next batch's ticket, under seq

	cmu  sync.Mutex
	cond sync.Cond
	turn uint64 // ticket that commits next, under cmu

	spinning atomic.Bool // a worker polls the ring without sleeping
}

// spinFor is how long a worker that just handled frames keeps looking
// for more before it sleeps in poll: under load the next frame comes
// sooner than a wakeup would take, and the wakeup costs more CPU than the
// look. At low rates it costs a few microseconds per frame.
const spinFor = 30 * time.Microsecond

// maxBatch bounds the frames one worker takes at once: enough to spread
// a syscall over many frames, few enough that a burst feeds every worker.
const maxBatch = 32

// stride is the output room per frame: a jumbo frame (the transmit
// ring's largest), MACsec overhead and the IV scratch.
const stride = 16<<10 + 256

func newPipe(e *Engine, in ring.Rx, out ring.Tx, ordered, parallel func(*Engine, *item, []byte)) *pipe {
	p := &pipe{e: e, in: in, out: out, ordered: ordered, parallel: parallel}
	p.cond.L = &p.cmu
	// Protect reads the plaintext port and writes the line; validate the
	// other way.
	p.inCtr, p.outCtr = &e.Stats.PlainIn, &e.Stats.LineOut
	if ordered == nil {
		p.inCtr, p.outCtr = &e.Stats.LineIn, &e.Stats.PlainOut
	}
	return p
}

// batch is one worker's frames in flight, and its output buffer.
type batch struct {
	ticket uint64
	frames []ring.Frame
	items  []item
	tally  macsec.Tally // the batch's codec counters, flushed after it
	busy   bool         // the worker's last step handled frames
}

func (p *pipe) newBatch() *batch {
	b := &batch{frames: make([]ring.Frame, maxBatch), items: make([]item, maxBatch)}
	buf := make([]byte, maxBatch*stride)
	for i := range b.items {
		b.items[i].area = buf[i*stride : (i+1)*stride : (i+1)*stride]
		b.items[i].tally = &b.tally
	}
	return b
}

// What to do with a frame at commit.
type kind uint8

const (
	dropFrame    kind = iota // counted already
	passFrame                // send in as it is (in clear, by rule)
	restoreTags              // send in with its VLAN tags put back (in clear, by policy)
	sealFrame                // protect in under res, send the result
	openedFrame              // send out once the replay check accepts it
	keyAgreement             // hand in to key agreement
)

// item is one frame's state through the pipe.
type item struct {
	kind   kind
	plain  bool // bound for the plaintext port
	in     []byte
	out    []byte
	res    macsec.Reservation
	opened macsec.Opened
	ctr    *atomic.Uint64 // also counts the frame when it is sent
	tags   []byte         // VLAN tags in clear, taken off in
	tagBuf [8]byte
	area   []byte // output room, stride bytes
	tally  *macsec.Tally
}

func (it *item) reset() { *it = item{area: it.area, tally: it.tally} }

// pass sends frame unchanged, counted in ctr.
func (it *item) pass(frame []byte, ctr *atomic.Uint64) {
	it.kind, it.in, it.out, it.ctr = passFrame, frame, frame, ctr
}

// dst is output room with off bytes free in front for tags.
func (it *item) dst(off int) []byte { return it.area[off:off] }

// withTags puts the item's VLAN tags back into p, which dst made with
// room for them in front.
func (it *item) withTags(p []byte) []byte {
	t := len(it.tags)
	if t == 0 {
		return p
	}
	w := it.area[:t+len(p)]
	copy(w, p[:12])
	copy(w[12:], it.tags)
	return w
}

// step takes one batch through the pipe, or waits for frames.
func (p *pipe) step(ctx context.Context, r *macsec.Reader, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Enter()
	p.seq.Lock()
	n, trunc := p.in.Take(b.frames)
	if trunc > 0 {
		p.e.Stats.RingTruncated.Add(uint64(trunc))
	}
	if n == 0 {
		p.seq.Unlock()
		r.Leave()
		if b.busy && p.spin() {
			b.busy = false
			return nil
		}
		b.busy = false
		return p.in.Wait(ctx)
	}
	b.busy = true
	p.inCtr.Add(uint64(n))
	// From here the batch always reaches commit: a later ticket waits
	// for it.
	b.ticket = p.ticket
	p.ticket++
	items := b.items[:n]
	for i := range items {
		items[i].reset()
		if p.ordered != nil {
			p.ordered(p.e, &items[i], b.frames[i].Data)
		}
	}
	p.seq.Unlock()
	for i := range items {
		p.parallel(p.e, &items[i], b.frames[i].Data)
	}
	r.Leave()
	p.commit(b, n)
	p.e.opts.SecY.Flush(&b.tally)
	return nil
}

// spin looks for frames for up to spinFor, one worker of the pipe at a
// time; it reports whether frames came.
func (p *pipe) spin() bool {
	if !p.spinning.CompareAndSwap(false, true) {
		return false
	}
	defer p.spinning.Store(false)
	deadline := time.Now().Add(spinFor)
	for !p.in.Ready() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// commit sends a batch's frames once every earlier batch is sent.
func (p *pipe) commit(b *batch, n int) {
	e := p.e
	p.cmu.Lock()
	for p.turn != b.ticket {
		p.cond.Wait()
	}
	sent := 0
	for i := range b.items[:n] {
		it := &b.items[i]
		ok := false
		switch it.kind {
		case dropFrame:
		case keyAgreement:
			if e.opts.OnEAPOL != nil {
				e.opts.OnEAPOL(append([]byte(nil), it.in...))
			}
		case openedFrame:
			if e.opts.SecY.Accept(&it.opened, it.tally) != nil {
				e.Stats.Dropped.Add(1)
				break
			}
			ok = e.toPlain(p.out, it.out, nil)
		case passFrame:
			ok = p.sendCounted(it)
		default: // sealFrame, restoreTags
			if it.plain {
				ok = e.toPlain(p.out, it.out, it.ctr)
			} else {
				ok = p.sendCounted(it)
			}
		}
		if ok {
			sent++
		}
		p.in.Release(b.frames[i])
	}
	p.outCtr.Add(uint64(sent))
	if err := p.out.Flush(); err != nil && !errors.Is(err, afpacket.ErrDropped) {
		e.Stats.TxErrors.Add(1)
	}
	p.turn++
	p.cond.Broadcast()
	p.cmu.Unlock()
}

func (p *pipe) sendCounted(it *item) bool {
	if it.ctr != nil {
		it.ctr.Add(1)
	}
	return p.e.send(p.out, it.out)
}

// seal is protect's parallel step.
func (e *Engine) seal(it *item, _ []byte) {
	switch it.kind {
	case sealFrame:
		t := len(it.tags)
		it.out = it.withTags(e.opts.SecY.Seal(it.dst(t), it.in, it.res, it.tally))
	case restoreTags:
		it.out = it.withTags(append(it.dst(len(it.tags)), it.in...))
	}
}
