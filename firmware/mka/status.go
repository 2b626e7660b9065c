package mka

import (
	"fmt"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// Status is what `show mka` prints: one link's CAs, their peers and keys,
// and why MKPDUs were dropped. It holds no key material: SAKs appear as
// fingerprints only.
type Status struct {
	SCI      string `json:"sci"`
	Priority uint8  `json:"priority"`
	Cipher   string `json:"cipher_suite"`
	Offset   int    `json:"confidentiality_offset"`
	// Secured: the principal CA transmits with a SAK. Diagnosis names the
	// most likely reason when it does not.
	Secured     bool       `json:"secured"`
	Diagnosis   string     `json:"diagnosis,omitempty"`
	Destination string     `json:"eapol_destination"`
	AutoDest    bool       `json:"eapol_destination_auto,omitempty"`
	Hello       string     `json:"hello_time"`
	CPState     string     `json:"controlled_port"`
	CAs         []CAStatus `json:"cas"`
	Latest      *KeyStatus `json:"latest_key,omitempty"`
	Old         *KeyStatus `json:"old_key,omitempty"`
	NextRekey   string     `json:"next_rekey"`
	Counters    Counters   `json:"counters"`
	Drops       []Drop     `json:"drops"`
}

// CAStatus is one participant: one CAK of the key chain.
type CAStatus struct {
	CKN       string       `json:"ckn"`
	Fallback  bool         `json:"fallback,omitempty"` // the fallback CAK
	Principal bool         `json:"principal"`          // the CA whose SAKs the SecY uses
	Secured   bool         `json:"secured"`
	MI        string       `json:"mi"`
	MN        uint32       `json:"mn"`
	KeyServer string       `json:"key_server"` // "this end" or the peer's SCI
	Start     string       `json:"start,omitempty"`
	End       string       `json:"end,omitempty"`
	Live      []PeerStatus `json:"live_peers"`
	Potential []PeerStatus `json:"potential_peers"`
}

// PeerStatus is one peer of a CA.
type PeerStatus struct {
	SCI      string `json:"sci"`
	MI       string `json:"mi"`
	MN       uint32 `json:"mn"`
	Priority uint8  `json:"priority"`
	SSCI     uint32 `json:"ssci,omitempty"`
}

// KeyStatus is an installed SAK.
type KeyStatus struct {
	CKN         string `json:"ckn"`
	KeyServerMI string `json:"key_server_mi"`
	KN          uint32 `json:"kn"`
	AN          uint8  `json:"an"`
	SAK         string `json:"sak"` // fingerprint
	Transmit    bool   `json:"transmit"`
	SSCI        uint32 `json:"ssci,omitempty"` // ours, XPN only
	NextPN      uint64 `json:"tx_next_pn"`
	LowestPN    uint64 `json:"rx_lowest_pn"`
	Age         string `json:"age"`
}

// Drop is one reason's drop counter.
type Drop struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// Reasons lists every drop reason in display order.
var Reasons = []Reason{ReasonBadICV, ReasonUnknownCKN, ReasonStaleMN, ReasonReplayedMI, ReasonOwnMI, ReasonOwnSCI,
	ReasonTruncated, ReasonOversize, ReasonBadLength, ReasonBadEAPOL, ReasonBadVersion, ReasonBadAgility,
	ReasonBadSAK, ReasonSuite, ReasonNotKeyServer, ReasonNotMember, ReasonBadSSCI, ReasonPeerTableFull, ReasonQueueFull}

// Status snapshots the KaY. The transmit PNs are read from the SecY after
// the lock is released: a SecY read can be a netlink round trip, and
// `show mka` must never hold up the protocol (nor wait on it) that long.
func (k *KaY) Status() Status {
	st, pending := k.snapshot()
	for _, ks := range pending {
		ks.NextPN = k.o.SecY.TxNextPN(ks.AN)
	}
	return st
}

// snapshot is Status under the lock; it returns the keys whose NextPN the
// caller still has to read from the SecY.
func (k *KaY) snapshot() (Status, []*KeyStatus) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.o.Now()
	st := Status{SCI: k.o.SCI.String(), Priority: k.o.Priority, Cipher: k.o.Suite.String(), Offset: k.o.Offset, Counters: k.stats,
		Destination: k.dest.current().String(), AutoDest: k.o.AutoDestination, Hello: k.o.Hello.String(), CPState: k.cp.String()}
	pr := k.principal()
	st.Secured = pr != nil && k.latest != nil && k.latest.ca == pr && k.latest.txOn
	st.Diagnosis = k.diagnosis(now)
	for _, p := range k.parts {
		ca := CAStatus{CKN: p.name, Fallback: p.fallback, Principal: p == pr, MI: p.mi.String(), MN: p.mn,
			Live: []PeerStatus{}, Potential: []PeerStatus{}}
		ca.Secured = ca.Principal && st.Secured
		if ks := k.keyServer(p); ks != nil {
			ca.KeyServer = ks.sci.String()
		} else if k.o.Priority != 0xFF {
			ca.KeyServer = "this end"
		} else {
			ca.KeyServer = "none"
		}
		if !p.key.Start.IsZero() {
			ca.Start = p.key.Start.UTC().Format(time.RFC3339)
		}
		if !p.key.End.IsZero() {
			ca.End = p.key.End.UTC().Format(time.RFC3339)
		}
		for _, pe := range p.peers {
			ps := PeerStatus{SCI: pe.sci.String(), MI: pe.mi.String(), MN: pe.mn, Priority: pe.priority}
			if pe.live {
				if s := k.latest; s != nil && s.ca == p {
					ps.SSCI = s.sscis[pe.mi]
				}
				ca.Live = append(ca.Live, ps)
			} else {
				ca.Potential = append(ca.Potential, ps)
			}
		}
		st.CAs = append(st.CAs, ca)
	}
	var pending []*KeyStatus
	key := func(s *sak, tx bool) *KeyStatus {
		if s == nil {
			return nil
		}
		ks := &KeyStatus{CKN: s.ca.name, KeyServerMI: s.ki.MI.String(), KN: s.ki.KN, AN: s.an, SAK: s.key.Fingerprint(),
			Transmit: tx, LowestPN: s.lowestPN(), Age: now.Sub(s.installed).Truncate(time.Second).String()}
		pending = append(pending, ks)
		if s.sscis != nil {
			ks.SSCI = s.sscis[s.ca.mi]
		}
		return ks
	}
	st.Latest = key(k.latest, k.latest != nil && k.latest.txOn)
	st.Old = key(k.old, k.old != nil && k.old.txOn)
	switch {
	case k.latest == nil:
		st.NextRekey = "when the CA is secured"
	case pr == nil || !k.isKeyServer(pr):
		st.NextRekey = "decided by the key server"
	case k.o.RekeyInterval > 0:
		st.NextRekey = fmt.Sprintf("in %s, or at PN %d", max(0, k.o.RekeyInterval-now.Sub(k.latest.installed)).Truncate(time.Second), k.o.PNThreshold)
	default:
		st.NextRekey = fmt.Sprintf("at PN %d, a peer change, or on request", k.o.PNThreshold)
	}
	for _, r := range Reasons {
		st.Drops = append(st.Drops, Drop{Reason: string(r), Count: k.drops[r]})
	}
	return st, pending
}

