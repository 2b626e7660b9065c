package config

import (
	"fmt"
	"net"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// MKA keys a link with MACsec Key Agreement and pre-shared CAKs.
type MKA struct {
	// CKN (hex, 2..64 digits) and its CAK.
	// Default: (required)
	//
	// One or more CKN/CAK pairs. Every entry inside its validity period
	// runs at once; the newest one whose CA has a live peer keys the link,
	// so a chain rolls over without a traffic interruption.
	KeyChain []CAKEntry `json:"key_chain"`
	// Key server priority, 0..255 (lower wins; default 16).
	// Default: `16`
	//
	// The lowest value serves keys (ties: the lowest SCI); 255 never
	// serves keys.
	Priority *int `json:"priority,omitempty"`
	// CKN and CAK used only while no key chain CA can secure the link.
	// Default: none
	//
	// The CA of a fallback key (Junos `fallback-key`) is used only while
	// no `key_chain` CA has a live peer. Give both ends the same fallback
	// key: a key chain rotation botched at one end then keeps the link
	// secured on the fallback CA instead of dark, and when the key chain
	// matches again the link moves back to it without losing a frame.
	// `show mka` marks the fallback CA, and its taking over and giving way
	// are logged.
	Fallback *FallbackKey `json:"fallback_key,omitempty"`
	// MKPDU destination MAC (default 01:80:c2:00:00:03), or auto to find one the circuit passes.
	// Default: `01:80:c2:00:00:03`
	//
	// Some providers filter that group address: `01:80:c2:00:00:00`,
	// `01:80:c2:00:00:0e`, `ff:ff:ff:ff:ff:ff` or a unicast address get
	// through. `auto` tries `01:80:c2:00:00:03`, `01:80:c2:00:00:00`,
	// `01:80:c2:00:00:0e` and broadcast in turn, one MKA life time each,
	// until a peer is live (or an MKPDU arrives to one of them), then
	// keeps that address; `show mka` shows the one in use. MKPDUs are
	// received at any address.
	Destination Destination `json:"eapol_destination,omitzero"`
	// MKA hello time, 500ms..6s (default 2s); the peer should match.
	// Default: `2s`
	//
	// Junos `transmit-interval`; the life time (how long a silent peer
	// stays live) is three of them. Both ends should use the same: a peer
	// with the standard 6 s life time drops a member that says hello less
	// often than every 6 s.
	TransmitInterval HelloTime `json:"transmit_interval,omitzero"`
	// Periodic rekey interval, such as 24h (0: none).
	// Default: none
	//
	// A duration of at least `10s` (`30m`, `24h`): the key server
	// distributes a new SAK this often. It always does so when a PN passes
	// 3/4 of the PN space, when a live peer joins or leaves, and on
	// `secwire request mka rekey LINK`.
	RekeyInterval RekeyTime `json:"rekey_interval,omitzero"`
	// Send the ICV Indicator parameter set (some Cisco platforms).
	// Default: `false`
	//
	// Some Cisco platforms require it.
	ICVIndicator bool `json:"icv_indicator,omitempty"`
}

// CAKEntry is one key of the chain: the CAK inline (labs) or in a file
// of hex readable only by its owner.
type CAKEntry struct {
	// CKN, 2..64 hex digits (1..32 octets).
	// Default: (required)
	CKN Hex `json:"ckn"`
	// CAK, 32 or 64 hex digits (prompted without echo).
	// Default: one of `cak` and `cak_file`
	//
	// Inline, for labs; a commit on the appliance stores it sealed.
	CAK string `json:"cak,omitempty"`
	// File holding the hex CAK, mode 0600, relative to the config file.
	// Default: one of `cak` and `cak_file`
	CAKFile string `json:"cak_file,omitempty"`
	// Valid from, RFC 3339 (2026-12-01T00:00:00Z).
	// Default: valid from the start
	Start time.Time `json:"start,omitzero"`
	// Valid until, RFC 3339.
	// Default: never expires
	End time.Time `json:"end,omitzero"`
}

// FallbackKey is the fallback CKN and CAK.
type FallbackKey struct {
	// Fallback CKN (hex, 2..64 digits), not one of the key chain's.
	// Default: (required)
	CKN Hex `json:"ckn"`
	// Fallback CAK, 32 or 64 hex digits (prompted without echo).
	// Default: one of `cak` and `cak_file`
	CAK string `json:"cak,omitempty"`
	// File holding the hex fallback CAK, mode 0600, relative to the config file.
	// Default: one of `cak` and `cak_file`
	CAKFile string `json:"cak_file,omitempty"`
}

// DefaultMKAPriority is the key server priority when none is configured.
const DefaultMKAPriority = 16

// KeyServerPriority is the configured or default priority.
func (m *MKA) KeyServerPriority() uint8 {
	if m.Priority == nil {
		return DefaultMKAPriority
	}
	return uint8(*m.Priority)
}

// DestinationAddress is the configured MKPDU destination, nil for MKA's
// default (and for auto, which starts there).
func (m *MKA) DestinationAddress() net.HardwareAddr { return m.Destination.MAC.HardwareAddr() }

// AutoDestination reports whether eapol_destination is auto.
func (m *MKA) AutoDestination() bool { return m.Destination.Auto }

// Hello is the MKA hello time, 0 for the default.
func (m *MKA) Hello() time.Duration { return m.TransmitInterval.D }

// LoadCAK returns the fallback CAK; a relative cak_file is read from dir
// (Config.KeyDir). Errors never contain it.
func (f *FallbackKey) LoadCAK(dir string) (macsec.Key, error) {
	return loadKey(f.CAK, keyPath(dir, f.CAKFile), 16, 32)
}

// Interval is the periodic rekey interval, 0 for none.
func (m *MKA) Interval() time.Duration { return m.RekeyInterval.D }

// LoadCAK returns the CAK (16 or 32 octets); a relative cak_file is read
// from dir (Config.KeyDir). Errors never contain it.
func (e *CAKEntry) LoadCAK(dir string) (macsec.Key, error) {
	return loadKey(e.CAK, keyPath(dir, e.CAKFile), 16, 32)
}

// Validity is the entry's start and end (zero when open).
func (e *CAKEntry) Validity() (start, end time.Time) { return e.Start, e.End }

func checkMKA(m *MKA, dir, p string, add func(string, string, ...any)) {
	if len(m.KeyChain) == 0 {
		add(p+".key_chain", "empty: give at least one {\"ckn\": ..., \"cak\": ...}")
	}
	seen := map[string]int{}
	for i := range m.KeyChain {
		e := &m.KeyChain[i]
		ep := fmt.Sprintf("%s.key_chain[%d]", p, i)
		if checkCKN(e.CKN, ep+".ckn", add) {
			if j, dup := seen[string(e.CKN)]; dup {
				add(ep+".ckn", "same CKN as key_chain[%d]", j)
			}
			seen[string(e.CKN)] = i
		}
		checkCAK(e.CAK, e.CAKFile, func() (macsec.Key, error) { return e.LoadCAK(dir) }, ep, add)
		if !e.Start.IsZero() && !e.End.IsZero() && !e.End.After(e.Start) {
			add(ep+".end", "%s is not after start %s", e.End.Format(time.RFC3339), e.Start.Format(time.RFC3339))
		}
	}
	if m.Priority != nil && (*m.Priority < 0 || *m.Priority > 255) {
		add(p+".priority", "%d: want 0..255 (lower wins; 255 never serves keys)", *m.Priority)
	}
	if f := m.Fallback; f != nil {
		fp := p + ".fallback_key"
		checkCKN(f.CKN, fp+".ckn", add)
		if j, dup := seen[string(f.CKN)]; dup && len(f.CKN) > 0 {
			add(fp+".ckn", "same CKN as key_chain[%d]: the fallback key needs its own CKN", j)
		}
		checkCAK(f.CAK, f.CAKFile, func() (macsec.Key, error) { return f.LoadCAK(dir) }, fp, add)
	}
}

// checkCKN reports whether ckn is a valid CKN.
func checkCKN(ckn Hex, path string, add func(string, string, ...any)) bool {
	switch {
	case len(ckn) == 0:
		add(path, "missing: 2 to 64 hex digits")
	case len(ckn) > 32:
		add(path, "%d octets: at most 32 (64 hex digits)", len(ckn))
	default:
		return true
	}
	return false
}

func checkCAK(cak, file string, load func() (macsec.Key, error), path string, add func(string, string, ...any)) {
	switch {
	case cak != "" && file != "":
		add(path, "give cak or cak_file, not both")
	case cak == "" && file == "":
		add(path+".cak", "missing: 32 or 64 hex digits (or cak_file)")
	default:
		k, err := load()
		if err != nil {
			field := ".cak"
			if file != "" {
				field = ".cak_file"
			}
			add(path+field, "%v", err) // the key's own error says what a CAK is
		}
		k.Wipe()
	}
}
