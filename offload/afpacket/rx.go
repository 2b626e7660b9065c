// Package afpacket moves raw Ethernet frames in and out of a Linux
// interface through AF_PACKET sockets with memory-mapped TPACKET_V2 rings:
// a receive ring whose slots the kernel hands over one frame at a time
// (the reader wakes for each frame, so no timer adds latency), and a
// transmit ring where frames are queued and sent with one syscall per
// batch.
package afpacket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/offload/ring"
)

// RxOptions tune a receive ring.
type RxOptions struct {
	// Promiscuous makes the interface deliver every frame on the wire.
	Promiscuous bool
	// FrameSize is a slot's size; the default fits the interface's MTU
	// (2 KiB up to MTU 1900, 16 KiB for jumbo frames). Longer frames are
	// truncated by the kernel, then skipped and counted.
	FrameSize int
	// Frames is the number of slots (default: 16 MiB worth, at least 1024):
	// how many frames may wait while the reader is busy elsewhere.
	Frames int
}

// Rx is a TPACKET_V2 receive ring on one interface. It does not see the
// frames this host sends on the interface.
//
// Receive serves one reader. Several workers can share the ring through
// Take, Release and Wait, serialising Take among themselves and Release
// among themselves.
type Rx struct {
	fd        int
	ring      []byte
	frameSize int
	frames    int
	perBlock  int
	blockSize int
	next      atomic.Int32 // next slot to take
	Ifname    string
	// mu is held by Receive; Close takes it, so the ring is never
	// unmapped under a reader.
	mu      sync.Mutex
	closing atomic.Bool
	wake    int // eventfd: Interrupt wakes a Wait
	batch   []Frame
}

// Frame is a received frame still in the ring.
type Frame = ring.Frame

// struct tpacket2_hdr offsets.
const (
	v2Status   = 0
	v2Len      = 4
	v2Snaplen  = 8
	v2Mac      = 12
	v2Sec      = 16
	v2Nsec     = 20
	v2VlanTCI  = 24
	v2VlanTPID = 26
	// The frame starts at 66 (TPACKET_ALIGN(32+20+16) - 14) bytes into the
	// slot; the 14 bytes before it, after struct sockaddr_ll, are free:
	// room to put a VLAN tag back in place.
	v2HdrEnd = 32 + 20
)

// SlotSize is the receive slot that holds a frame of an interface with
// this MTU, up to two VLAN tags included.
func SlotSize(mtu int) int {
	need := 66 + 14 + 8 + mtu
	size := 2048
	for size < need {
		size *= 2
	}
	return size
}

// OpenRx opens a receive ring on ifname.
func OpenRx(ifname string, o RxOptions) (*Rx, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if o.FrameSize == 0 {
		o.FrameSize = SlotSize(ifi.MTU)
	}
	if o.FrameSize%unix.TPACKET_ALIGNMENT != 0 || o.FrameSize < 128 {
		return nil, fmt.Errorf("%s: receive slot size %d: want a multiple of 16, at least 128", ifname, o.FrameSize)
	}
	if o.Frames == 0 {
		o.Frames = max(1024, (16<<20)/o.FrameSize)
	}
	// Protocol 0: the socket receives nothing until bind below names the
	// port. Created with ETH_P_ALL it would take in frames from every
	// interface of the namespace while the ring is set up, and hand
	// them on as if they came from this port.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: AF_PACKET socket (needs CAP_NET_RAW): %w", ifname, err)
	}
	r := &Rx{fd: fd, wake: -1, frameSize: o.FrameSize, Ifname: ifname}
	fail := func(what string, err error) (*Rx, error) {
		r.Close()
		return nil, fmt.Errorf("%s: %s: %w", ifname, what, err)
	}
	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail("eventfd", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("TPACKET_V2", err)
	}
	// Our own transmissions on this interface are not input.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	// Slots never straddle a block; a block is a few pages.
	r.blockSize = max(o.FrameSize, 1<<16)
	r.perBlock = r.blockSize / o.FrameSize
	blocks := (o.Frames + r.perBlock - 1) / r.perBlock
	r.frames = blocks * r.perBlock
	req := unix.TpacketReq{Block_size: uint32(r.blockSize), Block_nr: uint32(blocks), Frame_size: uint32(o.FrameSize), Frame_nr: uint32(r.frames)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	r.ring, err = unix.Mmap(fd, 0, r.blockSize*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	// Only now the socket starts receiving, from this port only.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	if o.Promiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail("promiscuous mode", err)
		}
	}
	return r, nil
}

// Slots returns the ring's number of slots.
func (r *Rx) Slots() int { return r.frames }

// slotOff is slot i's offset in the ring.
func (r *Rx) slotOff(i int) int { return i/r.perBlock*r.blockSize + i%r.perBlock*r.frameSize }

func (r *Rx) status(i int) *uint32 { return (*uint32)(unsafe.Pointer(&r.ring[r.slotOff(i)])) }
func (r *Rx) u32(off int) uint32   { return *(*uint32)(unsafe.Pointer(&r.ring[off])) }
func (r *Rx) u16(off int) uint16   { return *(*uint16)(unsafe.Pointer(&r.ring[off])) }

