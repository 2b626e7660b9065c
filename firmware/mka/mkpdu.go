package mka

// MKPDU encoding and decoding (IEEE 802.1X-2020 11.11). An MKPDU is an
// EAPOL frame (version 3, type 5) whose body is the Basic Parameter Set
// followed by optional parameter sets, each padded to four octets, and a
// 16-octet ICV at the end. The decoder never trusts a length: every
// parameter set is checked against what is left of the frame, and any
// problem is a *DecodeError with a reason that becomes a drop counter.

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/secwire/secwire/offload/macsec"
)

// Protocol constants.
const (
	EtherTypeEAPOL = 0x888E
	eapolVersion   = 3
	eapolTypeMKA   = 5
	icvLen         = 16
	maxCKNLen      = 32
	// MaxMKPDU bounds what is parsed: a peer list of a few hundred
	// members fits; anything longer is a bogus or hostile frame.
	MaxMKPDU = 8192
)

// Parameter set types (802.1X-2020 Table 11-7).
const (
	setLivePeers      = 1
	setPotentialPeers = 2
	setSAKUse         = 3
	setDistSAK        = 4
	setDistCAK        = 5
	setKMD            = 6
	setAnnouncement   = 7
	setXPN            = 8
	setICVIndicator   = 255
)

var (
	// DefaultDestination is the nearest non-TPMR bridge group address
	// (802.1X-2020 Table 11-1), where MKPDUs go unless configured.
	DefaultDestination = net.HardwareAddr{0x01, 0x80, 0xC2, 0x00, 0x00, 0x03}
	algorithmAgility   = [4]byte{0x00, 0x80, 0xC2, 0x01}
)

// shortDistSAK is the Distributed SAK body of GCM-AES-128: the KN and the
// wrapped 16-octet SAK, with no cipher suite.
const shortDistSAK = 4 + 16 + 8

// MI is a member identifier: 96 random bits naming one participant's
// instance.
type MI [12]byte

func (m MI) String() string { return fmt.Sprintf("%x", m[:]) }

// PeerEntry is one (MI, MN) pair of a peer list.
type PeerEntry struct {
	MI MI
	MN uint32
}

// KI is a key identifier: the key server's MI and the key number.
type KI struct {
	MI MI
	KN uint32
}

// SAKUse is the MACsec SAK Use parameter set (Figure 11-10). The lowest
// acceptable PNs hold 64 bits: the XPN parameter set carries the upper half.
type SAKUse struct {
	LatestAN                uint8
	LatestTx, LatestRx      bool
	OldAN                   uint8
	OldTx, OldRx            bool
	PlainTx, PlainRx        bool
	DelayProtect            bool
	Latest, Old             KI
	LatestLowest, OldLowest uint64
}

// DistSAK is the Distributed SAK parameter set (Figure 11-11). A nil
// Wrapped is the "no SAK, MACsec not used" form.
type DistSAK struct {
	AN      uint8
	Offset  uint8 // confidentiality offset code: 0 integrity only, 1 offset 0, 2 offset 30, 3 offset 50
	KN      uint32
	Suite   macsec.CipherSuite // 0 on the wire's short form (GCM-AES-128)
	Wrapped []byte
}

// MKPDU is one decoded key agreement message.
type MKPDU struct {
	Version       uint8 // MKA version 1..3
	Priority      uint8
	KeyServer     bool
	MACsecDesired bool
	Capability    uint8 // 0..3
	SCI           macsec.SCI
	MI            MI
	MN            uint32
	CKN           []byte

	Live, Potential []PeerEntry
	// KeyServerSSCI rides in the Live Peer List of version 3 MKPDUs that
	// distribute an XPN SAK.
	KeyServerSSCI uint8
	SAKUse        *SAKUse
	DistSAK       *DistSAK
	// XPN is set when the MKPDU carries (or must carry) the XPN
	// parameter set: the upper halves of the lowest acceptable PNs.
	XPN           bool
	XPNSuspension uint8
	ICVIndicator  bool
	// Ignored counts Distributed CAK, KMD, Announcement and unknown
	// parameter sets, which are parsed for length and skipped.
	Ignored int
}

