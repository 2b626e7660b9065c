package mka

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// end is one side of an in-memory CA: a KaY driving a real codec SecY.
type end struct {
	kay  *KaY
	secy *macsec.SecY
	mac  net.HardwareAddr
	// cut drops everything this end sends.
	cut atomic.Bool
	// tamper, when set, rewrites what this end sends.
	tamper atomic.Pointer[func([]byte) []byte]
}

type pairOpts struct {
	suite         macsec.CipherSuite
	prioA, prioB  uint8
	keysA, keysB  []CAK
	rekeyInterval time.Duration
	pnThreshold   uint64
	life, hello   time.Duration
	now           func() time.Time
	// seam, when set, wraps an end's SecY before its KaY gets it.
	seam func(*macsec.SecY) macsec.Seam
}

func testCAK(t *testing.T, ckn string, n int) CAK {
	k := make([]byte, n)
	rand.Read(k)
	return CAK{CKN: []byte(ckn), Key: macsec.NewKey(k)}
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newPair starts two KaYs wired to each other.
func newPair(t *testing.T, o pairOpts) (a, b *end) {
	t.Helper()
	if o.suite == 0 {
		o.suite = macsec.GCMAES128
	}
	a = &end{mac: net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}}
	b = &end{mac: net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, e := range []struct {
		me, peer *end
		prio     uint8
		keys     []CAK
	}{{a, b, o.prioA, o.keysA}, {b, a, o.prioB, o.keysB}} {
		sci := macsec.MakeSCI(e.me.mac, 1)
		s, err := macsec.NewSecY(macsec.Config{Suite: o.suite, SCI: sci, SendSCI: true, ReplayWindow: 0})
		if err != nil {
			t.Fatal(err)
		}
		e.me.secy = s
		var seam macsec.Seam = s
		if o.seam != nil {
			seam = o.seam(s)
		}
		me, peer := e.me, e.peer
		k, err := New(Options{
			SecY: seam, SCI: sci, MAC: me.mac, Suite: o.suite, Priority: e.prio, Keys: e.keys,
			RekeyInterval: o.rekeyInterval, PNThreshold: o.pnThreshold, Life: o.life, Hello: o.hello, Now: o.now,
			Log: logger(t).With("end", me.mac.String()),
			Send: func(f []byte) error {
				if me.cut.Load() {
					return nil
				}
				if tp := me.tamper.Load(); tp != nil {
					f = (*tp)(append([]byte(nil), f...))
				}
				peer.kay.Receive(append([]byte(nil), f...))
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		me.kay = k
	}
	for _, e := range []*end{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); e.kay.Run(ctx) }()
	}
	return a, b
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exchange protects a numbered frame on one SecY and validates it on the
// other, the way the datapath does, and reports whether it arrived intact.
func exchange(from, to *end, seq uint32) error {
	frame := make([]byte, 100)
	copy(frame, to.mac)
	copy(frame[6:], from.mac)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	binary.BigEndian.PutUint32(frame[20:], seq)
	p, err := from.secy.Protect(nil, frame)
	if err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	pt, err := to.secy.Validate(nil, p)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	if !bytes.Equal(pt, frame) {
		return fmt.Errorf("frame %d changed", seq)
	}
	return nil
}

func TestCASecuresEverySuite(t *testing.T) {
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			cak := testCAK(t, "secwire-ca", 32)
			start := time.Now()
			a, b := newPair(t, pairOpts{suite: suite, prioA: 16, prioB: 32, keysA: []CAK{cak}, keysB: []CAK{cak}})
			waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
			t.Logf("%s secured in %s", suite, time.Since(start).Round(time.Millisecond))
			for i := range uint32(10) {
				if err := exchange(a, b, i); err != nil {
					t.Fatal(err)
				}
				if err := exchange(b, a, i); err != nil {
					t.Fatal(err)
				}
			}
			st := a.kay.Status()
			if len(st.CAs) != 1 || st.CAs[0].KeyServer != "this end" || len(st.CAs[0].Live) != 1 || !st.CAs[0].Secured {
				t.Errorf("key server's status %+v", st.CAs)
			}
			if st.Latest == nil || st.Latest.KN != 1 || !st.Latest.Transmit {
				t.Errorf("latest key %+v", st.Latest)
			}
			if got := b.kay.Status().CAs[0].KeyServer; got != macsec.MakeSCI(a.mac, 1).String() {
				t.Errorf("B sees key server %q", got)
			}
			if suite.XPN() && st.CAs[0].Live[0].SSCI != 1 {
				t.Errorf("peer SSCI %d, want 1 (the greater SCI gets 1)", st.CAs[0].Live[0].SSCI)
			}
		})
	}
}

