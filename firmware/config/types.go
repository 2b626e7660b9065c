package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The config's typed values. Each is parsed once, when the config is
// decoded (UnmarshalText), and written back in the spelling the config
// file uses (MarshalText). The zero value of each is "not set": the field
// is left out of the stored config and the default applies. Types with a
// fixed set of spellings list them in Choices, which the CLI offers.

// choice sets a fixed-choice string value to b if it is one of names;
// want says what is wanted, for the error.
func choice[T ~string](p *T, b []byte, names []string, want string) error {
	if !slices.Contains(names, string(b)) {
		return fmt.Errorf("%q: want %s", b, want)
	}
	*p = T(b)
	return nil
}

// Policy is what crosses while no SA is up.
type Policy string

// Policies. The zero value is the default, must-secure.
const (
	MustSecure   Policy = "must-secure"   // nothing crosses without SAs
	ShouldSecure Policy = "should-secure" // frames cross in clear while no SA is up
)

// Describe is one line on the policy for an operator.
func (p Policy) Describe() string {
	switch p {
	case MustSecure:
		return "Nothing crosses without SAs (default)"
	case ShouldSecure:
		return "Frames cross in clear while no SA is up"
	}
	return ""
}

// Choices are the policies.
func (Policy) Choices() []string { return []string{string(MustSecure), string(ShouldSecure)} }

// UnmarshalText accepts must-secure and should-secure.
func (p *Policy) UnmarshalText(b []byte) error {
	return choice(p, b, p.Choices(), "must-secure or should-secure")
}

// MarshalText writes the policy as it is spelled.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p), nil }

// Datapath is the datapath backend a link runs on.
type Datapath string

// Datapaths. The zero value is the default, auto.
const (
	DatapathAuto       Datapath = "auto" // hardware offload, else kernel software, else the Go datapath
	DatapathOffloadMAC Datapath = "offload-mac"
	DatapathOffloadPHY Datapath = "offload-phy"
	DatapathKernel     Datapath = "kernel"
	DatapathSoftware   Datapath = "software"
)

// Describe is one line on the datapath for an operator.
func (d Datapath) Describe() string {
	switch d {
	case DatapathAuto:
		return "Offload if the NIC can, else kernel macsec, else software (default)"
	case DatapathOffloadMAC:
		return "The NIC's MAC offloads MACsec"
	case DatapathOffloadPHY:
		return "The PHY offloads MACsec"
	case DatapathKernel:
		return "Linux kernel macsec in software"
	case DatapathSoftware:
		return "secwire's Go datapath"
	}
	return ""
}

// Choices are the datapaths an operator can choose.
func (Datapath) Choices() []string {
	return []string{string(DatapathAuto), string(DatapathOffloadMAC), string(DatapathOffloadPHY), string(DatapathKernel), string(DatapathSoftware)}
}

// UnmarshalText accepts one of Choices.
func (d *Datapath) UnmarshalText(b []byte) error {
	return choice(d, b, d.Choices(), "one of "+strings.Join(d.Choices(), ", "))
}

// MarshalText writes the datapath as it is spelled.
func (d Datapath) MarshalText() ([]byte, error) { return []byte(d), nil }

// Role is a user class.
type Role string

// Roles.
const (
	RoleAdmin    Role = "admin"    // may configure
	RoleOperator Role = "operator" // may only look
)

// Describe is one line on the role for an operator.
func (r Role) Describe() string {
	switch r {
	case RoleAdmin:
		return "May configure"
	case RoleOperator:
		return "May only look (show)"
	}
	return ""
}

// Choices are the roles.
func (Role) Choices() []string { return []string{string(RoleAdmin), string(RoleOperator)} }

// UnmarshalText accepts admin and operator.
func (r *Role) UnmarshalText(b []byte) error { return choice(r, b, r.Choices(), "admin or operator") }

// MarshalText writes the role as it is spelled.
func (r Role) MarshalText() ([]byte, error) { return []byte(r), nil }

// Transport is how syslog reaches a collector.
type Transport string

// Transports. The zero value is the default, udp.
const (
	TransportUDP Transport = "udp"
	TransportTCP Transport = "tcp"
	TransportTLS Transport = "tls"
)

// Choices are the transports.
func (Transport) Choices() []string {
	return []string{string(TransportUDP), string(TransportTCP), string(TransportTLS)}
}

// UnmarshalText accepts udp, tcp and tls.
func (t *Transport) UnmarshalText(b []byte) error {
	return choice(t, b, t.Choices(), strings.Join(t.Choices(), ", "))
}

// MarshalText writes the transport as it is spelled.
func (t Transport) MarshalText() ([]byte, error) { return []byte(t), nil }

// Severity is a syslog severity (RFC 5424) by name.
type Severity string

// Severities are the syslog severities (RFC 5424), most severe first:
// the index is the severity's number.
var Severities = []Severity{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}

// DefaultSeverity is the lowest severity sent when none is configured.
const DefaultSeverity Severity = "info"

// Level is the RFC 5424 number of the severity, that of info when unset.
func (s Severity) Level() int {
	if s == "" {
		s = DefaultSeverity
	}
	return slices.Index(Severities, s)
}

// Choices are the severities, most severe first.
func (Severity) Choices() []string {
	out := make([]string, len(Severities))
	for i, s := range Severities {
		out[i] = string(s)
	}
	return out
}

// UnmarshalText accepts one of Choices.
func (s *Severity) UnmarshalText(b []byte) error {
	return choice(s, b, s.Choices(), "one of "+strings.Join(s.Choices(), ", "))
}

// MarshalText writes the severity as it is spelled.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s), nil }

