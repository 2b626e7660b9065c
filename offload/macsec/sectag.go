package macsec

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// EtherType is the MACsec EtherType.
const EtherType = 0x88E5

// TCI bits (IEEE 802.1AE 9.5); AN is the low two bits of the same octet.
const (
	TCIVersion    = 0x80 // V: must be 0
	TCIEndStation = 0x40 // ES: SCI is MAC SA || port 1, not sent
	TCISCI        = 0x20 // SC: SCI present in the SecTAG
	TCISCB        = 0x10 // SCB: EPON single copy broadcast
	TCIEncrypted  = 0x08 // E: user data is encrypted
	TCIChanged    = 0x04 // C: user data changed (set with E)
	tciANMask     = 0x03
)

// Frame layout constants.
const (
	macLen        = 12 // DA + SA
	secTAGLen     = 8  // EtherType, TCI/AN, SL, PN
	sciLen        = 8
	ICVLen        = 16
	maxShortLen   = 48 // SL is set only for secure data shorter than this
	minEthPayload = 60 // shortest Ethernet frame without FCS; shorter frames arrive padded
)

// Overhead is the number of bytes protection adds to a frame.
func Overhead(sendSCI bool) int {
	if sendSCI {
		return secTAGLen + sciLen + ICVLen
	}
	return secTAGLen + ICVLen
}

// SCI is a Secure Channel Identifier: a 48-bit MAC address and a 16-bit port.
type SCI uint64

// MakeSCI builds an SCI from a MAC address and a port number.
func MakeSCI(mac net.HardwareAddr, port uint16) SCI {
	var b [8]byte
	copy(b[:6], mac)
	binary.BigEndian.PutUint16(b[6:], port)
	return SCI(binary.BigEndian.Uint64(b[:]))
}

// ParseSCI accepts 16 hex digits, optionally separated by ':' or '-'
// ("12153524c0895e81", "12:15:35:24:c0:89:5e:81").
func ParseSCI(s string) (SCI, error) {
	h := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.TrimPrefix(strings.ToLower(s), "0x"))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("bad SCI %q: want 16 hex digits (MAC address and 2-byte port)", s)
	}
	return SCI(binary.BigEndian.Uint64(b)), nil
}

// MAC is the SCI's system identifier.
func (s SCI) MAC() net.HardwareAddr {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	return net.HardwareAddr(b[:6])
}

// Port is the SCI's port identifier.
func (s SCI) Port() uint16 { return uint16(s) }

func (s SCI) String() string { return fmt.Sprintf("%016x", uint64(s)) }

// MarshalText writes the SCI as 16 hex digits.
func (s SCI) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts what ParseSCI accepts.
func (s *SCI) UnmarshalText(b []byte) error {
	v, err := ParseSCI(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// SecTAG is a parsed MACsec security tag.
type SecTAG struct {
	TCI    byte   // TCI bits, AN masked out
	AN     uint8  // association number 0..3
	SL     uint8  // short length
	PN     uint32 // low 32 bits of the packet number
	SCI    SCI    // explicit SCI, valid when TCI&TCISCI
	Length int    // bytes from the EtherType to the end of the SecTAG: 8 or 16
}

// HasSCI reports whether the SCI was sent in the tag.
func (t *SecTAG) HasSCI() bool { return t.TCI&TCISCI != 0 }

// Encrypted reports whether E and C are set.
func (t *SecTAG) Encrypted() bool { return t.TCI&(TCIEncrypted|TCIChanged) == TCIEncrypted|TCIChanged }

// TagError says what is wrong with a SecTAG and at which byte of the frame.
type TagError struct {
	Offset int
	Reason string
}

func (e *TagError) Error() string {
	return fmt.Sprintf("malformed SecTAG at byte %d: %s", e.Offset, e.Reason)
}

// ParseSecTAG parses the SecTAG that starts at frame[off] (the MACsec
// EtherType) and checks it as IEEE 802.1AE 10.6.2 requires, including the
// short length against the frame length. It never panics.
func ParseSecTAG(frame []byte, off int) (SecTAG, error) {
	var t SecTAG
	if off < 0 || len(frame) < off+secTAGLen {
		return t, &TagError{len(frame), "frame too short for a SecTAG"}
	}
	if et := binary.BigEndian.Uint16(frame[off:]); et != EtherType {
		return t, &TagError{off, fmt.Sprintf("EtherType %#04x is not MACsec", et)}
	}
	tci := frame[off+2]
	t.TCI, t.AN = tci&^tciANMask, tci&tciANMask
	t.SL = frame[off+3]
	t.PN = binary.BigEndian.Uint32(frame[off+4:])
	t.Length = secTAGLen
	switch {
	case tci&TCIVersion != 0:
		return t, &TagError{off + 2, "TCI version bit V is set"}
	case tci&TCIEndStation != 0 && tci&TCISCI != 0:
		return t, &TagError{off + 2, "TCI has both ES and SC set"}
	case tci&TCISCI != 0 && tci&TCISCB != 0:
		return t, &TagError{off + 2, "TCI has both SC and SCB set"}
	case tci&(TCIEncrypted|TCIChanged) == TCIChanged:
		return t, &TagError{off + 2, "TCI has C set without E"}
	case t.SL&0xC0 != 0:
		return t, &TagError{off + 3, fmt.Sprintf("short length %d has reserved bits set", t.SL)}
	case t.SL >= maxShortLen:
		return t, &TagError{off + 3, fmt.Sprintf("short length %d is not below 48", t.SL)}
	}
	if tci&TCISCI != 0 {
		if len(frame) < off+secTAGLen+sciLen {
			return t, &TagError{len(frame), "frame too short for the SCI"}
		}
		t.SCI = SCI(binary.BigEndian.Uint64(frame[off+secTAGLen:]))
		t.Length += sciLen
	}
	secure := len(frame) - off - t.Length - ICVLen
	switch {
	case secure < 0:
		return t, &TagError{len(frame), "frame too short for the ICV"}
	case t.SL == 0 && secure < maxShortLen:
		return t, &TagError{off + 3, fmt.Sprintf("short length 0 but only %d bytes of secure data", secure)}
	case t.SL != 0 && secure != int(t.SL) && !(secure > int(t.SL) && len(frame) <= minEthPayload):
		// Frames below the Ethernet minimum arrive padded; SL says where
		// the real data ends.
		return t, &TagError{off + 3, fmt.Sprintf("short length %d but %d bytes of secure data", t.SL, secure)}
	}
	return t, nil
}

// putSecTAG writes the SecTAG into b, which is exactly its length.
func putSecTAG(b []byte, tci byte, an uint8, pn uint32, sci SCI, n int) {
	sl := byte(0)
	if n < maxShortLen {
		sl = byte(n)
	}
	b[0], b[1], b[2], b[3] = EtherType>>8, EtherType&0xff, tci|an&tciANMask, sl
	binary.BigEndian.PutUint32(b[4:], pn)
	if tci&TCISCI != 0 {
		binary.BigEndian.PutUint64(b[8:], uint64(sci))
	}
}
