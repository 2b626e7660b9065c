package mka

// Key server election (802.1X-2020 9.5), SAK generation and distribution
// (9.8), and what the XPN cipher suites add: the Salt (802.1AE-2018
// 10.7.8) and the SSCIs (802.1AE-2018 10.7.13, 802.1X-2020 9.10).
//
// A SAK is distributed to the CA's members of the moment: the key server
// and its live peers. A member that joins later, or one that restarted
// with a new MI, is never handed that SAK (it might have transmitted with
// it under its old MI, reusing GCM nonces): the key server distributes a
// new one instead.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// keyServer elects among us and the live peers: lowest priority, then
// lowest SCI. It returns nil when we are the key server.
func (k *KaY) keyServer(p *participant) *peer {
	bestPrio, bestSCI := k.o.Priority, k.o.SCI
	var best *peer
	for _, pe := range p.livePeers() {
		if pe.priority == 0xFF {
			continue
		}
		if bestPrio == 0xFF && best == nil || pe.priority < bestPrio || pe.priority == bestPrio && pe.sci < bestSCI {
			best, bestPrio, bestSCI = pe, pe.priority, pe.sci
		}
	}
	return best
}

func (k *KaY) isKeyServer(p *participant) bool {
	return k.o.Priority != 0xFF && k.keyServer(p) == nil
}

// serveKeys is the key server's work: a first SAK for the CA, and a new
// one when asked, when the live peers change, on the rekey interval, or
// when a PN passes the threshold. The Controlled Port holds two SAKs, so
// one transition runs at a time; only a latest SAK that nobody transmits
// with yet is abandoned at once when the members changed.
func (k *KaY) serveKeys(p *participant, now time.Time) {
	live := p.livePeers()
	s := k.latest
	why := p.pendingRekey
	switch {
	case s == nil || s.ca != p || s.ki.MI != p.mi:
		why = "new secure connectivity association"
	case why != "":
	case !s.sameMembers(p.mi, live):
		why = "live peers changed"
	case !k.numbered(s, p, live):
		why = "a member's SCI changed"
	case k.o.RekeyInterval > 0 && now.Sub(s.installed) >= k.o.RekeyInterval:
		why = "rekey interval"
	case k.pnPastThreshold(p):
		why = "PN threshold"
	}
	if why == "" {
		return
	}
	if s != nil && s.ca == p && s.ki.MI == p.mi && (k.old != nil || !s.txOn) {
		if s.txOn || s.sameMembers(p.mi, live) && k.numbered(s, p, live) {
			return // the running transition finishes first; retried on the next step
		}
	}
	keyLen := k.o.Suite.KeyLen()
	nonce := make([]byte, keyLen)
	rand.Read(nonce)
	mis := [][]byte{p.mi[:]}
	for _, pe := range live {
		mis = append(mis, pe.mi[:])
	}
	key, err := SAK(p.key.Key.Bytes(), nonce, mis, p.kn+1, keyLen)
	if err != nil {
		k.log.Error("cannot derive a SAK", "err", err)
		return
	}
	wrapped, err := Wrap(p.kek, key)
	if err != nil {
		wipe(key)
		k.log.Error("cannot wrap the SAK", "err", err)
		return
	}
	p.kn++
	n := &sak{ki: KI{MI: p.mi, KN: p.kn}, an: k.nextAN(), ca: p, key: macsec.NewKey(key), installed: now,
		members: append([]MI{p.mi}, miList(live)...)}
	wipe(key)
	n.distSAK = &DistSAK{AN: n.an, Offset: k.offsetCode(), KN: p.kn, Suite: k.o.Suite, Wrapped: wrapped}
	if k.o.Suite.XPN() {
		n.salt = salt(n.ki)
		n.sscis = assignSSCIs(p.mi, k.o.SCI, live)
	}
	k.stats.SAKsGenerated++
	p.pendingRekey = ""
	if err := k.install(p, n); err != nil {
		k.log.Error("cannot install the new SAK", "kn", p.kn, "an", n.an, "err", err)
		return
	}
	k.log.Info("distributing a new SAK", "ckn", p.name, "kn", p.kn, "an", n.an, "reason", why, "sak", n.key.Fingerprint(), "members", len(n.members))
	p.due = minTime(p.due, p.lastSent.Add(boundedHello))
}

