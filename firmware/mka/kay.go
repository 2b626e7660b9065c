package mka

// The KaY: one per link. It runs an MKA participant for every CAK of the
// key chain that is in its validity period, elects the key server, and
// installs SAKs into the SecY. Only the principal participant (the newest
// CAK whose CA has a live peer) touches the SecY, so a key chain rolls
// over like a rekey: the new CA's first SAK is installed beside the old
// CA's, transmit moves once every peer can receive it, and the old SAs
// are retired only after every peer transmits with the new one.
//
// One goroutine (Run) owns the protocol; received frames, rekey requests
// and status reads reach it under a mutex.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// Protocol timers (802.1X-2020 Table 9-3).
const (
	HelloTime        = 2 * time.Second
	LifeTime         = 6 * time.Second
	boundedHello     = 100 * time.Millisecond // earliest resend after a change
	retireDelay      = time.Second            // frames in flight under the old SAK drain
	tick             = 50 * time.Millisecond
	defaultPriority  = 16
	receiveQueueSize = 256
)

// CAK is one entry of a key chain. Zero Start means always started; zero
// End means it never expires.
type CAK struct {
	CKN        []byte
	Key        macsec.Key
	Start, End time.Time
}

// Options configure a KaY.
type Options struct {
	SecY SecY
	SCI  macsec.SCI       // our transmit SCI
	MAC  net.HardwareAddr // source address of MKPDUs
	// Suite, Offset and IntegrityOnly are what the SecY was built for:
	// a key server distributes them, and a SAK for anything else is
	// refused (the CA stays unsecured, the reason is counted and logged).
	Suite         macsec.CipherSuite
	Offset        int
	IntegrityOnly bool
	Priority      uint8 // key server priority; lower wins, 255 never serves
	Keys          []CAK
	Destination   net.HardwareAddr // default 01-80-C2-00-00-03
	EtherType     uint16           // default 0x888E
	ICVIndicator  bool
	RekeyInterval time.Duration // 0: no periodic rekey
	PNThreshold   uint64        // 0: the suite's default (3/4 of the PN space)
	Send          func(frame []byte) error
	Log           *slog.Logger
	Now           func() time.Time
	// Hello and Life override the protocol timers (tests only).
	Hello, Life time.Duration
}

// KaY is the key agreement entity of one link.
type KaY struct {
	o     Options
	log   *slog.Logger
	in    chan []byte
	kick  chan struct{}
	mu    sync.Mutex
	parts []*participant
	// latest and old are the SAKs installed in the SecY.
	latest, old *sak
	drops       map[Reason]uint64
	stats       Counters
}

// Counters are the KaY's own counters.
type Counters struct {
	MKPDUsSent, MKPDUsReceived, MKPDUsValid, SendErrors uint64
	SAKsGenerated, SAKsInstalled, SAKsRetired           uint64
}

type participant struct {
	key          CAK
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
	lastSAKFrom  map[MI]uint32
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
	expires   time.Time
	use       *SAKUse
}

// sak is a SAK installed in the SecY.
type sak struct {
	ki        KI
	an        uint8
	ca        string // CKN of the participant that agreed it
	key       macsec.Key
	rxSCs     []macsec.SCI
	members   []MI // live peers when it was distributed (key server)
	txOn      bool
	installed time.Time
	allTx     time.Time // when every peer was first seen transmitting with it
	distSAK   *DistSAK  // key server: what to distribute until acknowledged
	ksSSCI    uint8
}

