package mka

import (
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// The primary CAK differs at one end: the link secures on the fallback
// CAK; when the primary is fixed it moves back with no frame lost, and the
// fallback is never principal while a key chain CA is live.
func TestFallbackCAK(t *testing.T) {
	n := newSim(t, macsec.GCMAESXPN256)
	fb := testCAK(t, "fallback", 32)
	good := testCAK(t, "primary", 32)
	bad := testCAK(t, "primary", 32) // same CKN, another CAK: a botched rotation
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{good}, Fallback: &fb})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{bad}, Fallback: &fb})
	n.waitSecured(t, 10*time.Second, a, b)
	for _, nd := range []*simNode{a, b} {
		pr := nd.kay.principal()
		if pr == nil || !pr.fallback {
			t.Fatalf("%s secured without the fallback CA as principal", nd.name)
		}
		st := nd.kay.Status()
		for _, ca := range st.CAs {
			if ca.Fallback != (ca.CKN == "66616c6c6261636b") || ca.Principal != ca.Fallback {
				t.Errorf("%s: CA %+v", nd.name, ca)
			}
		}
	}
	n.runWithTraffic(t, 2*time.Second, "on the fallback", a, b)
	// The operator fixes b's primary CAK on the running link.
	if err := b.kay.SetKeyChain([]CAK{good}, &fb); err != nil {
		t.Fatal(err)
	}
	for end := n.now.Add(15 * time.Second); ; {
		pa, pb := a.kay.principal(), b.kay.principal()
		if pa != nil && pb != nil && !pa.fallback && !pb.fallback && n.allSecured(a, b) {
			break
		}
		if n.now.After(end) {
			t.Fatalf("not back on the primary: a %+v", a.kay.Status())
		}
		n.runWithTraffic(t, tick, "back to the primary", a, b)
	}
	n.runWithTraffic(t, 2*time.Second, "on the primary", a, b)
	if n.violation != "" {
		t.Fatal(n.violation)
	}
}

// While the primary CA stays live at both ends, a live fallback CA is
// never principal.
func TestFallbackNeverPreferred(t *testing.T) {
	n := newSim(t, macsec.GCMAES128)
	fb, cak := testCAK(t, "fallback", 16), testCAK(t, "primary", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}, Fallback: &fb})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}, Fallback: &fb})
	for range 200 {
		n.run(tick)
		for _, nd := range []*simNode{a, b} {
			if pr := nd.kay.principal(); pr != nil && pr.fallback && nd.kay.parts[0].hasLive() {
				t.Fatalf("%s: the fallback CA is principal while the primary is live", nd.name)
			}
		}
	}
	if !n.allSecured(a, b) || a.kay.Status().Latest.CKN != "7072696d617279" {
		t.Fatalf("not secured on the primary: %+v", a.kay.Status().Latest)
	}
}

// Each cause `show mka` names, produced by a real misconfiguration of
// the two ends.
func TestDiagnosis(t *testing.T) {
	cak := testCAK(t, "ckn-a", 16)
	cases := []struct {
		name  string
		setup func(n *simNet) (a, b *simNode)
		want  string
	}{
		{"silence", func(n *simNet) (*simNode, *simNode) {
			a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
			b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
			b.down = true
			return a, b
		}, "no MKPDU heard"},
		{"other CKN", func(n *simNet) (*simNode, *simNode) {
			return n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}}),
				n.add("b", 2, Options{Priority: 2, Keys: []CAK{testCAK(t, "ckn-b", 16)}})
		}, "CKN mismatch: MKPDUs heard only with CKN 636b6e2d62"},
		{"CAK mismatch", func(n *simNet) (*simNode, *simNode) {
			return n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}}),
				n.add("b", 2, Options{Priority: 2, Keys: []CAK{testCAK(t, "ckn-a", 16)}})
		}, "CAK mismatch"},
		{"cipher suite", func(n *simNet) (*simNode, *simNode) {
			a := n.add("a", 1, Options{Priority: 2, Keys: []CAK{cak}})
			b := n.add("b", 2, Options{Priority: 1, Keys: []CAK{cak}})
			b.opts.Offset = 30 // the key server wants offset 30
			b.start()
			return a, b
		}, "cipher suite or offset mismatch with the key server: key server"},
		{"one way", func(n *simNet) (*simNode, *simNode) {
			a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
			b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
			n.mutate = func(from *simNode, f []byte) []byte {
				if from == a {
					return nil // b never hears a
				}
				return f
			}
			return a, b
		}, "does not answer our MI"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newSim(t, macsec.GCMAES128)
			a, _ := c.setup(n)
			n.run(20 * time.Second)
			st := a.kay.Status()
			if st.Secured || !strings.Contains(st.Diagnosis, c.want) {
				t.Errorf("diagnosis %q, want it to contain %q", st.Diagnosis, c.want)
			}
			t.Logf("%s: %s", c.name, st.Diagnosis)
		})
	}
}