// Equal priorities: the lower SCI serves keys.
func TestKeyServerElectionBySCI(t *testing.T) {
	cak := testCAK(t, "ca", 16)
	a, b := newPair(t, pairOpts{prioA: 10, prioB: 10, keysA: []CAK{cak}, keysB: []CAK{cak}})
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	if a.kay.Status().CAs[0].KeyServer != "this end" {
		t.Errorf("A (lower SCI) is not the key server: %+v", a.kay.Status().CAs[0])
	}
	if err := b.kay.Rekey("test"); err != ErrNotKeyServer {
		t.Errorf("rekey on the non-key-server: %v", err)
	}
}

// Twenty rekeys while frames flow both ways: none may be lost.
func TestRekeysLoseNoFrames(t *testing.T) {
	for _, suite := range []macsec.CipherSuite{macsec.GCMAESXPN256} { // the daemon test covers the others
		t.Run(suite.String(), func(t *testing.T) {
			cak := testCAK(t, "ca", 16)
			a, b := newPair(t, pairOpts{suite: suite, prioA: 1, prioB: 2, keysA: []CAK{cak}, keysB: []CAK{cak}})
			waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
			stop := make(chan struct{})
			var sent atomic.Uint32
			errc := make(chan error, 1)
			go func() {
				defer close(errc)
				for seq := uint32(0); ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					for _, d := range [][2]*end{{a, b}, {b, a}} {
						if err := exchange(d[0], d[1], seq); err != nil {
							errc <- fmt.Errorf("frame %d %s->%s: %w", seq, d[0].mac, d[1].mac, err)
							return
						}
					}
					sent.Add(1)
					time.Sleep(100 * time.Microsecond)
				}
			}()
			for i := 1; i <= 20; i++ {
				waitFor(t, "previous rekey finished", 10*time.Second, func() bool {
					st := a.kay.Status()
					return st.Old == nil && st.Latest != nil && st.Latest.Transmit && b.kay.Secured()
				})
				if err := a.kay.Rekey("test"); err != nil {
					t.Fatal(err)
				}
				waitFor(t, fmt.Sprintf("rekey %d", i), 10*time.Second, func() bool {
					la, lb := a.kay.Status().Latest, b.kay.Status().Latest
					return la != nil && lb != nil && la.KN == uint32(i+1) && lb.KN == la.KN && la.Transmit && lb.Transmit
				})
			}
			close(stop)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if sent.Load() < 100 {
				t.Errorf("only %d frames each way", sent.Load())
			}
			t.Logf("%d frames each way across 20 rekeys, none lost", sent.Load())
			if got := b.kay.Status().Latest.AN; got != 20%4 { // KN 1 had AN 0
				t.Errorf("AN %d after 20 rekeys, want %d", got, 20%4)
			}
		})
	}
}

func TestCAKMismatchNeverSecures(t *testing.T) {
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{testCAK(t, "same-ckn", 16)}, keysB: []CAK{testCAK(t, "same-ckn", 16)}})
	waitFor(t, "bad ICVs counted", 10*time.Second, func() bool { return drops(a, ReasonBadICV) > 0 && drops(b, ReasonBadICV) > 0 })
	time.Sleep(300 * time.Millisecond)
	if a.kay.Secured() || b.kay.Secured() || a.secy.EncodingSA() != -1 || len(b.secy.RxSCs()) != 0 {
		t.Error("a CA formed with different CAKs")
	}
	if err := exchange(a, b, 1); err == nil {
		t.Error("frames cross")
	}
}

