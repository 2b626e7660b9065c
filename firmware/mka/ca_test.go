package mka

import (
	"fmt"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// ssciCheck follows every MKPDU that distributes an XPN SAK and checks
// that each member then transmits with the SSCI the key server's Live
// Peer List gives it.
type ssciCheck struct {
	byKN map[uint32]map[MI]uint32 // KN -> member MI -> SSCI, from the key server's MKPDU
}

func (c *ssciCheck) tap(from *simNode, f []byte) {
	fr, err := Decode(f)
	if err != nil || fr.PDU.DistSAK == nil || fr.PDU.DistSAK.Wrapped == nil {
		return
	}
	m := fr.PDU
	got := map[MI]uint32{m.MI: uint32(m.KeyServerSSCI)}
	next := uint32(1)
	for _, e := range m.Live {
		if next == uint32(m.KeyServerSSCI) {
			next++
		}
		got[e.MI] = next
		next++
	}
	c.byKN[m.DistSAK.KN] = got
}

// verify checks each node against the encoding of the SAK it transmits with.
func (c *ssciCheck) verify(t *testing.T, nodes ...*simNode) {
	t.Helper()
	for _, nd := range nodes {
		st := nd.kay.Status()
		pr := nd.kay.principal()
		want, ok := c.byKN[st.Latest.KN][pr.mi]
		if !ok {
			t.Fatalf("%s: KN %d was never distributed with its MI", nd.name, st.Latest.KN)
		}
		if st.Latest.SSCI != want {
			t.Errorf("%s transmits KN %d with SSCI %d; the key server's Live Peer List gives it %d", nd.name, st.Latest.KN, st.Latest.SSCI, want)
		}
	}
}

// A CA of three with XPN-256: members join and leave and the key server
// rekeys, while frames flow among the members that stay. Every member's
// SSCI is the one the key server's MKPDU gives it, no two transmitters
// ever share an SSCI under one SAK, and no frame among staying members is
// lost.
func TestThreeMemberCAXPN(t *testing.T) {
	n := newSim(t, macsec.GCMAESXPN256)
	cak := testCAK(t, "three", 32)
	c := &ssciCheck{byKN: map[uint32]map[MI]uint32{}}
	n.tap = c.tap
	ks := n.add("ks", 0x30, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 0x10, Options{Priority: 2, Keys: []CAK{cak}})
	cc := n.add("c", 0x50, Options{Priority: 3, Keys: []CAK{cak}})
	cc.down = true

	n.waitSecured(t, 10*time.Second, ks, b)
	c.verify(t, ks, b)
	n.runWithTraffic(t, 2*time.Second, "two members", ks, b)

	// C joins: the key server distributes a new SAK to three members;
	// ks and b keep exchanging frames all along.
	cc.down = false
	for end := n.now.Add(10 * time.Second); !n.allSecured(ks, b, cc); {
		if n.now.After(end) {
			t.Fatal("the CA of three did not secure")
		}
		n.runWithTraffic(t, tick, "c joins", ks, b)
	}
	c.verify(t, ks, b, cc)
	n.runWithTraffic(t, 2*time.Second, "three members", ks, b, cc)

	for i := range 4 {
		kn := ks.kay.Status().Latest.KN
		if err := ks.kay.Rekey("test"); err != nil {
			t.Fatal(err)
		}
		for end := n.now.Add(10 * time.Second); !(n.allSecured(ks, b, cc) && ks.kay.Status().Latest.KN > kn); {
			if n.now.After(end) {
				t.Fatalf("rekey %d did not finish", i)
			}
			n.runWithTraffic(t, tick, fmt.Sprint("rekey ", i), ks, b, cc)
		}
		c.verify(t, ks, b, cc)
	}

	// B leaves: the other two go on without losing a frame.
	b.down = true
	kn := ks.kay.Status().Latest.KN
	for end := n.now.Add(15 * time.Second); !(n.allSecured(ks, cc) && ks.kay.Status().Latest.KN > kn); {
		if n.now.After(end) {
			t.Fatal("no new SAK after b left")
		}
		n.runWithTraffic(t, tick, "b leaves", ks, cc)
	}
	c.verify(t, ks, cc)
	// B comes back as a new member (restarted: new MI, same SCI).
	b.start()
	b.down = false
	for end := n.now.Add(10 * time.Second); !n.allSecured(ks, b, cc); {
		if n.now.After(end) {
			t.Fatal("b did not rejoin")
		}
		n.runWithTraffic(t, tick, "b rejoins", ks, cc)
	}
	c.verify(t, ks, b, cc)
	n.runWithTraffic(t, 2*time.Second, "three again", ks, b, cc)
	if n.violation != "" {
		t.Fatal(n.violation)
	}
}

// A member that restarts while the key server is still distributing a
// SAK is never handed that SAK again: under its old MI it may have
// transmitted with it, and a second transmitter with the same SSCI (or
// SCI) would repeat GCM nonces. Both suite families.
func TestRestartedMemberGetsAFreshSAK(t *testing.T) {
	for _, suite := range []macsec.CipherSuite{macsec.GCMAES128, macsec.GCMAESXPN256} {
		t.Run(suite.String(), func(t *testing.T) {
			n := newSim(t, suite)
			// The key server hands each SAK to one set of members only.
			members := map[uint32]string{}
			n.tap = func(_ *simNode, f []byte) {
				fr, err := Decode(f)
				if err != nil || fr.PDU.DistSAK == nil {
					return
				}
				var mis []MI
				for _, e := range fr.PDU.Live {
					mis = append(mis, e.MI)
				}
				list := fmt.Sprint(mis)
				if prev, ok := members[fr.PDU.DistSAK.KN]; ok && prev != list {
					n.fail("KN %d distributed to %s, then to %s", fr.PDU.DistSAK.KN, prev, list)
				}
				members[fr.PDU.DistSAK.KN] = list
			}
			cak := testCAK(t, "restart", 16)
			ks := n.add("ks", 0x30, Options{Priority: 1, Keys: []CAK{cak}})
			b := n.add("b", 0x10, Options{Priority: 2, Keys: []CAK{cak}})
			cc := n.add("c", 0x50, Options{Priority: 3, Keys: []CAK{cak}})
			n.waitSecured(t, 10*time.Second, ks, b, cc)
			for i := range 6 {
				// Rekey, let b install and transmit with the new SAK
				// while c has not acknowledged it yet, then restart b.
				cc.down = true
				if err := ks.kay.Rekey("test"); err != nil {
					t.Fatal(err)
				}
				n.run(time.Duration(i+1) * tick)
				if _, err := b.frame(); err != nil {
					t.Logf("b not transmitting yet: %v", err)
				}
				b.start()
				cc.down = false
				n.waitSecured(t, 20*time.Second, ks, b, cc)
			}
			if n.violation != "" {
				t.Fatal(n.violation)
			}
		})
	}
}

// The transmit SA starts above the lowest acceptable PN the members
// report for the SAK, and receive SAs start at what each member reported.
func TestLowestAcceptablePNHonoured(t *testing.T) {
	n := newSim(t, macsec.GCMAESXPN256)
	cak := testCAK(t, "lpn", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	n.waitSecured(t, 10*time.Second, a, b)
	for range 5000 {
		if _, err := a.frame(); err != nil {
			t.Fatal(err)
		}
	}
	n.run(5 * time.Second) // b hears a's SAK Use with a lowest PN near 5000
	bs := b.kay
	var aLPN uint64
	for _, pe := range bs.principal().peers {
		aLPN = peerLPN(pe, bs.latest.ki)
	}
	if aLPN < 4000 {
		t.Fatalf("a reports lowest acceptable PN %d after 5000 frames", aLPN)
	}
	// b loses its receive SA for a and installs it again (a peer that
	// reappears): it starts at a's reported PN, so replayed old frames of
	// a are late.
	delete(bs.latest.rx, a.sci)
	bs.o.SecY.DeleteRxSA(a.sci, bs.latest.an)
	n.run(tick)
	if got := bs.o.SecY.RxNextPN(a.sci, bs.latest.an); got != aLPN {
		t.Errorf("receive SA for a reinstalled at PN %d, want a's reported %d", got, aLPN)
	}
}