// With eapol_destination auto, a circuit that passes only broadcast: the
// ends find it, secure, and keep it.
func TestAutoDestination(t *testing.T) {
	n := newSim(t, macsec.GCMAES128)
	cak := testCAK(t, "auto", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}, AutoDestination: true})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}, AutoDestination: true})
	n.mutate = func(_ *simNode, f []byte) []byte {
		if f[0] != 0xff {
			return nil // the provider filters every group address
		}
		return f
	}
	n.waitSecured(t, 60*time.Second, a, b)
	for _, nd := range []*simNode{a, b} {
		if got := nd.kay.Status().Destination; got != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("%s sends to %s", nd.name, got)
		}
	}
	n.run(30 * time.Second)
	if !n.allSecured(a, b) || a.kay.Status().Destination != "ff:ff:ff:ff:ff:ff" {
		t.Error("the address found was not kept")
	}
}

// Tunables change on a running KaY with the same MI and SAK.
func TestReconfigureKeepsCA(t *testing.T) {
	n := newSim(t, macsec.GCMAES128)
	cak := testCAK(t, "tune", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	n.waitSecured(t, 10*time.Second, a, b)
	mi, kn := a.kay.principal().mi, a.kay.Status().Latest.KN
	if err := a.kay.Reconfigure(Tunables{Priority: 3, RekeyInterval: time.Hour, Hello: time.Second, ICVIndicator: true,
		Destination: AutoDestinations[1]}); err != nil {
		t.Fatal(err)
	}
	if err := b.kay.Reconfigure(Tunables{Priority: 2, Destination: AutoDestinations[1], Hello: time.Second}); err != nil {
		t.Fatal(err)
	}
	n.runWithTraffic(t, 10*time.Second, "after reconfigure", a, b)
	st := a.kay.Status()
	if a.kay.principal().mi != mi || st.Latest.KN != kn || st.Hello != "1s" || st.Destination != "01:80:c2:00:00:00" {
		t.Errorf("after Reconfigure: MI changed %v, KN %d (was %d), hello %s, destination %s",
			a.kay.principal().mi != mi, st.Latest.KN, kn, st.Hello, st.Destination)
	}
	if err := a.kay.Reconfigure(Tunables{Hello: 10 * time.Second}); err == nil {
		t.Error("a 10s hello accepted")
	}
}

// Each CP state, in order, with the SAs the SecY holds in it.
func TestCPStates(t *testing.T) {
	n := newSim(t, macsec.GCMAES128)
	cak := testCAK(t, "cp", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}})
	k := a.kay
	want := func(st cpState, enc int, txSAs int) {
		t.Helper()
		if k.cp != st || k.cpFromSAs() != st {
			t.Fatalf("CP %s (SAs say %s), want %s", k.cp, k.cpFromSAs(), st)
		}
		got := 0
		for an := range uint8(4) {
			if a.secy.TxSA(an) != nil {
				got++
			}
		}
		if a.secy.EncodingSA() != enc || got != txSAs {
			t.Fatalf("CP %s: encoding SA %d and %d transmit SAs, want %d and %d", st, a.secy.EncodingSA(), got, enc, txSAs)
		}
	}
	want(cpUnsecured, -1, 0)
	b.down = true
	n.run(time.Second)
	want(cpUnsecured, -1, 0)
	// The first SAK: installed for receive, nothing transmits yet. b's
	// SAK Use is held back, so the key server waits in RECEIVING.
	ick, _ := ICK(cak.Key.Bytes(), cak.CKN)
	holdB := func(from *simNode, f []byte) []byte {
		if from != b {
			return f
		}
		fr, err := Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		fr.PDU.SAKUse = nil
		out, err := fr.PDU.Encode(fr.Dst, fr.Src, EtherTypeEAPOL, ick)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	n.mutate = holdB
	b.down = false
	for k.cp == cpUnsecured {
		n.run(tick)
	}
	want(cpReceiving, -1, 1)
	n.mutate = nil
	n.waitSecured(t, 10*time.Second, a, b)
	want(cpSecured, int(k.latest.an), 1)
	// A rekey: RECEIVING on the old SA, TRANSMITTING with both, SECURED.
	old := k.latest.an
	if err := k.Rekey("test"); err != nil {
		t.Fatal(err)
	}
	n.mutate = holdB
	n.run(tick)
	want(cpReceiving, int(old), 2)
	n.mutate = nil
	for k.cp == cpReceiving {
		n.run(tick)
	}
	want(cpTransmitting, int(k.latest.an), 2)
	for k.cp == cpTransmitting {
		n.run(tick)
	}
	want(cpSecured, int(k.latest.an), 1)
	// The CA ends: UNSECURED, no SA left.
	b.down = true
	n.run(k.o.Life + time.Second)
	want(cpUnsecured, -1, 0)
}

