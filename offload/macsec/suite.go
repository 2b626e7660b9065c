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

// CipherSuite is one of the four MACsec cipher suites.
type CipherSuite uint8

// The cipher suites, numbered as in IEEE 802.1AE Table 14-1's identifiers'
// last octet (00-80-C2-00-01-00-00-01 .. -04).
const (
	GCMAES128    CipherSuite = 1
	GCMAES256    CipherSuite = 2
	GCMAESXPN128 CipherSuite = 3
	GCMAESXPN256 CipherSuite = 4
)

var suiteNames = map[CipherSuite]string{
	GCMAES128:    "gcm-aes-128",
	GCMAES256:    "gcm-aes-256",
	GCMAESXPN128: "gcm-aes-xpn-128",
	GCMAESXPN256: "gcm-aes-xpn-256",
}

// CipherSuites lists every supported suite, in identifier order.
var CipherSuites = []CipherSuite{GCMAES128, GCMAES256, GCMAESXPN128, GCMAESXPN256}

// ParseCipherSuite accepts the names used by iproute2 and IEEE 802.1AE
// ("gcm-aes-xpn-256", "GCM-AES-XPN-256").
func ParseCipherSuite(s string) (CipherSuite, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for cs, n := range suiteNames {
		if l == n {
			return cs, nil
		}
	}
	return 0, fmt.Errorf("unknown cipher suite %q: want one of gcm-aes-128, gcm-aes-256, gcm-aes-xpn-128, gcm-aes-xpn-256", s)
}

func (c CipherSuite) String() string {
	if n, ok := suiteNames[c]; ok {
		return n
	}
	return fmt.Sprintf("cipher-suite(%d)", uint8(c))
}

// Valid reports whether c is one of the four suites.
func (c CipherSuite) Valid() bool { _, ok := suiteNames[c]; return ok }

// KeyLen is the SAK length in bytes.
func (c CipherSuite) KeyLen() int {
	if c == GCMAES256 || c == GCMAESXPN256 {
		return 32
	}
	return 16
}

// XPN reports whether the suite uses 64-bit extended packet numbers.
func (c CipherSuite) XPN() bool { return c == GCMAESXPN128 || c == GCMAESXPN256 }

// ID is the 64-bit cipher suite reference number used by MKA.
func (c CipherSuite) ID() uint64 { return 0x0080C20001000000 | uint64(c) }

// SuiteByID maps an MKA cipher suite reference number to a suite.
func SuiteByID(id uint64) (CipherSuite, bool) {
	c := CipherSuite(id & 0xff)
	return c, id&^0xff == 0x0080C20001000000 && c.Valid()
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
