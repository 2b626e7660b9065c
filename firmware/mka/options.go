package mka

import (
	"log/slog"
	"net"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// Protocol timers (802.1X-2020 Table 9-3). The hello time is configurable
// like Junos' transmit-interval; the life time keeps the standard's ratio
// of three hellos.
const (
	HelloTime        = 2 * time.Second
	LifeTime         = 6 * time.Second
	MinHello         = 500 * time.Millisecond
	MaxHello         = 6 * time.Second
	boundedHello     = 100 * time.Millisecond // earliest resend after a change
	retireDelay      = time.Second            // frames in flight under the old SAK drain
	tick             = 50 * time.Millisecond
	defaultPriority  = 16
	receiveQueueSize = 256
	// maxPeers bounds each participant's peer table: MKPDUs replayed from
	// old member identifiers, or a flood from a holder of the CAK, cannot
	// grow it without bound.
	maxPeers = 64
)

// LifeFor is the life time that goes with a hello time.
func LifeFor(hello time.Duration) time.Duration { return 3 * hello }

// CAK is one entry of a key chain. Zero Start means always started; zero
// End means it never expires.
type CAK struct {
	CKN        []byte
	Key        macsec.Key
	Start, End time.Time
}

// Options configure a KaY.
type Options struct {
	// SecY is the datapath the CP installs SAs in (any backend).
	SecY macsec.Seam
	SCI  macsec.SCI       // our transmit SCI
	MAC  net.HardwareAddr // source address of MKPDUs
	// Suite, Offset and IntegrityOnly are what the SecY was built for:
	// a key server distributes them, and a SAK for anything else is
	// refused (the CA stays unsecured, the reason is counted and logged).
	Suite         macsec.CipherSuite
	Offset        int
	IntegrityOnly bool
	Priority      uint8 // key server priority; lower wins, 255 never serves
	Keys          []CAK
	// Fallback is a CAK used only while no key chain CA has a live peer
	// (Junos fallback-key, Cisco's fallback key chain): it keeps a link up
	// across a rotation botched at one end.
	Fallback *CAK
	// Destination is where MKPDUs go (default 01-80-C2-00-00-03). With
	// AutoDestination it is only the first address tried: until a peer is
	// live the KaY moves through the standard group addresses and
	// broadcast, and keeps the one that works.
	Destination     net.HardwareAddr
	AutoDestination bool
	EtherType       uint16 // default 0x888E
	ICVIndicator    bool
	RekeyInterval   time.Duration // 0: no periodic rekey
	PNThreshold     uint64        // 0: the suite's default (3/4 of the PN space)
	// Send transmits one MKPDU. The KaY never calls it while holding its
	// lock, so a slow or failing line cannot wedge status reads.
	Send func(frame []byte) error
	Log  *slog.Logger
	Now  func() time.Time
	// Hello is the MKA hello time (default 2 s, MinHello..MaxHello); the
	// life time follows it unless Life is set (tests only).
	Hello, Life time.Duration
}

// Tunables are the options a running KaY can change without a new
// member identifier or a new SAK.
type Tunables struct {
	Priority        uint8
	Destination     net.HardwareAddr // nil: the default group address
	AutoDestination bool
	RekeyInterval   time.Duration
	Hello           time.Duration // 0: the default
	ICVIndicator    bool
}