func TestUnknownCKNIsCounted(t *testing.T) {
	a, _ := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{testCAK(t, "one", 16)}, keysB: []CAK{testCAK(t, "two", 16)}})
	waitFor(t, "unknown CKN counted", 10*time.Second, func() bool { return drops(a, ReasonUnknownCKN) > 0 })
	if a.kay.Secured() {
		t.Error("secured without a common CKN")
	}
}

func drops(e *end, r Reason) uint64 {
	for _, d := range e.kay.Status().Drops {
		if d.Reason == string(r) {
			return d.Count
		}
	}
	return 0
}

// Replayed, stale and colliding MKPDUs are dropped and counted, and
// the CA survives them.
func TestHostileMKPDUs(t *testing.T) {
	cak := testCAK(t, "ca", 16)
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{cak}, keysB: []CAK{cak}})
	var mu sync.Mutex
	var last []byte
	capture := func(f []byte) []byte { mu.Lock(); last = append([]byte(nil), f...); mu.Unlock(); return f }
	b.tamper.Store(&capture)
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	mu.Lock()
	replay := last
	mu.Unlock()
	a.kay.Receive(replay) // an MKPDU seen already: its MN is not new
	waitFor(t, "stale MN counted", 5*time.Second, func() bool { return drops(a, ReasonStaleMN) > 0 })

	// A forged MKPDU with our MI (valid ICV: the forger has the CAK).
	f, err := Decode(replay)
	if err != nil {
		t.Fatal(err)
	}
	ick, _ := ICK(cak.Key.Bytes(), cak.CKN)
	forged := *f.PDU
	forged.MI, _ = miOf(a.kay)
	forged.MN = 1 << 30
	forged.DistSAK = nil
	frame, _ := forged.Encode(DefaultDestination, b.mac, EtherTypeEAPOL, ick)
	a.kay.Receive(frame)
	waitFor(t, "own MI counted", 5*time.Second, func() bool { return drops(a, ReasonOwnMI) > 0 })

	// Garbage of every kind.
	a.kay.Receive([]byte{1, 2, 3})
	bad := append([]byte(nil), replay...)
	bad[len(bad)-1] ^= 1
	a.kay.Receive(bad)
	waitFor(t, "bad ICV and truncated counted", 5*time.Second, func() bool {
		return drops(a, ReasonTruncated) > 0 && drops(a, ReasonBadICV) > 0
	})
	// A new MI after the collision: the CA re-forms and secures again.
	waitFor(t, "CA secured again", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	if err := exchange(a, b, 7); err != nil {
		t.Error(err)
	}
}

func miOf(k *KaY) (MI, uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.parts[0].mi, k.parts[0].mn
}

// A peer that goes silent is dropped after the life time, and with it
// the SAs: nothing is left that would pass traffic.
func TestPeerLossDeletesSAs(t *testing.T) {
	cak := testCAK(t, "ca", 16)
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{cak}, keysB: []CAK{cak}, life: 1500 * time.Millisecond, hello: 500 * time.Millisecond})
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	b.cut.Store(true)
	waitFor(t, "peer timed out", 5*time.Second, func() bool { return !a.kay.Secured() })
	if a.secy.EncodingSA() != -1 || len(a.secy.RxSCs()) != 0 {
		t.Errorf("SAs left after the CA was lost: encoding %d, %d receive SCs", a.secy.EncodingSA(), len(a.secy.RxSCs()))
	}
	b.cut.Store(false)
	waitFor(t, "CA secured again", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
}

// The key server distributes a new SAK when a PN passes the threshold.
func TestPNThresholdRekeys(t *testing.T) {
	cak := testCAK(t, "ca", 16)
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{cak}, keysB: []CAK{cak}, pnThreshold: 50})
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	for i := range uint32(60) {
		if err := exchange(b, a, i); err != nil { // the peer's PN, seen by the key server
			t.Fatal(err)
		}
	}
	waitFor(t, "rekey at the PN threshold", 10*time.Second, func() bool {
		l := a.kay.Status().Latest
		return l != nil && l.KN == 2 && l.Transmit
	})
}