// Reason names why a received MKPDU was dropped; each has a counter.
type Reason string

// Drop reasons.
const (
	ReasonTruncated    Reason = "truncated"
	ReasonOversize     Reason = "oversize"
	ReasonBadEAPOL     Reason = "not-an-mkpdu"
	ReasonBadVersion   Reason = "bad-mka-version"
	ReasonBadLength    Reason = "bad-parameter-set-length"
	ReasonBadAgility   Reason = "unsupported-algorithm-agility"
	ReasonBadICV       Reason = "bad-icv"
	ReasonUnknownCKN   Reason = "unknown-ckn"
	ReasonStaleMN      Reason = "stale-mn"
	ReasonReplayedMI   Reason = "replayed-mi"
	ReasonOwnMI        Reason = "peer-uses-our-mi"
	ReasonOwnSCI       Reason = "peer-uses-our-sci"
	ReasonBadSAK       Reason = "bad-distributed-sak"
	ReasonSuite        Reason = "cipher-suite-mismatch"
	ReasonNotKeyServer Reason = "sak-from-non-key-server"
	ReasonQueueFull    Reason = "receive-queue-full"
	// ReasonPeerTableFull: a new MI while a participant already has
	// maxPeers peers (replayed or flooded MKPDUs).
	ReasonPeerTableFull Reason = "peer-table-full"
	// ReasonNotMember: a SAK distributed to a Live Peer List without our
	// MI; it is for members that joined before us.
	ReasonNotMember Reason = "sak-for-other-members"
	// ReasonBadSSCI: an XPN SAK whose SSCIs cannot be read from the key
	// server's MKPDU.
	ReasonBadSSCI Reason = "bad-ssci"
)

// DecodeError is a malformed MKPDU.
type DecodeError struct {
	Reason Reason
	Detail string
}

func (e *DecodeError) Error() string { return "MKPDU " + string(e.Reason) + ": " + e.Detail }

func derr(r Reason, f string, a ...any) *DecodeError {
	return &DecodeError{Reason: r, Detail: fmt.Sprintf(f, a...)}
}

// Frame is a received MKPDU with the parts its ICV check needs.
type Frame struct {
	Dst    net.HardwareAddr
	Src    net.HardwareAddr
	PDU    *MKPDU
	signed []byte // destination address .. last octet before the ICV
	icv    []byte
}

// Verify checks the frame's ICV under ick in constant time.
func (f *Frame) Verify(ick []byte) bool {
	want, err := ICV(ick, f.signed)
	return err == nil && subtle.ConstantTimeCompare(want[:], f.icv) == 1
}

// Decode parses an Ethernet frame carrying an MKPDU: destination,
// source, up to two VLAN tags, an EAPOL EtherType (any: the caller chose
// which ones reach it), the EAPOL header and the MKPDU.
func Decode(frame []byte) (*Frame, error) {
	if len(frame) > MaxMKPDU+64 {
		return nil, derr(ReasonOversize, "%d-octet frame", len(frame))
	}
	off := 12
	for range 2 {
		if len(frame) >= off+2 {
			if et := binary.BigEndian.Uint16(frame[off:]); et == 0x8100 || et == 0x88A8 {
				off += 4
			}
		}
	}
	off += 2 // EtherType
	if len(frame) < off+4 {
		return nil, derr(ReasonTruncated, "no EAPOL header")
	}
	if frame[off+1] != eapolTypeMKA {
		return nil, derr(ReasonBadEAPOL, "EAPOL packet type %d", frame[off+1])
	}
	if frame[off] == 0 {
		return nil, derr(ReasonBadEAPOL, "EAPOL version 0")
	}
	bodyLen := int(binary.BigEndian.Uint16(frame[off+2:]))
	off += 4
	if bodyLen > len(frame)-off {
		return nil, derr(ReasonTruncated, "EAPOL body length %d, %d octets left", bodyLen, len(frame)-off)
	}
	body := frame[off : off+bodyLen] // Ethernet padding after it is ignored
	pdu, icvAt, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	return &Frame{
		Dst:    net.HardwareAddr(append([]byte(nil), frame[0:6]...)),
		Src:    net.HardwareAddr(append([]byte(nil), frame[6:12]...)),
		PDU:    pdu,
		signed: frame[:off+icvAt],
		icv:    body[icvAt : icvAt+icvLen],
	}, nil
}

