package mka

// The MKPDUs a participant transmits (802.1X-2020 11.11): every hello
// time, and within a bounded hello time of a change. They are queued in
// the KaY's outbox and sent once its lock is released.

import (
	"slices"
	"time"
)

// send queues p's MKPDU.
func (k *KaY) send(p *participant, now time.Time) {
	p.mn++
	if p.mn == 0 { // MN space used up: become a new member
		p.newMI()
		p.mn = 1
	}
	p.sent = append(p.sent, sentMN{at: now, mn: p.mn})
	ks := k.isKeyServer(p)
	m := &MKPDU{
		Version: 1, Priority: k.o.Priority, KeyServer: ks, MACsecDesired: true, Capability: 3,
		SCI: k.o.SCI, MI: p.mi, MN: p.mn, CKN: p.key.CKN, ICVIndicator: k.o.ICVIndicator,
	}
	if k.o.Suite.XPN() {
		m.Version, m.XPN = 3, true
	}
	principal := p == k.principal()
	var dist *sak
	if s := k.latest; principal && ks && s != nil && s.ca == p && s.distSAK != nil && !k.acknowledged(s, p) {
		dist = s // until every member reports it, and again for one that lost it
	}
	live := p.livePeers()
	if dist != nil && !dist.sameMembers(p.mi, live) {
		// Someone joined or left since the SAK was made: it is not handed
		// to anyone else; the key server makes a new one.
		dist = nil
	}
	if dist != nil && k.o.Suite.XPN() {
		// The SSCI encoding of 802.1X-2020 9.10: our SSCI in the Live
		// Peer List header, the members in SSCI order.
		slices.SortFunc(live, func(a, b *peer) int { return int(dist.sscis[a.mi]) - int(dist.sscis[b.mi]) })
		m.KeyServerSSCI = uint8(dist.sscis[p.mi])
	}
	for _, pe := range live {
		m.Live = append(m.Live, PeerEntry{MI: pe.mi, MN: pe.mn})
	}
	for _, pe := range p.peers {
		if !pe.live {
			m.Potential = append(m.Potential, PeerEntry{MI: pe.mi, MN: pe.mn})
		}
	}
	slices.SortFunc(m.Potential, func(a, b PeerEntry) int { return slices.Compare(a.MI[:], b.MI[:]) })
	if principal {
		m.SAKUse = k.sakUse(p)
		if dist != nil {
			m.DistSAK = dist.distSAK
		}
	}
	p.lastSent, p.due = now, now.Add(k.o.Hello)
	frame, err := m.Encode(k.dest.current(), k.o.MAC, k.o.EtherType, p.ick)
	if err != nil {
		k.stats.SendErrors++
		k.log.Error("cannot encode MKPDU", "err", err)
		return
	}
	k.outbox = append(k.outbox, frame)
}

// sakUse reports the SAKs of p's CA that are installed here.
func (k *KaY) sakUse(p *participant) *SAKUse {
	s := k.latest
	if s == nil || s.ca != p {
		return nil
	}
	u := &SAKUse{LatestAN: s.an, Latest: s.ki, LatestRx: true, LatestTx: s.txOn, LatestLowest: s.lowestPN()}
	k.sampleTxPN(s)
	if o := k.old; o != nil && o.ca == p {
		u.OldAN, u.Old, u.OldRx, u.OldTx, u.OldLowest = o.an, o.ki, true, o.txOn, o.lowestPN()
		k.sampleTxPN(o)
	}
	return u
}

// lowestPN is the Lowest Acceptable PN this end reports for s: the lowest
// PN it transmitted with in the last two seconds (802.1X-2020 9.8), read
// as the transmit next PN one MKPDU ago, less one. Receivers start their
// SA there and key servers watch it for exhaustion.
func (s *sak) lowestPN() uint64 { return max(s.lpnSample, 2) - 1 }

func (k *KaY) sampleTxPN(s *sak) {
	if pn := k.o.SecY.TxNextPN(s.an); pn != 0 {
		s.lpnSample = pn
	}
}