func TestRekeyInterval(t *testing.T) {
	cak := testCAK(t, "ca", 16)
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: []CAK{cak}, keysB: []CAK{cak}, rekeyInterval: 1500 * time.Millisecond})
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	waitFor(t, "two interval rekeys", 10*time.Second, func() bool {
		l := b.kay.Status().Latest
		return l != nil && l.KN >= 3
	})
}

// A key chain of two CAKs whose validity overlaps: the CA moves to the
// second CAK while frames flow, and none are lost.
func TestKeyChainRollover(t *testing.T) {
	now := time.Now()
	first, second := testCAK(t, "first", 16), testCAK(t, "second", 32)
	first.End = now.Add(6 * time.Second)
	second.Start = now.Add(2 * time.Second)
	chain := []CAK{first, second}
	a, b := newPair(t, pairOpts{prioA: 1, prioB: 2, keysA: chain, keysB: chain})
	waitFor(t, "CA secured", 2*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })
	if ckn := a.kay.Status().Latest.CKN; ckn != fmt.Sprintf("%x", "first") {
		t.Fatalf("first SAK from CKN %s", ckn)
	}
	seq := uint32(0)
	deadline := now.Add(9 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range [][2]*end{{a, b}, {b, a}} {
			if err := exchange(d[0], d[1], seq); err != nil {
				t.Fatalf("frame %d: %v (A: %+v)", seq, err, a.kay.Status())
			}
		}
		seq++
		time.Sleep(200 * time.Microsecond)
	}
	st := a.kay.Status()
	if len(st.CAs) != 1 || st.CAs[0].CKN != fmt.Sprintf("%x", "second") || st.Latest.CKN != st.CAs[0].CKN {
		t.Errorf("after the rollover: CAs %+v latest %+v", st.CAs, st.Latest)
	}
	t.Logf("%d frames each way across the CAK rollover, none lost", seq)
}

// slowSeam is a SecY whose transmit PN read can be held up, the way a
// netlink round trip to a busy kernel is.
type slowSeam struct {
	*macsec.SecY
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *slowSeam) TxNextPN(an uint8) uint64 {
	if s.hold.CompareAndSwap(true, false) {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.SecY.TxNextPN(an)
}

// TestStatusDoesNotHoldTheKaY: a status read waiting on a slow SecY must
// not stop the protocol. The KaY once held its lock across the SecY's PN
// reads, so `show mka` against a busy kernel held up MKPDU handling.
func TestStatusDoesNotHoldTheKaY(t *testing.T) {
	slow := &slowSeam{entered: make(chan struct{}), release: make(chan struct{})}
	var wrapped atomic.Bool
	cak := testCAK(t, "secwire-ca", 16)
	a, b := newPair(t, pairOpts{keysA: []CAK{cak}, keysB: []CAK{cak}, seam: func(s *macsec.SecY) macsec.Seam {
		if wrapped.CompareAndSwap(false, true) {
			slow.SecY = s
			return slow
		}
		return s
	}})
	waitFor(t, "CA secured", 10*time.Second, func() bool { return a.kay.Secured() && b.kay.Secured() })

	slow.hold.Store(true)
	statusDone := make(chan Status)
	go func() { statusDone <- a.kay.Status() }()
	<-slow.entered // the status read is now inside the SecY

	lock := make(chan bool)
	go func() { lock <- a.kay.Secured() }()
	select {
	case secured := <-lock:
		if !secured {
			t.Error("Secured() = false while the CA is secured")
		}
	case <-time.After(10 * time.Second):
		t.Error("the KaY stayed locked while a status read waited on the SecY")
	}
	close(slow.release)
	st := <-statusDone
	if st.Latest == nil || st.Latest.NextPN == 0 {
		t.Errorf("status after the slow read: latest key %+v, want a transmit PN", st.Latest)
	}
	if !st.Secured {
		t.Error("status: not secured")
	}
}
