// Package afpacket moves raw Ethernet frames in and out of a Linux
// interface through AF_PACKET sockets with memory-mapped rings: a TPACKET_V3
// receive ring (frames arrive in blocks, one poll per block) and a
// TPACKET_V2 transmit ring (frames are queued and sent with one syscall per
// batch). Several receive sockets can share an interface in a fanout group
// that hashes flows, so workers on different cores keep per-flow order.
package afpacket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RxOptions tune a receive ring.
type RxOptions struct {
	// FanoutGroup, when not 0, joins the socket to a PACKET_FANOUT_HASH
	// group: the kernel spreads flows across the group's sockets.
	FanoutGroup uint16
	// Promiscuous makes the interface deliver every frame on the wire.
	Promiscuous bool
	// BlockSize and Blocks size the ring (defaults 1 MiB × 16). A block
	// must hold the largest frame.
	BlockSize, Blocks int
	// RetireMillis hands a partly filled block to the reader after this
	// long (default 1 ms): the latency bound at low rates.
	RetireMillis int
}

// Rx is a TPACKET_V3 receive ring on one interface. It does not see the
// frames this host sends on the interface.
type Rx struct {
	fd        int
	ring      []byte
	blockSize int
	blocks    int
	next      int    // next block to read
	scratch   []byte // frame with its VLAN tag put back
	Ifname    string
	// mu is held by Receive; Close takes it, so the ring is never
	// unmapped under a reader.
	mu      sync.Mutex
	closing atomic.Bool
	wake    int // eventfd: Close wakes a Receive waiting for frames
}

// OpenRx opens a receive ring on ifname.
func OpenRx(ifname string, o RxOptions) (*Rx, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if o.BlockSize == 0 {
		o.BlockSize = 1 << 20
	}
	if o.Blocks == 0 {
		o.Blocks = 16
	}
	if o.RetireMillis == 0 {
		o.RetireMillis = 1
	}
	// Protocol 0: the socket receives nothing until bind below names the
	// port. Created with ETH_P_ALL it would take in frames from every
	// interface of the namespace while the ring is set up, and hand
	// them on as if they came from this port.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: AF_PACKET socket (needs CAP_NET_RAW): %w", ifname, err)
	}
	r := &Rx{fd: fd, wake: -1, blockSize: o.BlockSize, blocks: o.Blocks, Ifname: ifname, scratch: make([]byte, o.BlockSize)}
	fail := func(what string, err error) (*Rx, error) {
		r.Close()
		return nil, fmt.Errorf("%s: %s: %w", ifname, what, err)
	}
	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail("eventfd", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3", err)
	}
	// Our own transmissions on this interface are not input.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	const frameSize = 2048 // only a granularity for the kernel's checks in V3
	req := unix.TpacketReq3{
		Block_size:     uint32(o.BlockSize),
		Block_nr:       uint32(o.Blocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(o.BlockSize / frameSize * o.Blocks),
		Retire_blk_tov: uint32(o.RetireMillis),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	r.ring, err = unix.Mmap(fd, 0, o.BlockSize*o.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
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
	if o.FanoutGroup != 0 {
		// A fanout group receives through its own hook, which ignores
		// outgoing frames only when the group is made with this flag
		// (the socket option above does not carry over): without it the
		// workers would take frames sent on the port as input.
		mode := unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(o.FanoutGroup)|mode<<16); err != nil {
			return fail("PACKET_FANOUT", err)
		}
	}
	return r, nil
}

// Block header (struct tpacket_block_desc with tpacket_hdr_v1) offsets.
const (
	blkStatus   = 8
	blkNumPkts  = 12
	blkFirstPkt = 16
)

// Packet header (struct tpacket3_hdr) offsets.
const (
	pktNext     = 0
	pktSnaplen  = 12
	pktLen      = 16
	pktStatus   = 20
	pktMac      = 24
	pktVlanTCI  = 32
	pktVlanTPID = 36
)

func (r *Rx) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.ring[off])) }
func (r *Rx) u16(off int) uint16  { return *(*uint16)(unsafe.Pointer(&r.ring[off])) }

// ErrClosed is returned by Receive after Close.
var ErrClosed = errors.New("afpacket: socket closed")

