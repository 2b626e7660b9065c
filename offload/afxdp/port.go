// Package afxdp moves raw Ethernet frames in and out of a Linux interface
// through AF_XDP sockets: an XDP program in the driver hands each received
// frame to a socket's ring in user memory, without the kernel building a
// socket buffer for it, and frames are sent from the same memory (zero
// copy where the driver supports it, copy mode on veth). The rings
// satisfy offload/ring, so the software datapath runs on them as on
// AF_PACKET.
package afxdp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/ring"
)

// Port is AF_XDP on every receive queue of one interface.
type Port struct {
	Ifname  string
	prog    *xdpProgram
	socks   []*socket
	wake    int          // eventfd: Interrupt wakes Wait
	packet  *afpacket.Rx // receives while a capture watches (pass mode)
	closing atomic.Bool
	next    int    // the queue Take starts at
	drops   uint64 // kernel drops counted so far
	tx      *Tx
	mu      sync.Mutex // Close
}

// Options size a port's rings.
type Options struct {
	// Frames per receive queue (default 2048, fewer for many queues) and
	// for transmit (default 1024). Powers of two.
	RxFrames, TxFrames uint32
	// Dropped counts frames the port could not send.
	Dropped *atomic.Uint64
}

// Open attaches the XDP program to ifname and binds a socket to each of
// its receive queues. It fails, and leaves the port as it was, where the
// driver or kernel cannot run it natively: callers fall back to
// AF_PACKET.
func Open(ifname string, o Options) (*Port, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if ifi.MTU+14+8 > chunk-unix.XDP_PACKET_HEADROOM-320 {
		return nil, fmt.Errorf("%s: MTU %d is too large for AF_XDP without multi-buffer (at most about 3400)", ifname, ifi.MTU)
	}
	queues := rxQueues(ifname)
	if o.RxFrames == 0 {
		o.RxFrames = 2048
		for o.RxFrames > 256 && uint32(queues)*o.RxFrames > 4096 {
			o.RxFrames /= 2
		}
	}
	if o.TxFrames == 0 {
		o.TxFrames = 1024
	}
	if o.Dropped == nil {
		o.Dropped = new(atomic.Uint64)
	}
	p := &Port{Ifname: ifname, wake: -1}
	fail := func(err error) (*Port, error) {
		p.Close()
		return nil, fmt.Errorf("%s: AF_XDP: %w", ifname, err)
	}
	if p.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(err)
	}
	if p.prog, err = loadProgram(ifi.Index, queues); err != nil {
		return fail(err)
	}
	for q := range queues {
		txFrames := uint32(0)
		if q == 0 {
			txFrames = o.TxFrames // one socket sends
		}
		s, err := openSocket(ifi.Index, q, o.RxFrames, max(txFrames, 1))
		if err != nil {
			return fail(err)
		}
		p.socks = append(p.socks, s)
		if err := p.prog.xsks.Put(uint32(q), uint32(s.fd)); err != nil {
			return fail(fmt.Errorf("XSKMAP: %w", err))
		}
	}
	// The AF_PACKET ring takes over while captures watch (SetVisible); it
	// is idle otherwise: the XDP program takes every frame first.
	if p.packet, err = afpacket.OpenRx(ifname, afpacket.RxOptions{Promiscuous: true, Frames: 512}); err != nil {
		return fail(err)
	}
	fallback, err := afpacket.OpenTx(ifname, afpacket.TxOptions{Dropped: o.Dropped})
	if err != nil {
		return fail(err)
	}
	p.tx = &Tx{s: p.socks[0], ifname: ifname, dropped: o.Dropped, maxWait: 20 * time.Millisecond, packet: fallback}
	return p, nil
}

// rxQueues counts the interface's receive queues.
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	return max(1, len(m))
}

// ZeroCopy reports whether the driver maps the rings' memory directly.
func (p *Port) ZeroCopy() bool { return p.socks[0].zeroCopy }

// Tx is the port's transmit ring.
func (p *Port) Tx() *Tx { return p.tx }

// IDs tell which ring a frame came from: queue in the high bits, the
// AF_PACKET ring marked by the top bit.
const fromPacket = 1 << 63

// Take hands out the frames waiting on the port's queues, up to len(dst).
func (p *Port) Take(dst []ring.Frame) (n, truncated int) {
	for k := range p.socks {
		q := (p.next + k) % len(p.socks)
		s := p.socks[q]
		prod := atomic.LoadUint32(s.rx.prod)
		for s.rxCons != prod && n < len(dst) {
			d := s.rx.xdesc(s.rxCons)
			s.rxCons++
			dst[n] = ring.Frame{Data: s.umem[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(d.Len)], ID: uint64(q)<<48 | d.Addr}
			n++
		}
		atomic.StoreUint32(s.rx.cons, s.rxCons)
	}
	p.next++
	if n < len(dst) {
		m, t := p.packet.Take(dst[n:])
		for i := n; i < n+m; i++ {
			dst[i].ID |= fromPacket
		}
		n += m
		truncated += t
	}
	return n, truncated
}