// paramSet reads one parameter set header at b[0:4]: type, the two
// type-specific octet halves and the 12-bit body length, and returns the
// set's padded extent.
func paramSet(b []byte) (typ, o2, o3hi uint8, body []byte, next int, err error) {
	if len(b) < 4 {
		return 0, 0, 0, nil, 0, derr(ReasonTruncated, "parameter set header")
	}
	n := int(binary.BigEndian.Uint16(b[2:]) & 0x0FFF)
	padded := 4 + (n+3)&^3
	if padded > len(b) {
		return 0, 0, 0, nil, 0, derr(ReasonBadLength, "parameter set type %d claims %d octets, %d left", b[0], n, len(b)-4)
	}
	return b[0], b[1], b[2] >> 4, b[4 : 4+n], padded, nil
}

func decodeBody(b []byte) (*MKPDU, int, error) {
	if len(b) < 4+28+icvLen {
		return nil, 0, derr(ReasonTruncated, "%d-octet MKPDU is shorter than a Basic Parameter Set and ICV", len(b))
	}
	if len(b) > MaxMKPDU {
		return nil, 0, derr(ReasonOversize, "%d-octet MKPDU", len(b))
	}
	m := &MKPDU{}
	// The Basic Parameter Set: its first octet is the MKA version, not a type.
	_, prio, flags, body, next, err := paramSet(b[:len(b)-icvLen])
	if err != nil {
		return nil, 0, err
	}
	m.Version, m.Priority = b[0], prio
	if m.Version < 1 {
		return nil, 0, derr(ReasonBadVersion, "MKA version 0")
	}
	m.KeyServer = flags&0x8 != 0
	m.MACsecDesired = flags&0x4 != 0
	m.Capability = flags & 0x3
	if len(body) < 28+1 || len(body) > 28+maxCKNLen {
		return nil, 0, derr(ReasonBadLength, "Basic Parameter Set body of %d octets (CKN must be 1..32 octets)", len(body))
	}
	m.SCI = macsec.SCI(binary.BigEndian.Uint64(body))
	copy(m.MI[:], body[8:20])
	m.MN = binary.BigEndian.Uint32(body[20:])
	if !bytes.Equal(body[24:28], algorithmAgility[:]) {
		return nil, 0, derr(ReasonBadAgility, "algorithm agility %x", body[24:28])
	}
	m.CKN = append([]byte(nil), body[28:]...)
	off := next
	var xpnHi [2]uint32
	haveXPN := false
	for {
		rest := b[off:]
		if len(rest) == icvLen {
			return m.withXPN(xpnHi, haveXPN), off, nil
		}
		if rest[0] == setICVIndicator {
			// The indicator's length is the ICV's; the ICV follows it and
			// ends the MKPDU.
			if n := binary.BigEndian.Uint16(rest[2:]) & 0x0FFF; n != icvLen || len(rest) != 4+icvLen {
				return nil, 0, derr(ReasonBadLength, "ICV Indicator for a %d-octet ICV with %d octets after it", n, len(rest)-4)
			}
			m.ICVIndicator = true
			return m.withXPN(xpnHi, haveXPN), off + 4, nil
		}
		typ, o2, o3, body, next, err := paramSet(rest[:len(rest)-icvLen])
		if err != nil {
			return nil, 0, err
		}
		if err := m.decodeSet(typ, o2, o3, body, &xpnHi, &haveXPN); err != nil {
			return nil, 0, err
		}
		off += next
	}
}

