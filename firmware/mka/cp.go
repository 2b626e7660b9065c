package mka

// The Controlled Port's SAK life cycle (802.1X-2020 12.4, the CP state
// machine of Figure 12-2, as far as a pre-shared-key KaY needs it). The
// SecY holds at most two SAKs: the latest, and the old one it replaces.
// A new SAK is first installed for receive; transmit moves to it once
// every member can receive it (or the key server transmits with it); the
// old SAK is retired once every member transmits with the latest. While
// keyed, this end always has exactly one transmit SA in use.

import (
	"slices"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// cpState is where the Controlled Port is in the SAK life cycle.
type cpState int

const (
	// cpUnsecured: no SAK; the SecY has no SA and transmits nothing
	// (must-secure drops every frame). The CP's INIT/ALLOWED states.
	cpUnsecured cpState = iota
	// cpReceiving: the latest SAK is installed for receive; transmit stays
	// on the old SAK, or is off before the first. RECEIVE/RECEIVING.
	cpReceiving
	// cpTransmitting: transmit uses the latest SAK; the old one still
	// receives frames in flight. TRANSMIT/TRANSMITTING.
	cpTransmitting
	// cpSecured: only the latest SAK is installed, and it transmits.
	// RETIRE done, SECURED.
	cpSecured
)

func (s cpState) String() string {
	return [...]string{"unsecured", "receiving", "transmitting", "secured"}[s]
}

// sak is a SAK installed in the SecY.
type sak struct {
	ki  KI
	an  uint8
	ca  *participant // the participant that agreed it
	key macsec.Key
	// XPN: the Salt, and every member's SSCI as the key server assigned
	// them (by MI).
	salt  [12]byte
	sscis map[MI]uint32
	// members are the CA's members the SAK was distributed to: the key
	// server and its live peers then, this end included.
	members   []MI
	rx        map[macsec.SCI]bool // receive SAs installed, by peer SCI
	txOn      bool
	installed time.Time
	allTx     time.Time // when every member was first seen transmitting with it
	distSAK   *DistSAK  // key server: what it distributes while a member lacks it
	lpnSample uint64    // transmit next PN at the previous MKPDU (SAK Use)
}

func (s *sak) member(mi MI) bool { return slices.Contains(s.members, mi) }

// sameMembers reports whether self and live are exactly the members.
func (s *sak) sameMembers(self MI, live []*peer) bool {
	if len(s.members) != len(live)+1 || !s.member(self) {
		return false
	}
	for _, pe := range live {
		if !s.member(pe.mi) {
			return false
		}
	}
	return true
}

// setCP records a CP transition; the state always agrees with latest,
// old and which of them transmits (TestCPStates checks each).
func (k *KaY) setCP(to cpState) {
	if to != k.cp {
		k.log.Debug("controlled port", "from", k.cp, "to", to)
	}
	k.cp = to
}

// transmitting is the SAK the SecY transmits with, or nil.
func (k *KaY) transmitting() *sak {
	switch {
	case k.latest != nil && k.latest.txOn:
		return k.latest
	case k.old != nil && k.old.txOn:
		return k.old
	}
	return nil
}

// params are the SA parameters of s for the member mi's SC.
func (k *KaY) params(s *sak, mi MI, pn uint64) macsec.SAParams {
	sp := macsec.SAParams{AN: s.an, Key: s.key, PN: max(pn, 1)}
	if k.o.Suite.XPN() {
		sp.SSCI, sp.Salt = s.sscis[mi], s.salt
	}
	return sp
}

// peerLPN is the lowest acceptable PN a peer reported for ki in its SAK
// Use: the lowest PN it transmitted with in the last two seconds.
func peerLPN(pe *peer, ki KI) uint64 {
	switch u := pe.use; {
	case u == nil:
		return 0
	case u.Latest == ki:
		return u.LatestLowest
	case u.Old == ki:
		return u.OldLowest
	}
	return 0
}

// install puts a new SAK in the SecY (CP RECEIVE). The SAK this end
// transmits with stays as the old one; any other installed SAK never
// transmitted here and is deleted. The new transmit SA starts above
// every PN a member reported using with that SAK.
func (k *KaY) install(p *participant, s *sak) error {
	tx := k.transmitting()
	for _, o := range []*sak{k.latest, k.old} {
		if o != nil && o != tx {
			k.deleteSAK(o)
		}
	}
	k.latest, k.old = tx, nil
	s.rx = map[macsec.SCI]bool{}
	txPN := max(1, k.used.next(s.ki))
	for _, pe := range p.livePeers() {
		txPN = max(txPN, peerLPN(pe, s.ki))
	}
	if tx != nil && tx.an == s.an {
		// The key server reused the AN this end transmits with (a peer
		// numbering ANs its own way, at a rollover): replace the key in
		// place, so a transmit SA is in use at every moment.
		for sci := range tx.rx {
			k.o.SecY.DeleteRxSA(sci, tx.an)
		}
		k.used.record(tx.ki, k.o.SecY.TxNextPN(tx.an))
		if err := k.o.SecY.InstallTxSA(k.params(s, p.mi, txPN)); err != nil {
			return err
		}
		if err := k.o.SecY.SetEncodingSA(int(s.an)); err != nil {
			return err
		}
		tx.key.Wipe()
		k.stats.SAKsRetired++
		s.txOn = true
		k.latest = s
		k.setCP(cpSecured)
	} else {
		if err := k.o.SecY.InstallTxSA(k.params(s, p.mi, txPN)); err != nil {
			return err
		}
		k.old, k.latest = tx, s
		k.setCP(cpReceiving)
	}
	if err := k.receiveWith(p, s); err != nil {
		return err
	}
	k.stats.SAKsInstalled++
	k.log.Info("SAK installed", "ckn", p.name, "kn", s.ki.KN, "an", s.an, "sak", s.key.Fingerprint(), "receive_scs", len(s.rx), "cp", k.cp)
	return nil
}

// abandonLatest deletes a latest SAK that never transmitted here; the old
// one, which transmits, becomes the latest again (CP back to SECURED).
func (k *KaY) abandonLatest() {
	s := k.latest
	if s == nil || s.txOn || k.old == nil || !k.old.txOn {
		return
	}
	k.log.Info("SAK abandoned before use", "kn", s.ki.KN, "an", s.an)
	k.deleteSAK(s)
	k.latest, k.old = k.old, nil
	k.setCP(cpSecured)
}

// ensureReceive installs receive SAs of the installed SAKs for members
// that became live after the SAK arrived.
func (k *KaY) ensureReceive(p *participant) {
	for _, s := range []*sak{k.latest, k.old} {
		if s != nil && s.ca == p {
			if err := k.receiveWith(p, s); err != nil {
				k.log.Error("cannot install a receive SA", "kn", s.ki.KN, "an", s.an, "err", err)
			}
		}
	}
}

// receiveWith installs a receive SA of s for every live member without
// one, starting at the lowest PN the member reported for s.
func (k *KaY) receiveWith(p *participant, s *sak) error {
	for _, pe := range p.livePeers() {
		if s.rx[pe.sci] || !s.member(pe.mi) {
			continue
		}
		if _, ok := s.sscis[pe.mi]; k.o.Suite.XPN() && !ok {
			continue
		}
		if err := k.o.SecY.InstallRxSA(pe.sci, k.params(s, pe.mi, peerLPN(pe, s.ki))); err != nil {
			return err
		}
		s.rx[pe.sci] = true
	}
	return nil
}

func (k *KaY) deleteSAK(s *sak) {
	if s == nil {
		return
	}
	if k.o.SecY.EncodingSA() == int(s.an) {
		k.o.SecY.SetEncodingSA(-1)
	}
	k.used.record(s.ki, k.o.SecY.TxNextPN(s.an))
	k.o.SecY.DeleteTxSA(s.an)
	for sci := range s.rx {
		k.o.SecY.DeleteRxSA(sci, s.an)
	}
	s.key.Wipe()
	k.stats.SAKsRetired++
}

// transition moves transmit to the latest SAK (CP TRANSMIT) once every
// live member can receive it, or the key server transmits with it, and
// retires the old SAK (CP RETIRE) once every member transmits with the
// latest, or a life time after the latest arrived.
func (k *KaY) transition(p *participant, now time.Time) {
	s := k.latest
	if s == nil || s.ca != p {
		return
	}
	var members []*peer
	for _, pe := range p.livePeers() {
		if s.member(pe.mi) {
			members = append(members, pe)
		}
	}
	all := func(ok func(u *SAKUse) bool) bool {
		for _, pe := range members {
			if pe.use == nil || !ok(pe.use) {
				return false
			}
		}
		return true
	}
	receiving := all(func(u *SAKUse) bool { return u.Latest == s.ki && u.LatestRx })
	if !s.txOn {
		ks := k.keyServer(p)
		serverTx := ks != nil && ks.use != nil && ks.use.Latest == s.ki && ks.use.LatestTx
		if !serverTx && !receiving {
			return
		}
		// Start above every PN a member reported using with this SAK.
		if want := k.membersLPN(members, s.ki); want > k.o.SecY.TxNextPN(s.an) {
			if err := k.o.SecY.InstallTxSA(k.params(s, p.mi, want)); err != nil {
				k.log.Error("cannot move the transmit PN up", "an", s.an, "err", err)
				return
			}
		}
		if err := k.o.SecY.SetEncodingSA(int(s.an)); err != nil {
			k.log.Error("cannot transmit with the new SAK", "an", s.an, "err", err)
			return
		}
		s.txOn = true
		if k.old != nil {
			k.old.txOn = false
			k.setCP(cpTransmitting)
		} else {
			k.setCP(cpSecured)
		}
		k.log.Info("transmitting with the new SAK", "ckn", p.name, "kn", s.ki.KN, "an", s.an)
		p.due = minTime(p.due, p.lastSent.Add(boundedHello))
	}
	if k.old == nil {
		return
	}
	if s.allTx.IsZero() && all(func(u *SAKUse) bool { return u.Latest == s.ki && u.LatestTx }) {
		s.allTx = now
	}
	if !s.allTx.IsZero() && now.Sub(s.allTx) >= retireDelay || now.Sub(s.installed) >= k.o.Life {
		k.log.Info("old SAK retired", "kn", k.old.ki.KN, "an", k.old.an)
		old := k.old
		k.old = nil
		k.deleteSAK(old)
		k.setCP(cpSecured)
		p.due = minTime(p.due, p.lastSent.Add(boundedHello))
	}
}

// acknowledged reports whether every live member reports receiving with s.
func (k *KaY) acknowledged(s *sak, p *participant) bool {
	for _, pe := range p.livePeers() {
		if s.member(pe.mi) && (pe.use == nil || pe.use.Latest != s.ki || !pe.use.LatestRx) {
			return false
		}
	}
	return true
}

func (k *KaY) membersLPN(members []*peer, ki KI) uint64 {
	var pn uint64
	for _, pe := range members {
		pn = max(pn, peerLPN(pe, ki))
	}
	return pn
}

// usedSAKs remembers, for the SAKs this KaY transmitted with, the next
// PN it would have used: a SAK installed again (the key server repeats it
// to a member that lost it) resumes above every PN already sent, so no
// GCM nonce repeats under one SAK and SSCI.
type usedSAKs struct {
	pn    map[KI]uint64
	order []KI
}

const maxUsedSAKs = 64

func (u *usedSAKs) record(ki KI, next uint64) {
	if next == 0 {
		return // no transmit SA, or its PN space is used up (the codec refuses it again)
	}
	if u.pn == nil {
		u.pn = map[KI]uint64{}
	}
	if _, ok := u.pn[ki]; !ok {
		u.order = append(u.order, ki)
		if len(u.order) > maxUsedSAKs {
			delete(u.pn, u.order[0])
			u.order = u.order[1:]
		}
	}
	u.pn[ki] = max(u.pn[ki], next)
}

func (u *usedSAKs) next(ki KI) uint64 { return u.pn[ki] }