// Secured reports whether the principal CA transmits with a SAK.
func (k *KaY) Secured() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.principal()
	return p != nil && k.latest != nil && k.latest.ca == p && k.latest.txOn
}

// ExportedSAK is an installed SAK with everything a capture decrypter
// needs. It holds key material: only an administrator's audited export
// may produce it.
type ExportedSAK struct {
	CKN      string             `json:"ckn"`
	KN       uint32             `json:"kn"`
	AN       uint8              `json:"an"`
	Suite    macsec.CipherSuite `json:"-"`
	Cipher   string             `json:"cipher_suite"`
	Key      []byte             `json:"sak"`
	Salt     []byte             `json:"salt,omitempty"`  // XPN only
	SSCIs    map[string]uint32  `json:"sscis,omitempty"` // XPN only: SSCI by SCI
	Transmit bool               `json:"transmit"`
}

// ExportKeys copies the installed SAKs, latest first.
func (k *KaY) ExportKeys() []ExportedSAK {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []ExportedSAK
	for _, s := range []*sak{k.latest, k.old} {
		if s == nil {
			continue
		}
		e := ExportedSAK{CKN: s.ca.name, KN: s.ki.KN, AN: s.an, Suite: k.o.Suite, Cipher: k.o.Suite.String(),
			Key: append([]byte(nil), s.key.Bytes()...), Transmit: s.txOn}
		if k.o.Suite.XPN() {
			e.Salt = append([]byte(nil), s.salt[:]...)
			e.SSCIs = map[string]uint32{}
			for mi, ssci := range s.sscis {
				switch pe := s.ca.peers[mi]; {
				case mi == s.ca.mi:
					e.SSCIs[k.o.SCI.String()] = ssci
				case pe != nil:
					e.SSCIs[pe.sci.String()] = ssci
				}
			}
		}
		out = append(out, e)
	}
	return out
}