// A line that does not drain (Send blocks) never blocks status reads:
// MKPDUs are sent outside the KaY's lock.
func TestBlockedSendDoesNotBlockStatus(t *testing.T) {
	cak := testCAK(t, "block", 16)
	s, _ := macsec.NewSecY(macsec.Config{Suite: macsec.GCMAES128, SCI: 1, SendSCI: true})
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	k, err := New(Options{SecY: s, SCI: 1, MAC: []byte{2, 0, 0, 0, 0, 1}, Suite: macsec.GCMAES128, Keys: []CAK{cak},
		Send: func([]byte) error { <-release; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	go k.handle(nil) // sends, and blocks in Send
	time.Sleep(50 * time.Millisecond)
	done := make(chan Status)
	go func() { done <- k.Status() }()
	select {
	case st := <-done:
		if len(st.CAs) != 1 {
			t.Errorf("status %+v", st)
		}
	case <-time.After(time.Second):
		t.Fatal("Status blocked behind a blocked Send")
	}
	once.Do(func() { close(release) })
}

// A new KaY's status lists its CAs before Run has taken a step (a status
// read right after a link starts showed a diagnosis but no CA).
func TestStatusListsCAsFromTheStart(t *testing.T) {
	cak, fb := testCAK(t, "early", 16), testCAK(t, "early-fb", 16)
	s, _ := macsec.NewSecY(macsec.Config{Suite: macsec.GCMAES128, SCI: 1, SendSCI: true})
	k, err := New(Options{SecY: s, SCI: 1, MAC: []byte{2, 0, 0, 0, 0, 1}, Suite: macsec.GCMAES128, Keys: []CAK{cak}, Fallback: &fb,
		Send: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st := k.Status()
	if len(st.CAs) != 2 || st.CAs[0].CKN != hex.EncodeToString(cak.CKN) || !st.CAs[1].Fallback {
		t.Fatalf("status before Run lists CAs %+v, want the key chain's and the fallback's", st.CAs)
	}
}

// A stopped KaY's keys are cleared: CAKs, KEKs, ICKs, SAK copies.
func TestWipeClearsKeys(t *testing.T) {
	n := newSim(t, macsec.GCMAES256)
	cak, fb := testCAK(t, "wipe", 32), testCAK(t, "wipe-fb", 16)
	a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}, Fallback: &fb})
	b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}, Fallback: &fb})
	n.waitSecured(t, 10*time.Second, a, b)
	k := a.kay
	parts, sak := k.parts, k.latest.key
	a.kay.Wipe()
	zero := func(b []byte) bool {
		for _, x := range b {
			if x != 0 {
				return false
			}
		}
		return len(b) > 0
	}
	for _, p := range parts {
		if !zero(p.ick) || !zero(p.kek) || !zero(p.key.Key.Bytes()) {
			t.Errorf("participant %s keeps key material after Wipe", p.name)
		}
	}
	if !zero(sak.Bytes()) || !zero(cak.Key.Bytes()) || !zero(fb.Key.Bytes()) {
		t.Error("a SAK or CAK survives Wipe")
	}
}