// numbered reports whether s's SSCIs are still those the members' SCIs
// give (XPN; always true otherwise). A member whose SCI changed would
// refuse them, and the CA would never secure.
func (k *KaY) numbered(s *sak, p *participant, live []*peer) bool {
	if s.sscis == nil {
		return true
	}
	want := assignSSCIs(p.mi, k.o.SCI, live)
	for mi, ssci := range want {
		if s.sscis[mi] != ssci {
			return false
		}
	}
	return true
}

// nextAN is the AN after the latest SAK's that the transmitting SA does
// not use.
func (k *KaY) nextAN() uint8 {
	if k.latest == nil {
		return 0
	}
	an := (k.latest.an + 1) & 3
	if tx := k.transmitting(); tx != nil && tx.an == an {
		an = (an + 1) & 3
	}
	return an
}

func miList(ps []*peer) []MI {
	out := make([]MI, len(ps))
	for i, pe := range ps {
		out[i] = pe.mi
	}
	return out
}

// sortBySCI orders peers by descending SCI, the SSCI order.
func sortBySCI(ps []*peer) {
	slices.SortFunc(ps, func(a, b *peer) int {
		if a.sci != b.sci {
			if a.sci > b.sci {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.mi[:], b.mi[:])
	})
}

// assignSSCIs numbers the key server and its live peers from 1 in
// descending SCI order: the numerically greatest SCI gets SSCI 1
// (802.1AE-2018 10.7.13).
func assignSSCIs(self MI, selfSCI macsec.SCI, live []*peer) map[MI]uint32 {
	all := append([]*peer{{mi: self, sci: selfSCI}}, live...)
	sortBySCI(all)
	out := make(map[MI]uint32, len(all))
	for i, pe := range all {
		out[pe.mi] = uint32(i + 1)
	}
	return out
}

// sscisFromKeyServer reads the SSCIs from the key server's MKPDU that
// distributes an XPN SAK (802.1X-2020 9.10, 11.11.3): its own SSCI rides
// in the Live Peer List header and its live peers are listed in SSCI
// order, so a member takes the key server's numbering, never its own view
// of the CA (which can differ while someone joins). A key server of MKA
// version 2 or earlier sends no SSCI: then the standard's rule is applied
// to the members it lists.
//
// Every member listed must have been heard here (a member must know each
// SCI it receives from), and the numbering must be the standard's: an
// SSCI shared by two transmitters under one SAK would repeat GCM nonces,
// so a key server's MKPDU that says otherwise is refused, not followed.
func (k *KaY) sscisFromKeyServer(p *participant, ks *peer, m *MKPDU) (map[MI]uint32, error) {
	members := []*peer{{mi: ks.mi, sci: ks.sci}}
	seen := map[MI]bool{}
	for _, e := range m.Live {
		if seen[e.MI] {
			return nil, fmt.Errorf("key server %s lists MI %s twice", ks.sci, e.MI)
		}
		seen[e.MI] = true
		switch pe := p.peers[e.MI]; {
		case e.MI == p.mi:
			members = append(members, &peer{mi: p.mi, sci: k.o.SCI})
		case e.MI == ks.mi:
			return nil, fmt.Errorf("key server %s lists itself as its own peer", ks.sci)
		case pe != nil:
			members = append(members, pe)
		default:
			return nil, fmt.Errorf("key server %s lists MI %s, which has not been heard here yet", ks.sci, e.MI)
		}
	}
	out := map[MI]uint32{}
	if m.Version >= 3 && m.KeyServerSSCI != 0 {
		own := uint32(m.KeyServerSSCI)
		if int(own) > len(members) {
			return nil, fmt.Errorf("key server %s claims SSCI %d in a CA of %d members", ks.sci, own, len(members))
		}
		out[ks.mi] = own
		next := uint32(1)
		for _, pe := range members[1:] {
			if next == own {
				next++
			}
			out[pe.mi] = next
			next++
		}
	}
	sortBySCI(members)
	for i, pe := range members {
		want := uint32(i + 1)
		if got, ok := out[pe.mi]; ok && got != want {
			return nil, fmt.Errorf("key server %s numbers SCI %s with SSCI %d; IEEE 802.1AE 10.7.13 gives %d (descending SCI order)", ks.sci, pe.sci, got, want)
		}
		out[pe.mi] = want // MKA version 2 or earlier sends no SSCIs: the standard's rule
	}
	return out, nil
}

// salt is the XPN Salt of a SAK (802.1AE-2018 10.7.8): the key server's
// MI, whose octets 0-1 are XORed with the 16 least significant bits of the
// key number and octets 2-3 with its 16 most significant bits (octet 0 is
// the most significant of the 96-bit Salt).
func salt(ki KI) [12]byte {
	var s [12]byte
	copy(s[:], ki.MI[:])
	s[0] ^= byte(ki.KN >> 8)
	s[1] ^= byte(ki.KN)
	s[2] ^= byte(ki.KN >> 24)
	s[3] ^= byte(ki.KN >> 16)
	return s
}

// acceptSAK installs a SAK distributed by the key server.
func (k *KaY) acceptSAK(p *participant, from *peer, m *MKPDU, now time.Time) {
	d := m.DistSAK
	if ks := k.keyServer(p); ks != from || !m.KeyServer {
		k.drop(ReasonNotKeyServer, "SCI %s distributed a SAK but is not the elected key server", from.sci)
		return
	}
	ki := KI{MI: from.mi, KN: d.KN}
	if o := k.old; o != nil && o.ca == p && o.ki == ki && o.txOn {
		// The key server distributes the SAK we transmit with: a latest
		// SAK beside it is not the key server's and goes.
		k.abandonLatest()
	}
	for _, s := range []*sak{k.latest, k.old} {
		if s != nil && s.ca == p && s.ki == ki {
			return // installed (the key server repeats it until acknowledged)
		}
	}
	if d.Wrapped == nil {
		k.drop(ReasonBadSAK, "key server %s distributes no SAK (MACsec not used); this link requires MACsec", from.sci)
		return
	}
	if d.Suite != k.o.Suite {
		k.drop(ReasonSuite, "key server %s chose %s; this link is configured for %s", from.sci, d.Suite, k.o.Suite)
		return
	}
	if want := k.offsetCode(); d.Offset != want {
		k.drop(ReasonSuite, "key server %s chose confidentiality offset %s; this link is configured for %s", from.sci, offsetName(d.Offset), offsetName(want))
		return
	}
	if p != k.principal() {
		return // an older CAK's SAK while a newer CA is up: ignore
	}
	if !slices.ContainsFunc(m.Live, func(e PeerEntry) bool { return e.MI == p.mi }) {
		// The SAK is for the key server's live members; we join the next.
		k.drop(ReasonNotMember, "key server %s distributes KN %d to members that do not include us yet", from.sci, d.KN)
		return
	}
	s := &sak{ki: ki, an: d.AN, ca: p, installed: now, members: []MI{from.mi}}
	for _, e := range m.Live {
		s.members = append(s.members, e.MI)
	}
	if k.o.Suite.XPN() {
		sscis, err := k.sscisFromKeyServer(p, from, m)
		if err != nil {
			k.drop(ReasonBadSSCI, "KN %d: %v", d.KN, err)
			return
		}
		s.sscis, s.salt = sscis, salt(s.ki)
	}
	key, err := Unwrap(p.kek, d.Wrapped)
	if err != nil || len(key) != k.o.Suite.KeyLen() {
		k.drop(ReasonBadSAK, "SAK KN %d from %s does not unwrap to a %d-octet key", d.KN, from.sci, k.o.Suite.KeyLen())
		return
	}
	s.key = macsec.NewKey(key)
	wipe(key)
	if err := k.install(p, s); err != nil {
		k.log.Error("cannot install the distributed SAK", "kn", d.KN, "an", d.AN, "err", err)
		return
	}
	p.due = minTime(p.due, p.lastSent.Add(boundedHello))
}

func (k *KaY) offsetCode() uint8 {
	switch {
	case k.o.IntegrityOnly:
		return 0
	case k.o.Offset == 30:
		return 2
	case k.o.Offset == 50:
		return 3
	}
	return 1
}

func offsetName(code uint8) string {
	return [...]string{"none (integrity only)", "0", "30", "50"}[code&3]
}

// pnPastThreshold reports whether a PN of the latest SAK, ours or a
// peer's (its SAK Use), passed the threshold: time for a new SAK.
func (k *KaY) pnPastThreshold(p *participant) bool {
	s := k.latest
	if s == nil || !s.txOn {
		return false
	}
	if k.o.SecY.TxNextPN(s.an) >= k.o.PNThreshold {
		return true
	}
	for sci := range s.rx {
		if k.o.SecY.RxNextPN(sci, s.an) >= k.o.PNThreshold {
			return true
		}
	}
	for _, pe := range p.livePeers() {
		if peerLPN(pe, s.ki) >= k.o.PNThreshold {
			return true
		}
	}
	return false
}