// New checks the options and builds a KaY; Run starts it.
func New(o Options) (*KaY, error) {
	if o.SecY == nil || o.Send == nil {
		return nil, errors.New("mka: no SecY or send function")
	}
	if !o.Suite.Valid() {
		return nil, fmt.Errorf("mka: cipher suite %d", o.Suite)
	}
	if len(o.Keys) == 0 {
		return nil, errors.New("mka: empty key chain")
	}
	for i, k := range o.Keys {
		if err := checkCAK(k.Key.Bytes(), k.CKN); err != nil {
			return nil, fmt.Errorf("mka: key chain entry %d: %w", i, err)
		}
	}
	if o.Destination == nil {
		o.Destination = DefaultDestination
	}
	if o.EtherType == 0 {
		o.EtherType = EtherTypeEAPOL
	}
	if o.PNThreshold == 0 {
		o.PNThreshold = o.Suite.DefaultPNThreshold()
	}
	if o.Hello == 0 {
		o.Hello = HelloTime
	}
	if o.Life == 0 {
		o.Life = LifeTime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &KaY{
		o: o, log: o.Log.With("component", "mka"),
		in: make(chan []byte, receiveQueueSize), kick: make(chan struct{}, 1),
		drops: map[Reason]uint64{},
	}, nil
}

// Receive hands the KaY an EAPOL frame from the line port. It never
// blocks: when the queue is full the frame is dropped and counted.
func (k *KaY) Receive(frame []byte) {
	select {
	case k.in <- frame:
	default:
		k.mu.Lock()
		k.drops[ReasonQueueFull]++
		k.mu.Unlock()
	}
}

// Run runs the protocol until ctx ends. It leaves installed SAs to the
// caller, which deletes them with the SecY.
func (k *KaY) Run(ctx context.Context) {
	t := time.NewTicker(tick)
	defer t.Stop()
	k.mu.Lock()
	k.step()
	k.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-k.in:
			k.mu.Lock()
			k.receive(f)
			k.step()
			k.mu.Unlock()
		case <-k.kick:
			k.mu.Lock()
			k.step()
			k.mu.Unlock()
		case <-t.C:
			k.mu.Lock()
			k.step()
			k.mu.Unlock()
		}
	}
}

// ErrNotKeyServer is returned by Rekey on a participant that does not
// distribute keys.
var ErrNotKeyServer = errors.New("this end is not the key server; request the rekey on the key server")

// Rekey asks for a new SAK (for `request security mka rekey`, a PN
// threshold, or a test). Only the key server can honour it.
func (k *KaY) Rekey(why string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.principal()
	if p == nil {
		return errors.New("no secure connectivity association: nothing to rekey")
	}
	if !k.isKeyServer(p) {
		return ErrNotKeyServer
	}
	p.pendingRekey = why
	k.poke()
	return nil
}

func (k *KaY) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// step runs the timers: key chain schedule, peer expiry, key server work,
// SA transitions and MKPDU transmission.
func (k *KaY) step() {
	now := k.o.Now()
	k.schedule(now)
	for _, p := range k.parts {
		k.expirePeers(p, now)
	}
	p := k.principal()
	if p == nil {
		if k.latest != nil || k.old != nil {
			k.log.Warn("secure connectivity association lost: no live peer; all SAs deleted (must-secure drops traffic)")
			k.deleteSAK(k.old)
			k.deleteSAK(k.latest)
			k.old, k.latest = nil, nil
		}
	} else {
		if k.isKeyServer(p) {
			k.serveKeys(p, now)
		}
		k.transition(p, now)
	}
	for _, p := range k.parts {
		if !now.Before(p.due) {
			k.send(p, now)
		}
	}
}

// schedule starts participants for CAKs that entered their validity
// period and stops those that left it.
func (k *KaY) schedule(now time.Time) {
	for _, c := range k.o.Keys {
		active := (c.Start.IsZero() || !now.Before(c.Start)) && (c.End.IsZero() || now.Before(c.End))
		i := slices.IndexFunc(k.parts, func(p *participant) bool { return bytes.Equal(p.key.CKN, c.CKN) })
		switch {
		case active && i < 0:
			p, err := newParticipant(c, now)
			if err != nil {
				k.log.Error("cannot start MKA participant", "ckn", hex.EncodeToString(c.CKN), "err", err)
				continue
			}
			k.log.Info("MKA participant started", "ckn", p.name, "mi", p.mi)
			k.parts = append(k.parts, p)
		case !active && i >= 0:
			p := k.parts[i]
			k.log.Info("CAK left its validity period; participant stopped", "ckn", p.name)
			k.parts = slices.Delete(k.parts, i, i+1)
			for _, pe := range p.peers {
				k.dropRxSCIfUnused(pe.sci)
			}
		}
	}
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
		peers: map[MI]*peer{}, gone: map[MI]goneMI{}, lastSAKFrom: map[MI]uint32{}, due: now}
	p.newMI()
	return p, nil
}

func (p *participant) newMI() {
	rand.Read(p.mi[:])
	p.mn = 0
	p.sent = nil
}

