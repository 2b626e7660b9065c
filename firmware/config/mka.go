package config

import (
	"fmt"
	"net"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// MKA keys a link with MACsec Key Agreement and pre-shared CAKs.
type MKA struct {
	// KeyChain holds one or more CKN/CAK pairs. Entries with overlapping
	// validity run at once; the newest secured one keys the link, so a
	// chain rolls over without a traffic interruption.
	KeyChain []CAKEntry `json:"key_chain"`
	// Priority is the key server priority, 0..255 (lower wins; 255
	// never serves keys). Default 16.
	Priority *int `json:"priority,omitempty"`
	// Fallback is a CKN/CAK used only while no key chain CA can secure
	// the link (Junos fallback-key): a rotation botched at one end then
	// keeps the link up on the fallback CA instead of black-holing it.
	// It is never preferred while a key chain CA has a live peer.
	Fallback *FallbackKey `json:"fallback_key,omitempty"`
	// Destination is the MKPDU destination address, default
	// 01:80:c2:00:00:03. Some provider circuits filter that group
	// address; 01:80:c2:00:00:00, 01:80:c2:00:00:0e, broadcast or a
	// unicast address get through them. "auto" tries the standard group
	// addresses and broadcast in turn until a peer answers, then keeps
	// that one.
	Destination Destination `json:"eapol_destination,omitzero"`
	// TransmitInterval is the MKA hello time (Junos transmit-interval),
	// 500ms..6s, default 2s; the life time is three of them. Both ends
	// should use the same.
	TransmitInterval HelloTime `json:"transmit_interval,omitzero"`
	// RekeyInterval is a Go duration ("1h"); empty or "0" means no
	// periodic rekey (the key server still rekeys on PN exhaustion and
	// peer changes).
	RekeyInterval RekeyTime `json:"rekey_interval,omitzero"`
	// ICVIndicator adds the ICV Indicator parameter set (some Cisco
	// platforms require it).
	ICVIndicator bool `json:"icv_indicator,omitempty"`
}

// CAKEntry is one key of the chain: the CAK inline (labs) or in a file
// of hex readable only by its owner.
type CAKEntry struct {
	CKN     Hex       `json:"ckn"` // hex, 1..32 octets
	CAK     string    `json:"cak,omitempty"`
	CAKFile string    `json:"cak_file,omitempty"`
	Start   time.Time `json:"start,omitzero"` // RFC 3339; empty: valid from the start
	End     time.Time `json:"end,omitzero"`   // RFC 3339; empty: never expires
}

// FallbackKey is the fallback CKN and CAK.
type FallbackKey struct {
	CKN     Hex    `json:"ckn"` // hex, 1..32 octets
	CAK     string `json:"cak,omitempty"`
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