// ErrClosed is returned by Receive and Wait after Close or Interrupt.
var ErrClosed = errors.New("afpacket: socket closed")

// Take hands out the frames waiting at the head of the ring, in arrival
// order, up to len(dst), without waiting. Each stays in the ring until
// Release. Frames the ring truncated are released at once and counted in
// truncated. Take is not safe for concurrent use.
func (r *Rx) Take(dst []Frame) (n, truncated int) {
	for n < len(dst) {
		i := int(r.next.Load())
		st := atomic.LoadUint32(r.status(i))
		if st&unix.TP_STATUS_USER == 0 {
			break
		}
		r.next.Store(int32((i + 1) % r.frames))
		off := r.slotOff(i)
		snap, full := int(r.u32(off+v2Snaplen)), int(r.u32(off+v2Len))
		mac := off + int(r.u16(off+v2Mac))
		if snap < full || snap < 12 || mac+snap > off+r.frameSize {
			truncated++
			atomic.StoreUint32(r.status(i), unix.TP_STATUS_KERNEL)
			continue
		}
		frame := r.ring[mac : mac+snap : mac+snap]
		if st&unix.TP_STATUS_VLAN_VALID != 0 && mac-4 >= off+v2HdrEnd {
			// The NIC (or the stack) took the outer VLAN tag off into
			// metadata; the frame crosses the wire with it. Put it back
			// in place: the addresses move 4 bytes to the front.
			tpid := r.u16(off + v2VlanTPID)
			if st&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
				tpid = 0x8100
			}
			tci := r.u16(off + v2VlanTCI)
			f := r.ring[mac-4 : mac+snap : mac+snap]
			copy(f, f[4:16])
			f[12], f[13], f[14], f[15] = byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci)
			frame = f
		}
		dst[n] = Frame{Data: frame, Nanos: int64(r.u32(off+v2Sec))*1e9 + int64(r.u32(off+v2Nsec)), ID: uint64(i)}
		n++
	}
	return n, truncated
}

// Release hands a taken frame's slot back to the kernel. Frames may be
// released in any order, but the kernel fills slots in ring order: one
// held long stops the ring.
func (r *Rx) Release(f Frame) {
	atomic.StoreUint32(r.status(int(f.ID)), unix.TP_STATUS_KERNEL)
}

// Wait blocks until a frame is waiting at the head of the ring, ctx is
// done (ctx.Err()) or the ring is interrupted or closed (ErrClosed).
// Several goroutines may wait at once.
func (r *Rx) Wait(ctx context.Context) error {
	pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}, {Fd: int32(r.wake), Events: unix.POLLIN}}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.closing.Load() {
			return ErrClosed
		}
		if atomic.LoadUint32(r.status(int(r.next.Load())))&unix.TP_STATUS_USER != 0 {
			return nil
		}
		// The socket is readable as soon as the kernel fills a slot;
		// the timeout only bounds how late a cancelled ctx is noticed.
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			return fmt.Errorf("%s: poll: %w", r.Ifname, err)
		}
	}
}

// Receive waits for frames and calls fn for each frame waiting, then hands
// them back to the kernel and returns the count. The frame slice is only
// valid during fn. Frames the ring truncated are skipped and counted in
// truncated. It returns ctx.Err() once ctx is done.
func (r *Rx) Receive(ctx context.Context, fn func(frame []byte)) (n, truncated int, err error) {
	return r.ReceiveTimed(ctx, func(f Frame) { fn(f.Data) })
}

// ReceiveTimed is Receive with each frame's arrival time.
func (r *Rx) ReceiveTimed(ctx context.Context, fn func(f Frame)) (n, truncated int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring == nil {
		return 0, 0, ErrClosed
	}
	if err := r.Wait(ctx); err != nil {
		return 0, 0, err
	}
	if r.batch == nil {
		r.batch = make([]Frame, 64)
	}
	n, truncated = r.Take(r.batch)
	for _, f := range r.batch[:n] {
		fn(f)
		r.Release(f)
	}
	return n, truncated, nil
}

// Drops returns how many frames the kernel dropped because the ring was
// full since the last call.
func (r *Rx) Drops() uint64 {
	st, err := unix.GetsockoptTpacketStats(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

// Interrupt makes every Wait, now and later, return ErrClosed, without
// releasing the ring: frames taken stay valid until Close.
func (r *Rx) Interrupt() {
	r.closing.Store(true)
	if r.wake >= 0 {
		unix.Write(r.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// Close releases the ring and the socket. It wakes a Receive waiting for
// frames and waits for one handing frames out to return; users of Take
// must have stopped. It may be called more than once.
func (r *Rx) Close() error {
	r.Interrupt()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring != nil {
		unix.Munmap(r.ring)
		r.ring = nil
	}
	if r.wake >= 0 {
		unix.Close(r.wake)
		r.wake = -1
	}
	if r.fd < 0 {
		return nil
	}
	fd := r.fd
	r.fd = -1
	return unix.Close(fd)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Fd is the socket, for callers that poll it with other descriptors.
func (r *Rx) Fd() int { return r.fd }

// Ready reports whether a frame waits at the head of the ring.
func (r *Rx) Ready() bool {
	return atomic.LoadUint32(r.status(int(r.next.Load())))&unix.TP_STATUS_USER != 0
}
