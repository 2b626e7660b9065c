package supervisor

import (
	"context"

	"github.com/secwire/secwire/offload/macsec"
)

// datapath is a link's running backend, whichever it is (backend.go picks
// it): the SecY seam MKA and static keys drive, and what the supervisor
// needs of the datapath around it. The link holds one and never asks
// which backend it is; a capability only one backend has is a small
// interface of its own (pnLimiter, capturer).
type datapath interface {
	macsec.Seam
	// forward starts carrying frames between the ports, and hands key
	// agreement frames received on the line port to onEAPOL. SAs may be
	// installed before: until then nothing crosses unprotected.
	forward(ctx context.Context, onEAPOL func(frame []byte)) error
	// SendEAPOL sends a key agreement frame on the line port, unprotected.
	SendEAPOL(frame []byte) error
	// Err is why the datapath stopped working, nil while it works.
	Err() error
	// Secured reports a transmit SA in use and at least one receive SA.
	Secured() bool
	// status fills in ls's counters and SAs, named as IEEE 802.1AE does
	// whatever the backend, so `show` reads the same either way.
	status(ls *LinkStatus)
	// Stop stops carrying frames and forgets every SA and key. Nothing
	// crosses after it returns.
	Stop()
}

// pnLimiter is a datapath that refuses transmit PNs at a limit exactly
// (the Go codec): the static-key PN guard holds transmission there.
// Without it the guard polls the PN and takes the SA away early.
type pnLimiter interface {
	SetTxPNLimit(an uint8, limit uint64) error
}

// capturer is a datapath whose transmitted frames skip the kernel's
// capture taps unless asked (the software datapath's rings).
type capturer interface {
	Visible(on bool)
}

// Compile-time checks: both backends are datapaths.
var (
	_ datapath  = (*kernelPath)(nil)
	_ datapath  = (*softwarePath)(nil)
	_ pnLimiter = (*softwarePath)(nil)
	_ capturer  = (*softwarePath)(nil)
)
