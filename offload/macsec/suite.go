// Package macsec is the IEEE 802.1AE-2018 (with 802.1AEbw XPN) frame codec:
// SecTAG encoding and parsing, GCM-AES-128/256 and GCM-AES-XPN-128/256
// protection and validation, replay protection and the 802.1AE MIB counters.
//
// It protects and validates single frames. It knows nothing about ports,
// sockets or key agreement: the software datapath feeds it frames and MKA
// installs its SAs through the SecY methods.
package macsec

import (
	"fmt"
	"strings"
)

// CipherSuite is a MACsec cipher suite: the last octet of its IEEE
// 802.1AE Table 14-1 identifier. The zero value is no suite (in the
// config: the default, GCM-AES-128).
type CipherSuite uint8

// The cipher suites, numbered as in IEEE 802.1AE Table 14-1's identifiers'
// last octet (00-80-C2-00-01-00-00-01 .. -04).
const (
	GCMAES128    CipherSuite = 1
	GCMAES256    CipherSuite = 2
	GCMAESXPN128 CipherSuite = 3
	GCMAESXPN256 CipherSuite = 4
)

// suiteTable is the one list of cipher suites: every other place that
// names a suite, its key length or its packet number size (the config and
// CLI value lists, the kernel's cipher IDs, the drivers' offload
// capabilities, the docs' table) derives from it. A new suite is a new
// line here.
var suiteTable = []struct {
	suite  CipherSuite
	name   string // as iproute2 and the config spell it
	keyLen int    // SAK octets
	xpn    bool   // 64-bit extended packet numbers (IEEE 802.1AEbw)
}{
	{GCMAES128, "gcm-aes-128", 16, false},
	{GCMAES256, "gcm-aes-256", 32, false},
	{GCMAESXPN128, "gcm-aes-xpn-128", 16, true},
	{GCMAESXPN256, "gcm-aes-xpn-256", 32, true},
}

// CipherSuites lists every supported suite, in identifier order.
var CipherSuites = func() []CipherSuite {
	out := make([]CipherSuite, len(suiteTable))
	for i, e := range suiteTable {
		out[i] = e.suite
	}
	return out
}()

// CipherSuiteNames are the suites' names, in identifier order.
func CipherSuiteNames() []string {
	out := make([]string, len(suiteTable))
	for i, e := range suiteTable {
		out[i] = e.name
	}
	return out
}

// ParseCipherSuite accepts the names used by iproute2 and IEEE 802.1AE
// ("gcm-aes-xpn-256", "GCM-AES-XPN-256").
func ParseCipherSuite(s string) (CipherSuite, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, e := range suiteTable {
		if l == e.name {
			return e.suite, nil
		}
	}
	return 0, fmt.Errorf("unknown cipher suite %q: want one of %s", s, strings.Join(CipherSuiteNames(), ", "))
}

func (c CipherSuite) String() string {
	if i := c.index(); i >= 0 {
		return suiteTable[i].name
	}
	return fmt.Sprintf("cipher-suite(%d)", uint8(c))
}

// MarshalText writes the suite's name.
func (c CipherSuite) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText accepts what ParseCipherSuite accepts.
func (c *CipherSuite) UnmarshalText(b []byte) error {
	s, err := ParseCipherSuite(string(b))
	if err != nil {
		return err
	}
	*c = s
	return nil
}

// Choices are the names UnmarshalText accepts (for completion).
func (CipherSuite) Choices() []string { return CipherSuiteNames() }

func (c CipherSuite) index() int {
	for i, e := range suiteTable {
		if e.suite == c {
			return i
		}
	}
	return -1
}

// Valid reports whether c is one of the suites.
func (c CipherSuite) Valid() bool { return c.index() >= 0 }

// KeyLen is the SAK length in bytes (16 for an unknown suite).
func (c CipherSuite) KeyLen() int {
	if i := c.index(); i >= 0 {
		return suiteTable[i].keyLen
	}
	return 16
}

// XPN reports whether the suite uses 64-bit extended packet numbers.
func (c CipherSuite) XPN() bool {
	i := c.index()
	return i >= 0 && suiteTable[i].xpn
}

// ID is the 64-bit IEEE 802.1AE cipher suite identifier, which MKA
// carries and the kernel's MACSEC_CIPHER_ID_* values are.
func (c CipherSuite) ID() uint64 { return 0x0080C20001000000 | uint64(c) }

// SuiteByID maps an IEEE 802.1AE cipher suite identifier to a suite.
func SuiteByID(id uint64) (CipherSuite, bool) {
	c := CipherSuite(id & 0xff)
	return c, id&^0xff == 0x0080C20001000000 && c.Valid()
}

// Describe is one line on the suite for an operator: its key and packet
// number sizes.
func (c CipherSuite) Describe() string {
	d := fmt.Sprintf("%d-bit key, 32-bit packet numbers", c.KeyLen()*8)
	if c.XPN() {
		d = fmt.Sprintf("%d-bit key, 64-bit packet numbers (for 40G and faster)", c.KeyLen()*8)
	}
	return d
}

// MaxPN is the largest packet number the suite can send.
func (c CipherSuite) MaxPN() uint64 {
	if c.XPN() {
		return ^uint64(0)
	}
	return 0xFFFFFFFF
}

// DefaultPNThreshold is where a transmit SA asks for a new SAK: 3/4 of the
// PN space, the value IEEE 802.1X implementations use.
func (c CipherSuite) DefaultPNThreshold() uint64 {
	if c.XPN() {
		return 0xC000000000000000
	}
	return 0xC0000000
}