// Receive waits for the next block of frames and calls fn for each, then
// hands the block back to the kernel and returns the count. The frame
// slice is only valid during fn. Frames the ring truncated are skipped
// and counted in truncated. It returns ctx.Err() once ctx is done.
func (r *Rx) Receive(ctx context.Context, fn func(frame []byte)) (n, truncated int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring == nil {
		return 0, 0, ErrClosed
	}
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	base := r.next * r.blockSize
	status := r.u32(base + blkStatus)
	for atomic.LoadUint32(status)&unix.TP_STATUS_USER == 0 {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		if r.closing.Load() {
			return 0, 0, ErrClosed
		}
		pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}, {Fd: int32(r.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			return 0, 0, err
		}
	}
	num := int(*r.u32(base + blkNumPkts))
	off := base + int(*r.u32(base + blkFirstPkt))
	for i := 0; i < num; i++ {
		snap, full := int(*r.u32(off + pktSnaplen)), int(*r.u32(off + pktLen))
		mac := off + int(r.u16(off+pktMac))
		if snap < full || mac+snap > base+r.blockSize {
			truncated++
		} else {
			frame := r.ring[mac : mac+snap]
			if *r.u32(off + pktStatus)&unix.TP_STATUS_VLAN_VALID != 0 && snap >= 12 {
				// The NIC (or veth) took the outer VLAN tag off into
				// metadata; the frame crosses the wire with it.
				tpid := r.u16(off + pktVlanTPID)
				if *r.u32(off + pktStatus)&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
					tpid = 0x8100
				}
				tci := uint16(*r.u32(off + pktVlanTCI))
				f := r.scratch[:snap+4]
				copy(f, frame[:12])
				f[12], f[13], f[14], f[15] = byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci)
				copy(f[16:], frame[12:])
				frame = f
			}
			fn(frame)
			n++
		}
		next := int(*r.u32(off + pktNext))
		if next == 0 {
			break
		}
		off += next
	}
	atomic.StoreUint32(status, unix.TP_STATUS_KERNEL)
	r.next = (r.next + 1) % r.blocks
	return n, truncated, nil
}

// Drops returns how many frames the kernel dropped because the ring was
// full since the last call.
func (r *Rx) Drops() uint64 {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

// Close releases the ring and the socket. It wakes a Receive waiting for
// frames and waits for one handing frames out to return. It may be called
// more than once.
func (r *Rx) Close() error {
	r.closing.Store(true)
	if r.wake >= 0 {
		unix.Write(r.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
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

// Tx is a TPACKET_V2 transmit ring on one interface. Send queues a frame;
// Flush sends everything queued with one syscall. Neither ever blocks for
// long: while the port cannot send (down, no carrier, a stuck driver)
// frames are dropped and counted, as a wire would drop them, and sending
// resumes by itself when the port can send again. Not safe for
// concurrent use: give each worker its own.
type Tx struct {
	fd        int
	ring      []byte
	frameSize int
	frames    int
	next      int  // the slot Send fills next
	queued    bool // frames were queued since the kernel last took them all
	stalled   bool // the last wait for a free slot timed out
	maxWait   time.Duration
	dropped   *atomic.Uint64
	Ifname    string
	MaxFrame  int // the largest frame Send accepts
}

// TxOptions size a transmit ring.
type TxOptions struct {
	FrameSize int // slot size, default 16 KiB (jumbo frames fit)
	Frames    int // slots, default 256
	// MaxWait bounds how long Send waits for a free slot when the ring is
	// full (default 20 ms). After one such wait times out, Send drops at
	// once until a slot frees, so a dead port costs no more waits.
	MaxWait time.Duration
	// Dropped, when set, counts the frames the port could not send
	// (several rings may share one counter); otherwise the ring keeps
	// its own, read with Tx.Dropped.
	Dropped *atomic.Uint64
}

const tpacket2DataOff = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

// OpenTx opens a transmit ring on ifname.
func OpenTx(ifname string, o TxOptions) (*Tx, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if o.FrameSize == 0 {
		o.FrameSize = 1 << 14
	}
	if o.Frames == 0 {
		o.Frames = 256
	}
	if o.MaxWait == 0 {
		o.MaxWait = 20 * time.Millisecond
	}
	if o.Dropped == nil {
		o.Dropped = new(atomic.Uint64)
	}
	// Protocol 0: this socket receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: AF_PACKET socket (needs CAP_NET_RAW): %w", ifname, err)
	}
	t := &Tx{fd: fd, frameSize: o.FrameSize, frames: o.Frames, maxWait: o.MaxWait, dropped: o.Dropped, Ifname: ifname, MaxFrame: o.FrameSize - tpacket2DataOff}
	fail := func(what string, err error) (*Tx, error) {
		t.Close()
		return nil, fmt.Errorf("%s: %s: %w", ifname, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("TPACKET_V2", err)
	}
	// A frame the kernel refuses is skipped, not left in the ring where
	// it would stop every frame behind it.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return fail("PACKET_LOSS", err)
	}
	// Frames go straight to the driver: the qdisc adds nothing for a
	// bump in the wire.
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	// Room in the socket for a whole ring of frames the NIC has not
	// completed yet: sendto does not wait (MSG_DONTWAIT), and frames it
	// had no room for would wait in the ring for the next Flush.
	sndbuf := o.Frames * (o.FrameSize + 2048)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndbuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
	}
	blockSize := max(o.FrameSize, 1<<16)
	perBlock := blockSize / o.FrameSize
	blocks := (o.Frames + perBlock - 1) / perBlock
	t.frames = blocks * perBlock
	req := unix.TpacketReq{Block_size: uint32(blockSize), Block_nr: uint32(blocks), Frame_size: uint32(o.FrameSize), Frame_nr: uint32(t.frames)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return fail("PACKET_TX_RING", err)
	}
	t.ring, err = unix.Mmap(fd, 0, blockSize*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	return t, nil
}

// ErrTooBig is returned for a frame larger than the ring's slots.
var ErrTooBig = errors.New("afpacket: frame larger than a transmit slot")

// ErrDropped is returned for a frame dropped because the ring stayed full:
// the port is down, has no carrier, or its driver does not free frames.
var ErrDropped = errors.New("afpacket: transmit ring full (port down or no carrier): frame dropped")

// status is slot i's tp_status (struct tpacket2_hdr starts with it).
func (t *Tx) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.ring[i*t.frameSize]))
}

