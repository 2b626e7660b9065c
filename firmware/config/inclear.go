package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// ProtocolInClear is one protocol exception: frames of a control
// protocol that cross the link in clear, both ways, whatever the SA state
// (LACP on a LAG member circuit, LLDP for the provider's port
// identification, Ethernet pause). lacp, lldp and pause are built in; any
// other name needs an ethertype and a group destination address.
type ProtocolInClear struct {
	// Protocol: lacp, lldp, pause or a name of your own.
	// Default: (required)
	Name string `json:"name"`
	// Your own protocol's EtherType in hex, such as 0x88f7.
	// Default: the built-in protocol's
	EtherType EtherType `json:"ethertype,omitempty"`
	// Your own protocol's destination, a group MAC address.
	// Default: the built-in protocol's
	Destination MAC `json:"destination,omitzero"`
}

// InClearRule is what an exception lets through: untagged frames with
// EtherType to one of DAs whose payload starts with one of Prefixes (any
// payload when there are none).
type InClearRule struct {
	Name      string
	EtherType uint16
	DAs       []net.HardwareAddr
	Prefixes  [][]byte
}

// BuiltinProtocolsInClear are the exception names that need no ethertype.
var BuiltinProtocolsInClear = []string{"lacp", "lldp", "pause"}

func builtinInClear(name string) (InClearRule, bool) {
	mac := func(last byte) net.HardwareAddr { return net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, last} }
	switch name {
	case "lacp": // IEEE 802.1AX: slow protocols, LACP and Marker
		return InClearRule{Name: name, EtherType: 0x8809, DAs: []net.HardwareAddr{mac(0x02)}, Prefixes: [][]byte{{0x01}, {0x02}}}, true
	case "lldp": // IEEE 802.1AB: nearest bridge, non-TPMR bridge, customer bridge
		return InClearRule{Name: name, EtherType: 0x88cc, DAs: []net.HardwareAddr{mac(0x0e), mac(0x03), mac(0x00)}}, true
	case "pause": // MAC Control PAUSE (802.3 Annex 31B) and PFC (802.1Qbb)
		return InClearRule{Name: name, EtherType: 0x8808, DAs: []net.HardwareAddr{mac(0x01)}, Prefixes: [][]byte{{0x00, 0x01}, {0x01, 0x01}}}, true
	}
	return InClearRule{}, false
}

// Rule is the exception's match (Check has accepted it).
func (p *ProtocolInClear) Rule() InClearRule {
	if r, ok := builtinInClear(p.Name); ok {
		return r
	}
	return InClearRule{Name: p.Name, EtherType: uint16(p.EtherType), DAs: []net.HardwareAddr{p.Destination.HardwareAddr()}}
}

// InClearRules are the link's protocol exceptions.
func (l *Link) InClearRules() []InClearRule {
	var out []InClearRule
	for i := range l.ProtocolsInClear {
		out = append(out, l.ProtocolsInClear[i].Rule())
	}
	return out
}

// InClearNames lists the link's protocol exceptions by name.
func (l *Link) InClearNames() string {
	n := make([]string, len(l.ProtocolsInClear))
	for i, p := range l.ProtocolsInClear {
		n[i] = p.Name
	}
	return strings.Join(n, ", ")
}

var inClearName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func checkInClear(l *Link, p string, add func(string, string, ...any)) {
	seen := map[string]bool{}
	for i, x := range l.ProtocolsInClear {
		xp := fmt.Sprintf("%s.protocols_in_clear[%d]", p, i)
		if !inClearName.MatchString(x.Name) {
			add(xp+".name", "%q: want lacp, lldp, pause or a name of your own (a-z, 0-9, '-')", x.Name)
		} else if seen[x.Name] {
			add(xp+".name", "%s is listed twice", x.Name)
		}
		seen[x.Name] = true
		if _, ok := builtinInClear(x.Name); ok {
			if x.EtherType != 0 || x.Destination != (MAC{}) {
				add(xp, "%s is built in: leave out ethertype and destination", x.Name)
			}
			continue
		}
		switch et := uint16(x.EtherType); {
		case et == 0:
			add(xp+".ethertype", "missing: %s is not built in (%s): give its EtherType and destination", x.Name, strings.Join(BuiltinProtocolsInClear, ", "))
		case et == 0x88e5 || et == 0x8100 || et == 0x88a8 || et == 0x9100:
			add(xp+".ethertype", "%#04x (MACsec or a VLAN tag) can never cross in clear", et)
		default:
			for _, t := range l.EAPOLTypes() {
				if et == t {
					add(xp+".ethertype", "%#04x is key agreement's EtherType on this link", et)
				}
			}
		}
		switch da := x.Destination; {
		case da == MAC{}:
			add(xp+".destination", "missing: the group MAC address the protocol is sent to")
		case !da.Group():
			add(xp+".destination", "%s is a unicast address: only control protocols sent to group addresses may cross in clear", da)
		}
	}
	if len(l.ProtocolsInClear) > 0 && l.DatapathChoice() != DatapathAuto && l.DatapathChoice() != DatapathSoftware {
		add(p+".datapath", "%s cannot pass protocols in clear (%s): use auto or software, or remove protocols_in_clear", l.DatapathChoice(), l.InClearNames())
	}
}
