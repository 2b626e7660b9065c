package mka

// MKA participants (802.1X-2020 9.4): one per CAK, each with its member
// identifier, the message numbers it sent, and its peers. A peer is
// potential until it proves it hears us now, by listing our current MI
// with an MN we sent within the last life time (9.4.2); only live peers
// elect the key server, receive SAKs and keep the CA secured.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

type participant struct {
	key          CAK
	fallback     bool   // the fallback CAK: principal only when no key chain CA is live
	name         string // CKN in hex, for logs and show
	ick, kek     []byte
	mi           MI
	mn           uint32
	sent         []sentMN // MNs sent within the last life time
	peers        map[MI]*peer
	gone         map[MI]goneMI
	kn           uint32 // our last key number as key server
	due          time.Time
	lastSent     time.Time
	pendingRekey string // why a new SAK is wanted, "" when not
	badICV       uint64 // MKPDUs with this CKN whose ICV failed
}

type sentMN struct {
	at time.Time
	mn uint32
}

type goneMI struct {
	mn uint32
	at time.Time
}

type peer struct {
	mi        MI
	mn        uint32
	sci       macsec.SCI
	priority  uint8
	keyServer bool
	live      bool
	listsUs   bool // its last MKPDU named our MI (with any MN)
	expires   time.Time
	use       *SAKUse
	dst       []byte // destination address of its last MKPDU
}

func newParticipant(c CAK, now time.Time) (*participant, error) {
	ick, err := ICK(c.Key.Bytes(), c.CKN)
	if err != nil {
		return nil, err
	}
	kek, err := KEK(c.Key.Bytes(), c.CKN)
	if err != nil {
		return nil, err
	}
	p := &participant{key: c, name: hex.EncodeToString(c.CKN), ick: ick, kek: kek,
		peers: map[MI]*peer{}, gone: map[MI]goneMI{}, due: now}
	p.newMI()
	return p, nil
}

func (p *participant) newMI() {
	rand.Read(p.mi[:])
	p.mn = 0
	p.sent = nil
}

func (p *participant) hasLive() bool {
	for _, pe := range p.peers {
		if pe.live {
			return true
		}
	}
	return false
}

// livePeers returns the live peers in descending SCI order: the order
// XPN assigns SSCIs in, and a stable order for everything else.
func (p *participant) livePeers() []*peer {
	var out []*peer
	for _, pe := range p.peers {
		if pe.live {
			out = append(out, pe)
		}
	}
	sortBySCI(out)
	return out
}

// expirePeers forgets peers silent for a life time; a lost live peer
// makes the key server distribute a new SAK.
func (k *KaY) expirePeers(p *participant, now time.Time) {
	for mi, pe := range p.peers {
		if now.Before(pe.expires) {
			continue
		}
		k.forget(p, pe, now, "timed out")
		delete(p.peers, mi)
	}
	for mi, g := range p.gone {
		if now.Sub(g.at) > 3*k.o.Life {
			delete(p.gone, mi)
		}
	}
	for len(p.sent) > 0 && now.Sub(p.sent[0].at) > k.o.Life {
		p.sent = p.sent[1:]
	}
}

// forget records a peer's MI as gone (its MKPDUs are replays from now on);
// the caller removes it from the peer table.
func (k *KaY) forget(p *participant, pe *peer, now time.Time, why string) {
	p.gone[pe.mi] = goneMI{mn: pe.mn, at: now}
	k.log.Info("MKA peer "+why, "ckn", p.name, "sci", pe.sci, "mi", pe.mi, "was_live", pe.live)
	if pe.live {
		p.pendingRekey = "live peer left"
	}
	p.due = now
	k.dropRxSCIfUnused(pe.sci, pe.mi)
}

// dropRxSCIfUnused deletes the receive SC of sci unless a live peer other
// than except still transmits on it.
func (k *KaY) dropRxSCIfUnused(sci macsec.SCI, except ...MI) {
	for _, p := range k.parts {
		for _, pe := range p.peers {
			if pe.sci == sci && pe.live && (len(except) == 0 || pe.mi != except[0]) {
				return
			}
		}
	}
	k.o.SecY.DeleteRxSC(sci)
	for _, s := range []*sak{k.latest, k.old} {
		if s != nil {
			delete(s.rx, sci)
		}
	}
}

