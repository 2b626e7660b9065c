// Package ring names what a datapath needs from a port's frame rings,
// whichever kernel interface provides them (AF_PACKET or AF_XDP).
package ring

import "context"

// A Frame is a received frame still in its ring: Data is valid until the
// frame is released.
type Frame struct {
	Data []byte
	// Nanos is when the kernel received the frame (CLOCK_REALTIME), or 0
	// when the ring does not say.
	Nanos int64
	// ID identifies the frame's place in the ring, for Release.
	ID uint64
}

// Rx is a receive ring that several workers share: they serialise Take
// among themselves and Release among themselves; Wait needs no lock.
type Rx interface {
	// Take hands out the frames waiting, in arrival order, up to
	// len(dst), without waiting. Frames too long for the ring are
	// dropped and counted in truncated.
	Take(dst []Frame) (n, truncated int)
	// Release gives a taken frame's buffer back to the kernel.
	Release(f Frame)
	// Ready reports whether a frame is waiting, without a syscall.
	Ready() bool
	// Wait blocks until a frame may be waiting, ctx is done, or the ring
	// is interrupted.
	Wait(ctx context.Context) error
	// Interrupt ends every Wait, now and later.
	Interrupt()
	// Drops counts frames the kernel dropped for want of room since
	// the last call.
	Drops() uint64
	Close() error
}

// Tx is a transmit ring for one goroutine at a time.
type Tx interface {
	// Send queues a frame; it copies it.
	Send(frame []byte) error
	// Flush hands what is queued to the port.
	Flush() error
	// SetQdiscBypass sends straight to the driver (on) or through the
	// qdisc layer, where capture sockets see the frames.
	SetQdiscBypass(on bool) error
	Close() error
}