// Send queues one frame. When the ring is full it sends what is queued
// and waits a little for a free slot (back-pressure); if the port still
// does not drain, frames are dropped and counted, and a frame that finds
// no slot returns ErrDropped.
func (t *Tx) Send(frame []byte) error {
	if len(frame) > t.MaxFrame {
		return ErrTooBig
	}
	if atomic.LoadUint32(t.status(t.next)) != unix.TP_STATUS_AVAILABLE && !t.waitSlot() {
		t.dropped.Add(1)
		return ErrDropped
	}
	off := t.next * t.frameSize
	// struct tpacket2_hdr: tp_status, tp_len, tp_snaplen at 0, 4, 8.
	*(*uint32)(unsafe.Pointer(&t.ring[off+4])) = uint32(len(frame))
	*(*uint32)(unsafe.Pointer(&t.ring[off+8])) = uint32(len(frame))
	copy(t.ring[off+tpacket2DataOff:], frame)
	atomic.StoreUint32(t.status(t.next), unix.TP_STATUS_SEND_REQUEST)
	t.next = (t.next + 1) % t.frames
	t.queued = true
	return nil
}

// waitSlot sends what is queued and waits up to maxWait for the next slot
// to be free. A ring that does not drain in that time (no carrier: the
// kernel keeps retrying its oldest frame) has its queued frames dropped,
// so that it holds the newest ones when the port comes back; until then
// Send does not wait again.
func (t *Tx) waitSlot() bool {
	deadline := time.Now().Add(t.maxWait)
	for {
		t.kick()
		if atomic.LoadUint32(t.status(t.next)) == unix.TP_STATUS_AVAILABLE {
			t.stalled = false
			return true
		}
		if t.stalled || time.Now().After(deadline) {
			t.stalled = true
			t.dropQueued()
			// Slots the driver still holds cannot be taken back.
			return atomic.LoadUint32(t.status(t.next)) == unix.TP_STATUS_AVAILABLE
		}
		pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLOUT}}
		unix.Poll(pfd, 1)
	}
}

// Flush sends every queued frame. It does not wait for the port; frames
// a down port cannot take are dropped and counted, and it returns
// ErrDropped.
func (t *Tx) Flush() error {
	if !t.queued {
		return nil
	}
	return t.kick()
}

// kick hands the queued frames to the kernel without waiting for them to
// leave. Frames a down port cannot take are dropped and counted.
func (t *Tx) kick() error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(t.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.ENOBUFS, unix.EAGAIN:
			// Frames the socket buffer had no room for stay queued for
			// the next kick.
			last := (t.next + t.frames - 1) % t.frames
			t.queued = atomic.LoadUint32(t.status(last)) == unix.TP_STATUS_SEND_REQUEST
			return nil
		case unix.EINTR:
			continue
		case unix.ENETDOWN, unix.ENXIO:
			t.dropQueued()
			return ErrDropped
		default:
			return fmt.Errorf("%s: send: %w", t.Ifname, e)
		}
	}
}

// dropQueued takes back the frames the kernel did not send, newest first,
// and moves the fill position back to the oldest of them: the kernel
// resumes at that slot, so the two must agree.
func (t *Tx) dropQueued() {
	for range t.frames {
		prev := (t.next + t.frames - 1) % t.frames
		s := t.status(prev)
		if atomic.LoadUint32(s) != unix.TP_STATUS_SEND_REQUEST {
			break
		}
		atomic.StoreUint32(s, unix.TP_STATUS_AVAILABLE)
		t.next = prev
		t.dropped.Add(1)
	}
	t.queued = false
}

// Dropped counts the frames dropped because the port could not send them.
func (t *Tx) Dropped() uint64 { return t.dropped.Load() }

// SetQdiscBypass chooses how frames reach the driver: straight (on, the
// default) or through the qdisc layer, where capture sockets on the port
// (tcpdump, monitor traffic) see them too.
func (t *Tx) SetQdiscBypass(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return unix.SetsockoptInt(t.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, v)
}

// Close releases the ring and the socket. It may be called more than once.
func (t *Tx) Close() error {
	if t.ring != nil {
		unix.Munmap(t.ring)
		t.ring = nil
	}
	if t.fd < 0 {
		return nil
	}
	fd := t.fd
	t.fd = -1
	return unix.Close(fd)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