// receive handles one frame from the line port.
func (k *KaY) receive(frame []byte) {
	k.stats.MKPDUsReceived++
	now := k.o.Now()
	k.diag.heard = now
	f, err := Decode(frame)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			k.drop(de.Reason, "%s", de.Detail)
		}
		return
	}
	m := f.PDU
	var p *participant
	for _, q := range k.parts {
		if bytes.Equal(q.key.CKN, m.CKN) {
			p = q
		}
	}
	if p == nil {
		k.diag.otherCKN(m.CKN, now)
		k.drop(ReasonUnknownCKN, "CKN %x from %s", m.CKN, f.Src)
		return
	}
	if !f.Verify(p.ick) {
		p.badICV++
		k.drop(ReasonBadICV, "from %s (CKN %s): the peer's CAK differs from ours", f.Src, p.name)
		return
	}
	if m.MI == p.mi {
		if m.SCI == k.o.SCI {
			return // our own MKPDU reflected by the line
		}
		k.drop(ReasonOwnMI, "%s (SCI %s) uses our MI; choosing a new one", f.Src, m.SCI)
		p.newMI()
		p.due = now
		return
	}
	if m.SCI == k.o.SCI {
		// Another member with our SCI (a duplicate MAC address, or a
		// forgery) would repeat our GCM nonces: it is never a peer.
		k.drop(ReasonOwnSCI, "%s (MI %s) uses our SCI %s", f.Src, m.MI, m.SCI)
		return
	}
	pe := p.peers[m.MI]
	if pe != nil && m.MN <= pe.mn {
		k.drop(ReasonStaleMN, "MN %d from MI %s after %d", m.MN, m.MI, pe.mn)
		return
	}
	if g, ok := p.gone[m.MI]; ok && pe == nil && m.MN <= g.mn {
		k.drop(ReasonReplayedMI, "MI %s left at MN %d and came back with MN %d", m.MI, g.mn, m.MN)
		return
	}
	if pe == nil && len(p.peers) >= maxPeers {
		k.drop(ReasonPeerTableFull, "MI %s from %s: %d peers already", m.MI, f.Src, len(p.peers))
		return
	}
	k.stats.MKPDUsValid++
	k.diag.valid = now
	k.dest.heard(f.Dst)
	changed := false
	if pe == nil {
		// A new MI stays potential until it proves it hears us: an old
		// MKPDU replayed by someone on the line never does, so it cannot
		// displace the live peer with the same SCI.
		pe = &peer{mi: m.MI}
		p.peers[m.MI] = pe
		changed = true
		k.log.Info("MKA peer seen", "ckn", p.name, "sci", m.SCI, "mi", m.MI, "priority", m.Priority)
	}
	pe.mn, pe.sci, pe.priority, pe.keyServer = m.MN, m.SCI, m.Priority, m.KeyServer
	pe.expires = now.Add(k.o.Life)
	pe.dst = append(pe.dst[:0], f.Dst...)
	pe.use = m.SAKUse // its SAKs now: none when it sends no SAK Use
	named, live := p.listsUs(m)
	pe.listsUs = named
	if live != pe.live {
		changed = true
		pe.live = live
		if live {
			k.peerLive(p, pe, now)
		}
	}
	if m.DistSAK != nil && pe.live {
		k.acceptSAK(p, pe, m, now)
	}
	if changed {
		p.due = minTime(p.due, p.lastSent.Add(boundedHello))
	}
}

// peerLive handles a peer that proved liveness. An older MI with the same
// SCI is that peer before a restart: it is gone now.
func (k *KaY) peerLive(p *participant, pe *peer, now time.Time) {
	k.log.Info("MKA peer live", "ckn", p.name, "sci", pe.sci, "mi", pe.mi)
	for mi, old := range p.peers {
		if mi != pe.mi && old.sci == pe.sci {
			k.forget(p, old, now, "restarted with a new MI")
			delete(p.peers, mi)
		}
	}
	if k.isKeyServer(p) {
		p.pendingRekey = "live peer joined"
	}
}

// listsUs reports whether m names our MI at all, and whether it names it
// with an MN we sent within the last life time: proof the peer hears us
// now.
func (p *participant) listsUs(m *MKPDU) (named, live bool) {
	for _, l := range [][]PeerEntry{m.Live, m.Potential} {
		for _, e := range l {
			if e.MI == p.mi {
				return true, len(p.sent) > 0 && e.MN >= p.sent[0].mn && e.MN <= p.mn
			}
		}
	}
	return false, false
}

func (k *KaY) drop(r Reason, f string, a ...any) {
	k.drops[r]++
	detail := fmt.Sprintf(f, a...)
	k.diag.dropped(r, detail, k.o.Now())
	// Counted always; logged at debug so a flood cannot fill the log.
	k.log.Debug("MKPDU dropped", "reason", string(r), "detail", detail)
	if r == ReasonBadICV || r == ReasonSuite || r == ReasonOwnMI || r == ReasonOwnSCI || r == ReasonBadSSCI {
		if k.drops[r]&(k.drops[r]-1) == 0 { // 1st, 2nd, 4th, 8th ...
			k.log.Warn("MKPDU dropped", "reason", string(r), "detail", detail, "count", k.drops[r])
		}
	}
}
