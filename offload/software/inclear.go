package software

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
)

// An Exception lets the frames of one control protocol cross in clear,
// both ways, whatever the SA state: untagged frames with this EtherType
// to one of these group addresses and, when Prefixes are given, whose
// payload starts with one of them (slow protocol subtypes, MAC Control
// opcodes). Nothing else ever crosses in clear.
type Exception struct {
	Name      string
	EtherType uint16
	DAs       []net.HardwareAddr
	Prefixes  [][]byte
}

func (x Exception) String() string {
	das := make([]string, len(x.DAs))
	for i, d := range x.DAs {
		das[i] = d.String()
	}
	s := fmt.Sprintf("%s (EtherType %#04x to %s", x.Name, x.EtherType, joinOr(das))
	if len(x.Prefixes) > 0 {
		p := make([]string, len(x.Prefixes))
		for i, b := range x.Prefixes {
			p[i] = fmt.Sprintf("%x", b)
		}
		s += ", payload starting " + joinOr(p)
	}
	return s + ")"
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " or " + s[len(s)-1]
}

// check refuses rules that would let protected, key agreement or VLAN
// traffic cross in clear, or unicast data.
func (x Exception) check(eapol []uint16) error {
	switch et := x.EtherType; {
	case et < 0x600:
		return fmt.Errorf("protocol in clear %s: %#04x is a length, not an EtherType", x.Name, et)
	case et == 0x88e5, et == 0x8100, et == 0x88a8, et == 0x9100:
		return fmt.Errorf("protocol in clear %s: EtherType %#04x (MACsec or a VLAN tag) can never cross in clear", x.Name, et)
	}
	for _, t := range eapol {
		if x.EtherType == t {
			return fmt.Errorf("protocol in clear %s: EtherType %#04x is key agreement's", x.Name, t)
		}
	}
	if len(x.DAs) == 0 {
		return fmt.Errorf("protocol in clear %s: no destination address", x.Name)
	}
	for _, d := range x.DAs {
		if len(d) != 6 || d[0]&1 == 0 {
			return fmt.Errorf("protocol in clear %s: destination %s is not a group address; only control protocols to group addresses may cross in clear", x.Name, d)
		}
	}
	return nil
}

// inClear reports whether an untagged frame matches an exception.
func (e *Engine) inClear(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	for i := range e.opts.InClear {
		x := &e.opts.InClear[i]
		if x.EtherType != et {
			continue
		}
		for _, da := range x.DAs {
			if !bytes.Equal(frame[:6], da) {
				continue
			}
			if len(x.Prefixes) == 0 {
				return true
			}
			for _, p := range x.Prefixes {
				if bytes.HasPrefix(frame[14:], p) {
					return true
				}
			}
		}
	}
	return false
}

// managementVLAN reports whether a frame's outer tag is the in-band
// management VLAN, which belongs to the plaintext port alone.
func (e *Engine) managementVLAN(frame []byte) bool {
	v := e.opts.ManagementVLAN
	return v != 0 && len(frame) >= 16 && binary.BigEndian.Uint16(frame[12:]) == 0x8100 &&
		binary.BigEndian.Uint16(frame[14:])&0x0fff == v
}