func (m *MKPDU) decodeSet(typ, o2, o3 uint8, body []byte, xpnHi *[2]uint32, haveXPN *bool) error {
	switch typ {
	case setLivePeers, setPotentialPeers:
		if len(body)%16 != 0 {
			return derr(ReasonBadLength, "peer list of %d octets is not a list of 16-octet entries", len(body))
		}
		list := make([]PeerEntry, 0, len(body)/16)
		for i := 0; i < len(body); i += 16 {
			var e PeerEntry
			copy(e.MI[:], body[i:i+12])
			e.MN = binary.BigEndian.Uint32(body[i+12:])
			list = append(list, e)
		}
		if typ == setLivePeers {
			if m.Live != nil {
				return derr(ReasonBadLength, "two Live Peer Lists")
			}
			m.Live, m.KeyServerSSCI = list, o2
		} else {
			if m.Potential != nil {
				return derr(ReasonBadLength, "two Potential Peer Lists")
			}
			m.Potential = list
		}
	case setSAKUse:
		if m.SAKUse != nil {
			return derr(ReasonBadLength, "two SAK Use parameter sets")
		}
		u := &SAKUse{
			LatestAN: o2 >> 6, LatestTx: o2&0x20 != 0, LatestRx: o2&0x10 != 0,
			OldAN: (o2 >> 2) & 3, OldTx: o2&0x02 != 0, OldRx: o2&0x01 != 0,
			PlainTx: o3&0x8 != 0, PlainRx: o3&0x4 != 0, DelayProtect: o3&0x1 != 0,
		}
		switch len(body) {
		case 0:
		case 40:
			copy(u.Latest.MI[:], body[0:12])
			u.Latest.KN = binary.BigEndian.Uint32(body[12:])
			u.LatestLowest = uint64(binary.BigEndian.Uint32(body[16:]))
			copy(u.Old.MI[:], body[20:32])
			u.Old.KN = binary.BigEndian.Uint32(body[32:])
			u.OldLowest = uint64(binary.BigEndian.Uint32(body[36:]))
		default:
			return derr(ReasonBadLength, "SAK Use body of %d octets: want 0 or 40", len(body))
		}
		m.SAKUse = u
	case setDistSAK:
		if m.DistSAK != nil {
			return derr(ReasonBadLength, "two Distributed SAK parameter sets")
		}
		d := &DistSAK{AN: o2 >> 6, Offset: (o2 >> 4) & 3}
		switch {
		case len(body) == 0:
		case len(body) == shortDistSAK:
			d.KN = binary.BigEndian.Uint32(body)
			d.Suite = macsec.GCMAES128
			d.Wrapped = append([]byte(nil), body[4:]...)
		case len(body) == 12+24 || len(body) == 12+40:
			d.KN = binary.BigEndian.Uint32(body)
			id := binary.BigEndian.Uint64(body[4:])
			d.Suite = suiteByID(id)
			if d.Suite == 0 {
				return derr(ReasonSuite, "unknown cipher suite %016x", id)
			}
			d.Wrapped = append([]byte(nil), body[12:]...)
			if len(d.Wrapped) != d.Suite.KeyLen()+8 {
				return derr(ReasonBadLength, "Distributed SAK wraps %d octets for %s, which needs %d", len(d.Wrapped)-8, d.Suite, d.Suite.KeyLen())
			}
		default:
			return derr(ReasonBadLength, "Distributed SAK body of %d octets", len(body))
		}
		m.DistSAK = d
	case setXPN:
		if len(body) != 8 {
			return derr(ReasonBadLength, "XPN parameter set body of %d octets: want 8", len(body))
		}
		m.XPN, m.XPNSuspension = true, o2
		xpnHi[0] = binary.BigEndian.Uint32(body)
		xpnHi[1] = binary.BigEndian.Uint32(body[4:])
		*haveXPN = true
	default: // Distributed CAK, KMD, Announcement, and types from later revisions
		m.Ignored++
	}
	return nil
}

func (m *MKPDU) withXPN(hi [2]uint32, have bool) *MKPDU {
	if have && m.SAKUse != nil {
		m.SAKUse.LatestLowest |= uint64(hi[0]) << 32
		m.SAKUse.OldLowest |= uint64(hi[1]) << 32
	}
	return m
}

func suiteByID(id uint64) macsec.CipherSuite {
	if id == 0x0080020001000001 { // the value misprinted in 802.1AE-2006, still sent by old peers
		return macsec.GCMAES128
	}
	for _, s := range macsec.CipherSuites {
		if s.ID() == id {
			return s
		}
	}
	return 0
}
