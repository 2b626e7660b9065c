package mka

import (
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// 100 MKPDUs of an old MI, replayed long after that MI left (it is
// forgotten even from the list of gone MIs): the CA stays secured, no
// frame is lost, and the old MI never becomes a live peer.
func TestReplayedOldMIKeepsCA(t *testing.T) {
	n := newSim(t, macsec.GCMAESXPN256)
	cak := testCAK(t, "replay", 32)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	var captured [][]byte
	n.tap = func(from *simNode, f []byte) {
		if from == b && len(captured) < 100 {
			captured = append(captured, f)
		}
	}
	n.waitSecured(t, 10*time.Second, a, b)
	n.run(100 * 2 * time.Second) // 100 hellos of b's first MI
	if len(captured) < 100 {
		t.Fatalf("captured %d MKPDUs", len(captured))
	}
	n.tap = nil
	b.start() // b restarts: its old MI is gone
	n.waitSecured(t, 20*time.Second, a, b)
	n.run(4 * a.kay.o.Life) // ... and forgotten
	oldMI := func() MI { f, _ := Decode(captured[0]); return f.PDU.MI }()
	if _, ok := a.kay.principal().gone[oldMI]; ok {
		t.Fatal("the old MI is still remembered; the test needs it forgotten")
	}
	for i, f := range captured {
		a.kay.handle(append([]byte(nil), f...))
		n.runWithTraffic(t, tick, "replay", a, b)
		if pe := a.kay.principal().peers[oldMI]; pe != nil && pe.live {
			t.Fatalf("replay %d: the old MI became a live peer", i)
		}
		if !a.kay.Secured() || !b.kay.Secured() {
			t.Fatalf("replay %d: CA lost", i)
		}
	}
	if n.violation != "" {
		t.Fatal(n.violation)
	}
}

// A new MI is potential until it lists our current MI with an MN we sent
// within the last life time.
func TestNewMIProvesLiveness(t *testing.T) {
	n := newSim(t, macsec.GCMAES128)
	cak := testCAK(t, "live", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	ick, _ := ICK(cak.Key.Bytes(), cak.CKN)
	n.run(2 * time.Second)
	p := a.kay.principal()
	if p != nil {
		t.Fatal("a principal with no peer")
	}
	pa := a.kay.parts[0]
	var mi MI
	mi[0] = 0x77
	sci := macsec.MakeSCI([]byte{2, 0, 0, 0, 0, 9}, 1)
	mn := uint32(0)
	say := func(list []PeerEntry) *peer {
		mn++
		m := &MKPDU{Version: 1, Priority: 5, MACsecDesired: true, Capability: 3, SCI: sci, MI: mi, MN: mn, CKN: cak.CKN, Live: list}
		f, err := m.Encode(DefaultDestination, []byte{2, 0, 0, 0, 0, 9}, EtherTypeEAPOL, ick)
		if err != nil {
			t.Fatal(err)
		}
		a.kay.handle(f)
		return pa.peers[mi]
	}
	if pe := say(nil); pe == nil || pe.live {
		t.Fatalf("a new MI that lists nobody: %+v", pe)
	}
	if pe := say([]PeerEntry{{MI: MI{1, 2, 3}, MN: 9}}); pe.live {
		t.Fatal("live while listing another MI")
	}
	old := pa.mn
	n.run(a.kay.o.Life + time.Second)
	if pe := say([]PeerEntry{{MI: pa.mi, MN: old - 1}}); pe.live {
		t.Fatalf("live with MN %d, older than the life time (now %d)", old-1, pa.mn)
	}
	if pe := say([]PeerEntry{{MI: pa.mi, MN: pa.mn}}); !pe.live {
		t.Fatal("not live after listing our current MI and MN")
	}
}

// A non-key-server keeps a transmit SA from the moment it transmits until
// the CA ends, whatever SAKs arrive: one that arrives while the old SA
// still transmits, and one that reuses the AN it transmits with.
func TestNonKeyServerKeepsTransmitSA(t *testing.T) {
	n := newSim(t, macsec.GCMAES256)
	cak := testCAK(t, "keep", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	n.waitSecured(t, 10*time.Second, a, b)
	ick, _ := ICK(cak.Key.Bytes(), cak.CKN)
	pb := b.kay.principal()
	// The key server's MKPDUs, rewritten on the way to carry SAKs the
	// way a key server of another make might: KN ever higher, AN chosen
	// by the test.
	distribute := func(an uint8) {
		pa := a.kay.principal()
		kn := pa.kn + 100
		pa.kn = kn
		key := make([]byte, 32)
		key[0] = an + 1
		wrapped, _ := Wrap(pa.kek, key)
		var live []PeerEntry
		for _, pe := range pa.peers {
			live = append(live, PeerEntry{MI: pe.mi, MN: pe.mn})
		}
		pa.mn++
		m := &MKPDU{Version: 1, Priority: 1, KeyServer: true, MACsecDesired: true, Capability: 3, SCI: a.sci, MI: pa.mi, MN: pa.mn,
			CKN: cak.CKN, Live: live, DistSAK: &DistSAK{AN: an, Offset: 1, KN: kn, Suite: macsec.GCMAES256, Wrapped: wrapped}}
		f, err := m.Encode(DefaultDestination, a.mac, EtherTypeEAPOL, ick)
		if err != nil {
			t.Fatal(err)
		}
		b.kay.handle(f)
		n.check()
		if n.violation != "" {
			t.Fatal(n.violation)
		}
	}
	txAN := uint8(b.secy.EncodingSA())
	// A SAK while b still transmits with the old one: b keeps it.
	distribute((txAN + 1) & 3)
	if b.kay.cp != cpReceiving || b.secy.EncodingSA() != int(txAN) {
		t.Fatalf("after a new SAK: CP %s, encoding SA %d (want receiving on AN %d)", b.kay.cp, b.secy.EncodingSA(), txAN)
	}
	// Another before the first one transmits: the untransmitted one goes,
	// the transmitting one stays.
	distribute((txAN + 2) & 3)
	if b.secy.EncodingSA() != int(txAN) || b.kay.old == nil || b.kay.old.an != txAN {
		t.Fatalf("after a second SAK: encoding SA %d, old %+v", b.secy.EncodingSA(), b.kay.old)
	}
	// One that reuses the AN b transmits with: replaced in place.
	distribute(txAN)
	if b.secy.EncodingSA() != int(txAN) || b.kay.cp != cpSecured || !b.kay.latest.txOn {
		t.Fatalf("after a SAK on the transmitting AN: encoding SA %d, CP %s", b.secy.EncodingSA(), b.kay.cp)
	}
	if pb != b.kay.principal() {
		t.Fatal("the CA changed")
	}
}

// A member that lost its SAK (its SAs were deleted) and gets the same SAK
// again from the key server resumes above every PN it already sent.
func TestReinstalledSAKResumesPN(t *testing.T) {
	n := newSim(t, macsec.GCMAESXPN128)
	cak := testCAK(t, "resume", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	n.waitSecured(t, 10*time.Second, a, b)
	for range 500 {
		if _, err := b.frame(); err != nil {
			t.Fatal(err)
		}
	}
	ki, sent := b.kay.latest.ki, b.secy.TxSA(b.kay.latest.an).NextPN()
	b.kay.deleteSAK(b.kay.latest) // lost, as after a fault
	b.kay.latest = nil
	b.kay.setCP(cpUnsecured)
	b.transmitted = false // the test took it away, not the KaY
	n.waitSecured(t, 10*time.Second, a, b)
	if b.kay.latest.ki != ki {
		t.Fatalf("the key server sent KN %d, not the same SAK again", b.kay.latest.ki.KN)
	}
	if got := b.secy.TxSA(b.kay.latest.an).NextPN(); got < sent {
		t.Fatalf("transmit PN %d after reinstalling the SAK, below %d already sent", got, sent)
	}
	n.runWithTraffic(t, time.Second, "after the SAK came back", a, b)
}