// Release gives a frame's buffer back to the kernel.
func (p *Port) Release(f ring.Frame) {
	if f.ID&fromPacket != 0 {
		f.ID &^= fromPacket
		p.packet.Release(f)
		return
	}
	s := p.socks[f.ID>>48]
	*s.fill.addr(s.fillProd) = f.ID & (1<<48 - 1) &^ (chunk - 1)
	s.fillProd++
	atomic.StoreUint32(s.fill.prod, s.fillProd)
	if s.zeroCopy && s.fill.needWakeup() {
		unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
}

// Ready reports whether a frame waits on any queue.
func (p *Port) Ready() bool {
	for _, s := range p.socks {
		if atomic.LoadUint32(s.rx.prod) != atomic.LoadUint32(s.rx.cons) {
			return true
		}
	}
	return p.packet.Ready()
}

// Wait blocks until a frame may be waiting on any queue.
func (p *Port) Wait(ctx context.Context) error {
	pfd := make([]unix.PollFd, 0, len(p.socks)+2)
	for _, s := range p.socks {
		pfd = append(pfd, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	pfd = append(pfd, unix.PollFd{Fd: int32(p.packet.Fd()), Events: unix.POLLIN}, unix.PollFd{Fd: int32(p.wake), Events: unix.POLLIN})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.closing.Load() {
			return afpacket.ErrClosed
		}
		for _, s := range p.socks {
			if atomic.LoadUint32(s.rx.prod) != atomic.LoadUint32(s.rx.cons) {
				return nil
			}
		}
		if p.packet.Ready() {
			return nil
		}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			return fmt.Errorf("%s: poll: %w", p.Ifname, err)
		}
	}
}

// SetVisible sends received frames through the kernel stack (on), where
// captures on the port see them and the AF_PACKET ring takes them, or
// straight to the AF_XDP sockets (off).
func (p *Port) SetVisible(on bool) error { return p.prog.setPass(on) }

// Drops counts frames the kernel dropped for want of room since the last
// call.
func (p *Port) Drops() uint64 {
	var total uint64
	for _, s := range p.socks {
		st := s.stats()
		total += st.Rx_dropped + st.Rx_ring_full
	}
	d := total - p.drops
	p.drops = total
	return d + p.packet.Drops()
}

// Interrupt ends every Wait, now and later.
func (p *Port) Interrupt() {
	p.closing.Store(true)
	if p.wake >= 0 {
		unix.Write(p.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// Close detaches the program and closes the sockets; users of Take must
// have stopped.
func (p *Port) Close() error {
	p.Interrupt()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
		p.prog = nil
	}
	for _, s := range p.socks {
		errs = append(errs, s.Close())
	}
	p.socks = nil
	if p.packet != nil {
		errs = append(errs, p.packet.Close())
		p.packet = nil
	}
	if p.tx != nil && p.tx.packet != nil {
		errs = append(errs, p.tx.packet.Close())
	}
	if p.wake >= 0 {
		unix.Close(p.wake)
		p.wake = -1
	}
	return errors.Join(errs...)
}

// Tx sends from the port's first socket. Send copies a frame into a free
// UMEM chunk; Flush hands the queued ones to the kernel. While the port
// cannot send, frames are dropped and counted, never waited for long.
// While a capture watches (SetQdiscBypass(false)) frames go out through
// an AF_PACKET ring instead, past the capture taps.
type Tx struct {
	s        *socket
	ifname   string
	dropped  *atomic.Uint64
	maxWait  time.Duration
	stalled  bool
	queued   bool
	viaQdisc atomic.Bool
	packet   *afpacket.Tx
}

// MaxFrame is the largest frame Send takes.
const MaxFrame = chunk

// Send queues one frame.
func (t *Tx) Send(frame []byte) error {
	if t.viaQdisc.Load() {
		return t.packet.Send(frame)
	}
	if len(frame) > MaxFrame {
		return afpacket.ErrTooBig
	}
	s := t.s
	if len(s.free) == 0 {
		s.reclaim()
	}
	if len(s.free) == 0 && !t.waitChunk() {
		t.dropped.Add(1)
		return afpacket.ErrDropped
	}
	addr := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	copy(s.umem[addr:addr+chunk], frame)
	*s.tx.xdesc(s.txProd) = unix.XDPDesc{Addr: addr, Len: uint32(len(frame))}
	s.txProd++
	atomic.StoreUint32(s.tx.prod, s.txProd)
	t.queued = true
	return nil
}

// waitChunk kicks the kernel and waits up to maxWait for a sent chunk to
// come back; after one wait that timed out it does not wait again until
// chunks flow.
func (t *Tx) waitChunk() bool {
	deadline := time.Now().Add(t.maxWait)
	for {
		t.s.kick()
		t.s.reclaim()
		if len(t.s.free) > 0 {
			t.stalled = false
			return true
		}
		if t.stalled || time.Now().After(deadline) {
			t.stalled = true
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Flush hands the queued frames to the kernel.
func (t *Tx) Flush() error {
	if !t.queued {
		return t.packet.Flush()
	}
	t.queued = false
	if !t.s.zeroCopy || t.s.tx.needWakeup() {
		if err := t.s.kick(); err != nil {
			if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) {
				return afpacket.ErrDropped
			}
			return fmt.Errorf("%s: AF_XDP send: %w", t.ifname, err)
		}
	}
	t.s.reclaim()
	return t.packet.Flush()
}

// SetQdiscBypass sends through the AF_XDP socket (on) or through an
// AF_PACKET ring and the qdisc layer (off), where captures see the frames.
func (t *Tx) SetQdiscBypass(on bool) error {
	if err := t.packet.SetQdiscBypass(on); err != nil {
		return err
	}
	t.viaQdisc.Store(!on)
	return nil
}

// Close is a no-op: the port closes its rings.
func (t *Tx) Close() error { return nil }
