package mka

// Why a CA is not secured, named from what was actually received: the
// first question on every new circuit. Routers' `show mka` hints are the
// model; the standard has no such thing.

import (
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// observations are what the KaY noticed on the line, for the diagnosis.
type observations struct {
	heard time.Time // last frame of our EtherType, valid or not
	valid time.Time // last MKPDU with our CKN and a good ICV
	// otherCKNs are CKNs heard that are not ours (CKNs are names, not
	// secrets), with when they were last heard; bounded.
	otherCKNs map[string]time.Time
	last      map[Reason]note // the last drop of each reason
}

type note struct {
	at     time.Time
	detail string
}

const maxOtherCKNs = 8

func (o *observations) otherCKN(ckn []byte, now time.Time) {
	if o.otherCKNs == nil {
		o.otherCKNs = map[string]time.Time{}
	}
	name := hex.EncodeToString(ckn)
	if _, ok := o.otherCKNs[name]; !ok && len(o.otherCKNs) >= maxOtherCKNs {
		return
	}
	o.otherCKNs[name] = now
}

func (o *observations) dropped(r Reason, detail string, now time.Time) {
	if o.last == nil {
		o.last = map[Reason]note{}
	}
	o.last[r] = note{now, detail}
}

// recent reports whether a drop of reason r happened within d.
func (o *observations) recent(r Reason, now time.Time, d time.Duration) (string, bool) {
	n, ok := o.last[r]
	return n.detail, ok && now.Sub(n.at) <= d
}

// diagnosis names the most likely reason the principal CA is not
// secured, or "" when it is.
func (k *KaY) diagnosis(now time.Time) string {
	pr := k.principal()
	if pr != nil && k.latest != nil && k.latest.ca == pr && k.latest.txOn {
		return ""
	}
	window := 2 * k.o.Life
	if k.diag.heard.IsZero() || now.Sub(k.diag.heard) > window {
		return fmt.Sprintf("no MKPDU heard on the line (EtherType %#04x) %s: the peer is not sending MKA, or the circuit filters %s; "+
			"try `eapol_destination auto` (or 01:80:c2:00:00:00, 01:80:c2:00:00:0e, broadcast) and check the peer's EAPOL destination",
			k.o.EtherType, since(k.diag.heard, now), k.dest.current())
	}
	for _, p := range k.parts {
		if detail, ok := k.diag.recent(ReasonBadICV, now, window); ok && p.badICV > 0 {
			return fmt.Sprintf("CAK mismatch: MKPDUs with our CKN %s fail their ICV (%d so far; %s)", p.name, p.badICV, detail)
		}
	}
	if k.diag.valid.IsZero() || now.Sub(k.diag.valid) > window {
		var others []string
		for ckn, at := range k.diag.otherCKNs {
			if now.Sub(at) <= window {
				others = append(others, ckn)
			}
		}
		if len(others) > 0 {
			slices.Sort(others)
			return fmt.Sprintf("CKN mismatch: MKPDUs heard only with CKN %s; ours is %s", strings.Join(others, ", "), k.cknNames())
		}
		return "MKPDUs heard, but none valid: " + k.lastDropDetail(now, window)
	}
	if detail, ok := k.diag.recent(ReasonSuite, now, window); ok {
		return "cipher suite or offset mismatch with the key server: " + detail
	}
	for _, r := range []Reason{ReasonBadSSCI, ReasonBadSAK, ReasonNotKeyServer} {
		if detail, ok := k.diag.recent(r, now, window); ok {
			return "the key server's SAK is refused: " + detail
		}
	}
	if pr == nil {
		for _, p := range k.parts {
			for _, pe := range p.peers {
				if pe.listsUs {
					return fmt.Sprintf("peer %s lists us, but not with a recent message number: it hears us only intermittently (CKN %s)", pe.sci, p.name)
				}
				return fmt.Sprintf("peer %s is heard (CKN %s) but does not answer our MI: it does not receive our MKPDUs (sent to %s, EtherType %#04x); check a one-way filter or the peer's EAPOL settings",
					pe.sci, p.name, k.dest.current(), k.o.EtherType)
			}
		}
		return "MKPDUs heard, no peer yet"
	}
	if ks := k.keyServer(pr); ks != nil {
		if k.latest == nil || k.latest.ca != pr {
			return fmt.Sprintf("waiting for the key server %s to distribute a SAK", ks.sci)
		}
		return fmt.Sprintf("SAK KN %d installed; waiting for the key server %s to transmit with it", k.latest.ki.KN, ks.sci)
	}
	if k.o.Priority == 0xFF && k.keyServer(pr) == nil {
		return "no key server: every member has key server priority 255"
	}
	return "SAK distributed; waiting for the peers to install it"
}

func (k *KaY) cknNames() string {
	var names []string
	for _, p := range k.parts {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

func (k *KaY) lastDropDetail(now time.Time, window time.Duration) string {
	var latest note
	var reason Reason
	for r, n := range k.diag.last {
		if now.Sub(n.at) <= window && n.at.After(latest.at) {
			latest, reason = n, r
		}
	}
	if reason == "" {
		return "no details"
	}
	return string(reason) + ": " + latest.detail
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "since the link started"
	}
	return "for " + now.Sub(t).Truncate(time.Second).String()
}

// destination is where MKPDUs go. With auto it moves through the
// standard group addresses (802.1X-2020 Table 11-1) and broadcast, a life
// time each, until a peer is live or an MKPDU arrives to one of them; that
// address is then kept.
type destination struct {
	addrs []net.HardwareAddr
	i     int
	auto  bool
	since time.Time
}

// AutoDestinations are the addresses `eapol_destination auto` tries, in
// order: nearest non-TPMR bridge, nearest customer bridge, nearest bridge,
// broadcast.
var AutoDestinations = []net.HardwareAddr{
	DefaultDestination,
	{0x01, 0x80, 0xC2, 0x00, 0x00, 0x00},
	{0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E},
	{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
}

func (d *destination) configure(first net.HardwareAddr, auto bool) {
	if first == nil {
		first = DefaultDestination
	}
	d.addrs, d.i, d.auto, d.since = []net.HardwareAddr{first}, 0, auto, time.Time{}
	if auto {
		for _, a := range AutoDestinations {
			if !slices.Equal(a, first) {
				d.addrs = append(d.addrs, a)
			}
		}
	}
}

func (d *destination) current() net.HardwareAddr { return d.addrs[d.i] }

// step moves to the next address after dwell without a live peer or a
// valid MKPDU (keep).
func (d *destination) step(now time.Time, keep bool, dwell time.Duration) {
	if !d.auto || keep {
		d.since = now
		return
	}
	if d.since.IsZero() {
		d.since = now
	}
	if now.Sub(d.since) >= dwell {
		d.i = (d.i + 1) % len(d.addrs)
		d.since = now
	}
}

// heard takes the address a valid MKPDU arrived to, when it is one auto
// tries: the peer evidently sends there and the circuit passes it.
func (d *destination) heard(dst net.HardwareAddr) {
	if !d.auto {
		return
	}
	if i := slices.IndexFunc(d.addrs, func(a net.HardwareAddr) bool { return slices.Equal(a, dst) }); i >= 0 {
		d.i = i
	}
}