// principal is the newest CAK's participant with a live peer.
func (k *KaY) principal() *participant {
	var best *participant
	bestIdx := -1
	for _, p := range k.parts {
		if !p.hasLive() {
			continue
		}
		idx := slices.IndexFunc(k.o.Keys, func(c CAK) bool { return bytes.Equal(c.CKN, p.key.CKN) })
		if best == nil || p.key.Start.After(best.key.Start) || (p.key.Start.Equal(best.key.Start) && idx > bestIdx) {
			best, bestIdx = p, idx
		}
	}
	return best
}

func (p *participant) hasLive() bool {
	for _, pe := range p.peers {
		if pe.live {
			return true
		}
	}
	return false
}

// livePeers returns the live peers in MI order (the order SAK derivation
// and distribution use).
func (p *participant) livePeers() []*peer {
	var out []*peer
	for _, pe := range p.peers {
		if pe.live {
			out = append(out, pe)
		}
	}
	slices.SortFunc(out, func(a, b *peer) int { return bytes.Compare(a.mi[:], b.mi[:]) })
	return out
}

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

// expirePeers forgets peers silent for a life time; a lost live peer
// makes the key server distribute a new SAK.
func (k *KaY) expirePeers(p *participant, now time.Time) {
	for mi, pe := range p.peers {
		if now.Before(pe.expires) {
			continue
		}
		delete(p.peers, mi)
		p.gone[mi] = goneMI{mn: pe.mn, at: now}
		k.log.Info("MKA peer timed out", "ckn", p.name, "sci", pe.sci, "mi", mi, "was_live", pe.live)
		if pe.live {
			p.pendingRekey = "live peer left"
		}
		k.dropRxSCIfUnused(pe.sci)
		p.due = now
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

func (k *KaY) dropRxSCIfUnused(sci macsec.SCI) {
	for _, p := range k.parts {
		for _, pe := range p.peers {
			if pe.sci == sci {
				return
			}
		}
	}
	k.o.SecY.DeleteRxSC(sci)
	for _, s := range []*sak{k.latest, k.old} {
		if s != nil {
			s.rxSCs = slices.DeleteFunc(s.rxSCs, func(x macsec.SCI) bool { return x == sci })
		}
	}
}

// receive handles one frame from the line port.
func (k *KaY) receive(frame []byte) {
	k.stats.MKPDUsReceived++
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
		k.drop(ReasonUnknownCKN, "CKN %x from %s", m.CKN, f.Src)
		return
	}
	if !f.Verify(p.ick) {
		k.drop(ReasonBadICV, "from %s (CKN %s): the peer's CAK differs from ours", f.Src, p.name)
		return
	}
	now := k.o.Now()
	if m.MI == p.mi {
		if m.SCI == k.o.SCI {
			return // our own MKPDU reflected by the line
		}
		k.drop(ReasonOwnMI, "%s (SCI %s) uses our MI; choosing a new one", f.Src, m.SCI)
		p.newMI()
		p.due = now
		return
	}
	pe := p.peers[m.MI]
	if pe != nil && m.MN <= pe.mn {
		k.drop(ReasonStaleMN, "MN %d from MI %s after %d", m.MN, m.MI, pe.mn)
		return
	}
	if g, ok := p.gone[m.MI]; ok && pe == nil && m.MN <= g.mn {
		k.drop(ReasonReplayedMI, "MI %s timed out at MN %d and came back with MN %d", m.MI, g.mn, m.MN)
		return
	}
	k.stats.MKPDUsValid++
	changed := false
	if pe == nil {
		// A new MI from a known SCI is that peer restarted.
		for mi, old := range p.peers {
			if old.sci == m.SCI {
				delete(p.peers, mi)
				p.gone[mi] = goneMI{mn: old.mn, at: now}
				if old.live {
					p.pendingRekey = "peer restarted"
				}
			}
		}
		pe = &peer{mi: m.MI}
		p.peers[m.MI] = pe
		changed = true
		k.log.Info("MKA peer seen", "ckn", p.name, "sci", m.SCI, "mi", m.MI, "priority", m.Priority)
	}
	pe.mn, pe.sci, pe.priority, pe.keyServer = m.MN, m.SCI, m.Priority, m.KeyServer
	pe.expires = now.Add(k.o.Life)
	if m.SAKUse != nil {
		pe.use = m.SAKUse
	}
	live := p.listsUs(m)
	if live != pe.live {
		changed = true
		pe.live = live
		if live {
			k.log.Info("MKA peer live", "ckn", p.name, "sci", pe.sci, "mi", pe.mi)
			if k.isKeyServer(p) {
				p.pendingRekey = "live peer joined"
			}
		}
	}
	if m.DistSAK != nil && pe.live {
		k.acceptSAK(p, pe, m, now)
	}
	if changed {
		p.due = minTime(p.due, p.lastSent.Add(boundedHello))
	}
}

// listsUs reports whether m names our MI with an MN we sent within the
// last life time: proof the peer hears us now.
func (p *participant) listsUs(m *MKPDU) bool {
	for _, l := range [][]PeerEntry{m.Live, m.Potential} {
		for _, e := range l {
			if e.MI == p.mi {
				return len(p.sent) > 0 && e.MN >= p.sent[0].mn && e.MN <= p.mn
			}
		}
	}
	return false
}

func (k *KaY) drop(r Reason, f string, a ...any) {
	k.drops[r]++
	// Counted always; logged at debug so a flood cannot fill the log.
	k.log.Debug("MKPDU dropped", "reason", string(r), "detail", fmt.Sprintf(f, a...))
	if r == ReasonBadICV || r == ReasonSuite || r == ReasonOwnMI {
		if k.drops[r]&(k.drops[r]-1) == 0 { // 1st, 2nd, 4th, 8th ...
			k.log.Warn("MKPDU dropped", "reason", string(r), "detail", fmt.Sprintf(f, a...), "count", k.drops[r])
		}
	}
}

// acceptSAK installs a SAK distributed by the key server.
func (k *KaY) acceptSAK(p *participant, from *peer, m *MKPDU, now time.Time) {
	d := m.DistSAK
	if ks := k.keyServer(p); ks != from || !m.KeyServer {
		k.drop(ReasonNotKeyServer, "SCI %s distributed a SAK but is not the elected key server", from.sci)
		return
	}
	ki := KI{MI: from.mi, KN: d.KN}
	if last, ok := p.lastSAKFrom[from.mi]; ok && d.KN <= last {
		return // already installed (the key server repeats it until acknowledged)
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
		k.drop(ReasonSuite, "key server %s chose confidentiality offset code %d; this link is configured for %d", from.sci, d.Offset, want)
		return
	}
	if p != k.principal() {
		return // an older CAK's SAK while a newer CA is up: ignore
	}
	key, err := Unwrap(p.kek, d.Wrapped)
	if err != nil || len(key) != k.o.Suite.KeyLen() {
		k.drop(ReasonBadSAK, "SAK KN %d from %s does not unwrap to a %d-octet key", d.KN, from.sci, k.o.Suite.KeyLen())
		return
	}
	p.lastSAKFrom[from.mi] = d.KN
	s := &sak{ki: ki, an: d.AN, ca: p.name, key: macsec.NewKey(key), installed: now, ksSSCI: m.KeyServerSSCI}
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

// serveKeys is the key server's work: a first SAK for the CA, and a new
// one when asked, when the live peers change, on the rekey interval, or
// when a PN passes the threshold. One transition at a time: a new SAK
// waits until the previous old SAK is retired.
func (k *KaY) serveKeys(p *participant, now time.Time) {
	why := p.pendingRekey
	switch {
	case k.latest == nil || k.latest.ca != p.name || k.latest.ki.MI != p.mi:
		why = "new secure connectivity association"
	case why != "":
	case k.o.RekeyInterval > 0 && now.Sub(k.latest.installed) >= k.o.RekeyInterval:
		why = "rekey interval"
	case k.pnPastThreshold():
		why = "PN threshold"
	case !slices.Equal(k.latest.members, miList(p.livePeers())):
		why = "live peers changed"
	}
	if why == "" {
		return
	}
	if k.old != nil || (k.latest != nil && k.latest.ca == p.name && !k.latest.txOn) {
		return // previous transition still running; retried on the next step
	}
	live := p.livePeers()
	nonce := make([]byte, k.o.Suite.KeyLen())
	rand.Read(nonce)
	mis := [][]byte{p.mi[:]}
	for _, pe := range live {
		mis = append(mis, pe.mi[:])
	}
	p.kn++
	key, err := SAK(p.key.Key.Bytes(), nonce, mis, p.kn, k.o.Suite.KeyLen())
	if err != nil {
		k.log.Error("cannot derive a SAK", "err", err)
		return
	}
	an := uint8(0)
	if k.latest != nil {
		an = (k.latest.an + 1) & 3
	}
	wrapped, err := Wrap(p.kek, key)
	if err != nil {
		wipe(key)
		k.log.Error("cannot wrap the SAK", "err", err)
		return
	}
	s := &sak{ki: KI{MI: p.mi, KN: p.kn}, an: an, ca: p.name, key: macsec.NewKey(key), installed: now, members: miList(live),
		distSAK: &DistSAK{AN: an, Offset: k.offsetCode(), KN: p.kn, Suite: k.o.Suite, Wrapped: wrapped}}
	wipe(key)
	s.ksSSCI = uint8(k.ssci(p, k.o.SCI))
	k.stats.SAKsGenerated++
	p.pendingRekey = ""
	if err := k.install(p, s); err != nil {
		k.log.Error("cannot install the new SAK", "kn", p.kn, "an", an, "err", err)
		return
	}
	k.log.Info("distributing a new SAK", "ckn", p.name, "kn", p.kn, "an", an, "reason", why, "sak", s.key.Fingerprint())
	p.due = minTime(p.due, p.lastSent.Add(boundedHello))
}

func miList(ps []*peer) []MI {
	out := make([]MI, len(ps))
	for i, pe := range ps {
		out[i] = pe.mi
	}
	return out
}

func (k *KaY) pnPastThreshold() bool {
	s := k.latest
	if s == nil || !s.txOn {
		return false
	}
	if k.o.SecY.TxNextPN(s.an) >= k.o.PNThreshold {
		return true
	}
	for _, sci := range s.rxSCs {
		if k.o.SecY.RxNextPN(sci, s.an) >= k.o.PNThreshold {
			return true
		}
	}
	return false
}

// ssci numbers the CA's members by ascending SCI from 1 (XPN only).
func (k *KaY) ssci(p *participant, sci macsec.SCI) uint32 {
	scis := []macsec.SCI{k.o.SCI}
	for _, pe := range p.livePeers() {
		scis = append(scis, pe.sci)
	}
	slices.Sort(scis)
	return uint32(slices.Index(scis, sci) + 1)
}

// salt is the XPN salt of a SAK: the key server's MI with the key number
// folded into its first four octets.
func salt(ki KI) [12]byte {
	var s [12]byte
	copy(s[:], ki.MI[:])
	s[0] ^= byte(ki.KN >> 24)
	s[1] ^= byte(ki.KN >> 16)
	s[2] ^= byte(ki.KN >> 8)
	s[3] ^= byte(ki.KN)
	return s
}

// install puts a new SAK in the SecY: receive SAs for every live peer
// and a transmit SA that is not used until the peers can receive it.
// The previous latest SAK becomes the old one; an older one is deleted.
func (k *KaY) install(p *participant, s *sak) error {
	params := func(sci macsec.SCI) macsec.SAParams {
		sp := macsec.SAParams{AN: s.an, Key: s.key, PN: 1}
		if k.o.Suite.XPN() {
			sp.SSCI, sp.Salt = k.ssci(p, sci), salt(s.ki)
		}
		return sp
	}
	if k.old != nil {
		k.deleteSAK(k.old)
		k.old = nil
	}
	if k.latest != nil && k.latest.an == s.an {
		// The key server reused the AN in use (a peer with its own AN
		// numbering, at a rollover): the new SAK replaces it.
		k.deleteSAK(k.latest)
		k.latest = nil
	}
	for _, pe := range p.livePeers() {
		if err := k.o.SecY.InstallRxSA(pe.sci, params(pe.sci)); err != nil {
			return err
		}
		s.rxSCs = append(s.rxSCs, pe.sci)
	}
	if err := k.o.SecY.InstallTxSA(params(k.o.SCI)); err != nil {
		return err
	}
	k.old, k.latest = k.latest, s
	k.stats.SAKsInstalled++
	k.log.Info("SAK installed", "ckn", p.name, "kn", s.ki.KN, "an", s.an, "sak", s.key.Fingerprint(), "receive_scs", len(s.rxSCs))
	return nil
}

func (k *KaY) deleteSAK(s *sak) {
	if s == nil {
		return
	}
	if k.o.SecY.EncodingSA() == int(s.an) {
		k.o.SecY.SetEncodingSA(-1)
	}
	k.o.SecY.DeleteTxSA(s.an)
	for _, sci := range s.rxSCs {
		k.o.SecY.DeleteRxSA(sci, s.an)
	}
	s.key.Wipe()
	k.stats.SAKsRetired++
}

// transition moves transmit to the latest SAK once every live peer can
// receive it (or the key server already transmits with it), and retires
// the old SAK once every peer transmits with the latest.
func (k *KaY) transition(p *participant, now time.Time) {
	s := k.latest
	if s == nil || s.ca != p.name {
		return
	}
	live := p.livePeers()
	all := func(ok func(u *SAKUse) bool) bool {
		for _, pe := range live {
			if pe.use == nil || !ok(pe.use) {
				return false
			}
		}
		return true
	}
	if !s.txOn {
		ks := k.keyServer(p)
		serverTx := ks != nil && ks.use != nil && ks.use.Latest == s.ki && ks.use.LatestTx
		if serverTx || all(func(u *SAKUse) bool { return u.Latest == s.ki && u.LatestRx }) {
			if err := k.o.SecY.SetEncodingSA(int(s.an)); err != nil {
				k.log.Error("cannot transmit with the new SAK", "an", s.an, "err", err)
				return
			}
			s.txOn = true
			s.distSAK = nil
			k.log.Info("transmitting with the new SAK", "ckn", p.name, "kn", s.ki.KN, "an", s.an)
			p.due = minTime(p.due, p.lastSent.Add(boundedHello))
		}
	}
	if s.distSAK != nil && all(func(u *SAKUse) bool { return u.Latest == s.ki && u.LatestRx }) && s.txOn {
		s.distSAK = nil
	}
	if k.old == nil || !s.txOn {
		return
	}
	if s.allTx.IsZero() && all(func(u *SAKUse) bool { return u.Latest == s.ki && u.LatestTx }) {
		s.allTx = now
	}
	if !s.allTx.IsZero() && now.Sub(s.allTx) >= retireDelay || now.Sub(s.installed) >= k.o.Life {
		k.log.Info("old SAK retired", "kn", k.old.ki.KN, "an", k.old.an)
		k.deleteSAK(k.old)
		k.old = nil
		p.due = minTime(p.due, p.lastSent.Add(boundedHello))
	}
}

// send transmits p's MKPDU.
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
	for _, pe := range p.peers {
		e := PeerEntry{MI: pe.mi, MN: pe.mn}
		if pe.live {
			m.Live = append(m.Live, e)
		} else {
			m.Potential = append(m.Potential, e)
		}
	}
	if p == k.principal() {
		m.SAKUse = k.sakUse(p)
		if s := k.latest; ks && s != nil && s.ca == p.name && s.distSAK != nil {
			m.DistSAK = s.distSAK
			if k.o.Suite.XPN() {
				m.KeyServerSSCI = s.ksSSCI
			}
		}
	}
	frame, err := m.Encode(k.o.Destination, k.o.MAC, k.o.EtherType, p.ick)
	p.lastSent, p.due = now, now.Add(k.o.Hello)
	if err == nil {
		err = k.o.Send(frame)
	}
	if err != nil {
		k.stats.SendErrors++
		k.log.Warn("cannot send MKPDU", "err", err)
		return
	}
	k.stats.MKPDUsSent++
}

// sakUse reports the SAKs of p's CA that are installed here.
func (k *KaY) sakUse(p *participant) *SAKUse {
	s := k.latest
	if s == nil || s.ca != p.name {
		return nil
	}
	u := &SAKUse{LatestAN: s.an, Latest: s.ki, LatestRx: true, LatestTx: s.txOn, LatestLowest: k.lowestPN(s)}
	if o := k.old; o != nil && o.ca == p.name {
		u.OldAN, u.Old, u.OldRx, u.OldTx, u.OldLowest = o.an, o.ki, true, !s.txOn, k.lowestPN(o)
	}
	return u
}

// lowestPN is the lowest PN any of our receive SAs of s accepts.
func (k *KaY) lowestPN(s *sak) uint64 {
	low := uint64(0)
	for _, sci := range s.rxSCs {
		if pn := k.o.SecY.RxNextPN(sci, s.an); pn != 0 && (low == 0 || pn < low) {
			low = pn
		}
	}
	return max(low, 1)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