// MAC is an Ethernet address; the zero value is unset.
type MAC [6]byte

// HardwareAddr is the address as the net package holds it, nil if unset.
func (m MAC) HardwareAddr() net.HardwareAddr {
	if m == (MAC{}) {
		return nil
	}
	return net.HardwareAddr(m[:])
}

// Group reports whether the address is a group (multicast) address.
func (m MAC) Group() bool { return m[0]&1 != 0 }

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// MarshalText writes the address as 01:80:c2:00:00:03.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts an Ethernet address as net.ParseMAC does.
func (m *MAC) UnmarshalText(b []byte) error {
	a, err := net.ParseMAC(string(b))
	if err != nil || len(a) != 6 {
		return fmt.Errorf("%q is not a MAC address (such as 01:80:c2:00:00:03)", b)
	}
	copy(m[:], a)
	return nil
}

// DestinationAuto is the eapol_destination that searches for an address
// the circuit passes.
const DestinationAuto = "auto"

// Destination is the MKPDU destination: an address, or auto. The zero
// value is MKA's default group address.
type Destination struct {
	MAC  MAC
	Auto bool
}

func (d Destination) String() string {
	if d.Auto {
		return DestinationAuto
	}
	if d.MAC == (MAC{}) {
		return ""
	}
	return d.MAC.String()
}

// MarshalText writes auto or the address.
func (d Destination) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts auto or a MAC address.
func (d *Destination) UnmarshalText(b []byte) error {
	if string(b) == DestinationAuto {
		*d = Destination{Auto: true}
		return nil
	}
	var m MAC
	if err := m.UnmarshalText(b); err != nil {
		return fmt.Errorf("%q: want a MAC address such as 01:80:c2:00:00:03, or auto", b)
	}
	*d = Destination{MAC: m}
	return nil
}

// Duration is a time span written as Go writes durations ("2s", "30m",
// "24h"); "0" is a set zero, which some fields read as "never".
type Duration struct {
	D   time.Duration
	Set bool
}

// Dur is a set Duration of d.
func Dur(d time.Duration) Duration { return Duration{D: d, Set: true} }

// String is the duration without trailing zero units: 30m, 24h, 1h30m, 0.
func (d Duration) String() string {
	if !d.Set {
		return ""
	}
	if d.D == 0 {
		return "0"
	}
	s := d.D.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes the duration as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts a Go duration, or 0.
func (d *Duration) UnmarshalText(b []byte) error {
	if string(b) == "0" {
		*d = Dur(0)
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("%q: want a duration such as 500ms, 2s, 30m or 24h", b)
	}
	*d = Dur(v)
	return nil
}

// ranged parses a duration within lo..hi ("0" too when zeroOK), with
// want as the error's advice.
func ranged(b []byte, lo, hi time.Duration, zeroOK bool, want string) (Duration, error) {
	var d Duration
	if err := d.UnmarshalText(b); err != nil || d.D == 0 && !zeroOK || d.D != 0 && (d.D < lo || hi > 0 && d.D > hi) {
		return Duration{}, fmt.Errorf("%q: want %s", b, want)
	}
	return d, nil
}

// HelloTime is the MKA hello time (Junos transmit-interval).
type HelloTime struct{ Duration }

// Hello time bounds (Junos transmit-interval allows the same).
const (
	MinTransmitInterval = 500 * time.Millisecond
	MaxTransmitInterval = 6 * time.Second
)

// UnmarshalText accepts 500ms to 6s.
func (h *HelloTime) UnmarshalText(b []byte) (err error) {
	h.Duration, err = ranged(b, MinTransmitInterval, MaxTransmitInterval, false,
		fmt.Sprintf("%s to %s, such as 2s (the default) or 500ms", MinTransmitInterval, MaxTransmitInterval))
	return err
}

// RekeyTime is the periodic rekey interval; 0 is none.
type RekeyTime struct{ Duration }

// UnmarshalText accepts 0 or at least 10s.
func (r *RekeyTime) UnmarshalText(b []byte) (err error) {
	r.Duration, err = ranged(b, 10*time.Second, 0, true, "a duration of at least 10s, such as 30m or 24h, or 0 for none")
	return err
}

// IdleTime is how long an idle session lasts; 0 is forever.
type IdleTime struct{ Duration }

// UnmarshalText accepts 0 or 1m to 24h.
func (i *IdleTime) UnmarshalText(b []byte) (err error) {
	i.Duration, err = ranged(b, time.Minute, 24*time.Hour, true, "a duration from 1m to 24h, such as 15m, or 0 for none")
	return err
}

// EtherType is an Ethernet type field, written in hex (0x876f); the zero
// value is unset.
type EtherType uint16

func (e EtherType) String() string { return fmt.Sprintf("%#04x", uint16(e)) }

// MarshalText writes the EtherType as 0x876f.
func (e EtherType) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText accepts hex, with or without 0x, of 0x0600 or above.
func (e *EtherType) UnmarshalText(b []byte) error {
	s := string(b)
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 16)
	if err != nil || v < 0x600 {
		return fmt.Errorf("%q is not an EtherType (hex, 0x0600 or above)", s)
	}
	*e = EtherType(v)
	return nil
}

// Hex is octets written as hex digits (a CKN, an SSCI, a salt); nil is
// unset.
type Hex []byte

func (h Hex) String() string { return hex.EncodeToString(h) }

// MarshalText writes the octets as lower-case hex.
func (h Hex) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts an even number of hex digits.
func (h *Hex) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("not hex (an even number of digits 0-9, a-f; %d characters given)", len(b))
	}
	*h = v
	return nil
}
