package afpacket

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
