package software

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// wire is one namespace with h1 —[hp|ap]— A —[al|bl]— B —[bp|hq]— h2 as
// veth pairs, two engines A and B, and raw access to hp, hq and the line.
type wire struct {
	ns     *netns.NS
	a, b   *Engine
	sa, sb *macsec.SecY
	eapol  chan []byte
}

var wireSeq atomic.Int32 // tests running in parallel get their own namespace

var macA = net.HardwareAddr{2, 0, 0, 0, 0xa, 1}
var macB = net.HardwareAddr{2, 0, 0, 0, 0xb, 1}

func newWire(t *testing.T, suite macsec.CipherSuite, tags int, shouldSecure, keys bool, window uint32) *wire {
	t.Helper()
	return newWireWith(t, suite, tags, shouldSecure, keys, window, nil)
}

// newWireWith is newWire with a hook that adjusts each engine's options
// (side "a" or "b") before it starts.
func newWireWith(t *testing.T, suite macsec.CipherSuite, tags int, shouldSecure, keys bool, window uint32, mod func(side string, o *Options)) *wire {
	t.Helper()
	// Jumbo frames: 9000 on the plaintext side, room for the SecTAG,
	// ICV and a tag in clear on the line. (AF_XDP takes no jumbo frames:
	// these engines run on AF_PACKET.)
	return newWireMTU(t, 9000, 9100, suite, tags, shouldSecure, keys, window, mod)
}

// newWireMTU is newWireWith with the ports' MTUs.
func newWireMTU(t *testing.T, plainMTU, lineMTU int, suite macsec.CipherSuite, tags int, shouldSecure, keys bool, window uint32, mod func(side string, o *Options)) *wire {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (make test runs as root in CI)")
	}
	ns, err := netns.Add(fmt.Sprintf("swsw%d-%d", os.Getpid(), wireSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	for _, p := range [][2]string{{"hp", "ap"}, {"al", "bl"}, {"bp", "hq"}} {
		if err := netns.Veth(ns, p[0], ns, p[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []string{"hp", "ap", "bp", "hq"} {
		ns.IP("link", "set", "dev", i, "mtu", fmt.Sprint(plainMTU))
	}
	for _, i := range []string{"al", "bl"} {
		ns.IP("link", "set", "dev", i, "mtu", fmt.Sprint(lineMTU))
	}
	w := &wire{ns: ns, eapol: make(chan []byte, 16)}
	key := bytes.Repeat([]byte{0x42}, suite.KeyLen())
	var salt [12]byte
	mk := func(mac, peer net.HardwareAddr, ssci, peerSSCI uint32) *macsec.SecY {
		s, err := macsec.NewSecY(macsec.Config{Suite: suite, SCI: macsec.MakeSCI(mac, 1), SendSCI: true, Validate: macsec.ValidateStrict, ReplayWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		if keys {
			if err := s.InstallTxSA(macsec.SAParams{AN: 1, Key: macsec.NewKey(key), PN: 1, SSCI: ssci, Salt: salt}); err != nil {
				t.Fatal(err)
			}
			s.SetEncodingSA(1)
			s.AddRxSC(macsec.MakeSCI(peer, 1))
			if err := s.InstallRxSA(macsec.MakeSCI(peer, 1), macsec.SAParams{AN: 1, Key: macsec.NewKey(key), PN: 1, SSCI: peerSSCI, Salt: salt}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	w.sa, w.sb = mk(macA, macB, 1, 2), mk(macB, macA, 2, 1)
	start := func(side, plain, line string, s *macsec.SecY) *Engine {
		o := Options{
			Plain: plain, Line: line, SecY: s, VLANsInClear: tags, ShouldSecure: shouldSecure,
			EAPOLTypes: []uint16{0x888e}, OnEAPOL: func(f []byte) {
				select { // OnEAPOL must not block the datapath
				case w.eapol <- f:
				default:
				}
			}, Workers: 2,
			Open: ns.Do,
		}
		if mod != nil {
			mod(side, &o)
		}
		e, err := Start(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Stop)
		return e
	}
	w.a, w.b = start("a", "ap", "al", w.sa), start("b", "bp", "bl", w.sb)
	return w
}

type port struct {
	rx *afpacket.Rx
	tx *afpacket.Tx
}

func (w *wire) port(t *testing.T, name string) *port {
	t.Helper()
	p := &port{}
	err := w.ns.Do(func() (err error) {
		if p.rx, err = afpacket.OpenRx(name, afpacket.RxOptions{Promiscuous: true}); err != nil {
			return err
		}
		p.tx, err = afpacket.OpenTx(name, afpacket.TxOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.rx.Close(); p.tx.Close() })
	return p
}

func (p *port) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if err := p.tx.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	p.tx.Flush()
}

// collect gathers frames with EtherType et (after up to two tags; 0: all)
// until n arrived or d passed.
func (p *port) collect(n int, d time.Duration, keep func([]byte) bool) [][]byte {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got [][]byte
	for len(got) < n {
		if _, _, err := p.rx.Receive(ctx, func(f []byte) {
			if keep(f) {
				got = append(got, append([]byte(nil), f...))
			}
		}); err != nil {
			break
		}
	}
	return got
}

func testFrame(i, size int, vlans ...uint16) []byte {
	f := []byte{2, 0, 0, 0, 0x22, 2, 2, 0, 0, 0, 0x11, 1}
	for _, v := range vlans {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, v)
	}
	f = binary.BigEndian.AppendUint16(f, 0x88b5)
	f = append(f, []byte("MARKER-secwire-plaintext")...)
	f = binary.BigEndian.AppendUint32(f, uint32(i))
	for len(f) < size {
		f = append(f, byte(len(f)))
	}
	return f
}

func isTest(f []byte) bool { return bytes.Contains(f, []byte("MARKER-secwire")) }

func TestForwardsProtectedBothWays(t *testing.T) {
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			// Two workers per direction: PN order on the wire is not
			// frame order across flows (up to ~80 PNs late in a burst).
			w := newWire(t, suite, 0, false, true, 1024)
			if w.a.Rings() != "af_packet" {
				t.Fatalf("with jumbo frames the engine runs on %s, want the fallback to af_packet", w.a.Rings())
			}
			h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl")
			var frames [][]byte
			for i := range 200 {
				frames = append(frames, testFrame(i, 60+(i*53)%1440))
			}
			frames = append(frames, testFrame(999, 1400, 100), testFrame(1000, 1400, 100, 200), testFrame(1001, 9014))
			// LLDP to the nearest-bridge group address crosses like any frame.
			lldp := append([]byte{0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0x11, 1, 0x88, 0xcc}, []byte("MARKER-secwire-lldp")...)
			frames = append(frames, lldp)
			var lineSeen [][]byte
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				lineSeen = line.collect(1<<30, 3*time.Second, func([]byte) bool { return true })
			}()
			time.Sleep(100 * time.Millisecond)
			h1.send(t, frames...)
			got := h2.collect(len(frames), 5*time.Second, isTest)
			if len(got) != len(frames) {
				sc := w.sb.RxSC(macsec.MakeSCI(macA, 1))
				t.Fatalf("h2 got %d of %d frames; A %s; B %s; B late %d notValid %d badTag %d; B ring drops %d",
					len(got), len(frames), statsOf(w.a), statsOf(w.b), sc.Stats.InPktsLate.Load(), sc.SA(1).Stats.InPktsNotValid.Load(),
					w.sb.Stats.InPktsBadTag.Load(), w.b.rxLine.Drops())
			}
			checkFlowOrder(t, frames, got)
			// And back.
			h2.send(t, frames[:10]...)
			if back := h1.collect(10, 5*time.Second, isTest); len(back) != 10 {
				t.Fatalf("h1 got %d of 10 frames back", len(back))
			}
			wg.Wait()
			if len(lineSeen) != len(frames) { // B's replies leave bl: not input there
				t.Fatalf("line capture saw %d frames, want %d", len(lineSeen), len(frames))
			}
			for _, f := range lineSeen {
				if binary.BigEndian.Uint16(f[12:]) != macsec.EtherType || isTest(f) {
					t.Fatalf("frame on the line is not MACsec or shows the plaintext marker: %x", f[:min(len(f), 60)])
				}
			}
		})
	}
}

// checkFlowOrder checks that got holds exactly the sent frames and that
// frames of one flow (same addresses, tags and EtherType) kept their order:
// workers take flows by hash, so different flows may interleave.
func checkFlowOrder(t *testing.T, sent, got [][]byte) {
	t.Helper()
	flow := func(f []byte) string {
		n := 14 + 4*vlanTags(f, 2)
		return string(f[:n])
	}
	want := map[string][][]byte{}
	for _, f := range sent {
		want[flow(f)] = append(want[flow(f)], f)
	}
	for i, f := range got {
		q := want[flow(f)]
		if len(q) == 0 || !bytes.Equal(q[0], f) {
			t.Fatalf("received frame %d is unexpected or out of its flow's order: %x", i, f[:min(len(f), 40)])
		}
		want[flow(f)] = q[1:]
	}
}

func statsOf(e *Engine) string {
	s := &e.Stats
	return fmt.Sprintf("plainIn=%d lineOut=%d lineIn=%d plainOut=%d noSA=%d dropped=%d txErr=%d",
		s.PlainIn.Load(), s.LineOut.Load(), s.LineIn.Load(), s.PlainOut.Load(), s.DroppedNoSA.Load(), s.Dropped.Load(), s.TxErrors.Load())
}

func TestMustSecureWithoutSAsForwardsNothing(t *testing.T) {
	w := newWire(t, macsec.GCMAES128, 0, false, false, 64)
	h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "al")
	for i := range 50 {
		h1.send(t, testFrame(i, 200))
	}
	// A plaintext frame injected on the line must not reach the customer either.
	line.send(t, testFrame(77, 200))
	if got := h2.collect(1, time.Second, isTest); len(got) != 0 {
		t.Fatalf("%d frames crossed without SAs", len(got))
	}
	if n := w.a.Stats.DroppedNoSA.Load(); n != 50 {
		t.Errorf("A DroppedNoSA = %d, want 50", n)
	}
	if n := w.a.Stats.LineOut.Load(); n != 0 {
		t.Errorf("A sent %d frames on the line", n)
	}
	if n := w.sb.Stats.InPktsNoTag.Load(); n < 1 {
		t.Errorf("B InPktsNoTag = %d, want the injected clear frame counted", n)
	}
}

func TestShouldSecureCrossesInClearWithoutSAs(t *testing.T) {
	w := newWire(t, macsec.GCMAES128, 0, true, false, 64)
	h1, h2 := w.port(t, "hp"), w.port(t, "hq")
	h1.send(t, testFrame(1, 200))
	if got := h2.collect(1, 3*time.Second, isTest); len(got) != 1 {
		t.Fatalf("should-secure without SAs: %d frames crossed, want 1", len(got))
	}
	if n := w.a.Stats.ClearForwarded.Load(); n != 1 {
		t.Errorf("A ClearForwarded = %d, want 1", n)
	}
}

func TestVLANTagsInClear(t *testing.T) {
	w := newWire(t, macsec.GCMAESXPN256, 1, false, true, 64)
	h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl")
	var seen [][]byte
	done := make(chan struct{})
	go func() {
		seen = line.collect(1, 3*time.Second, func(f []byte) bool { return binary.BigEndian.Uint16(f[12:]) == 0x8100 })
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	tagged := testFrame(5, 300, 300)
	h1.send(t, tagged, testFrame(6, 300)) // the untagged one cannot take its tag into the circuit
	got := h2.collect(2, 3*time.Second, isTest)
	<-done
	if len(got) != 1 || !bytes.Equal(got[0], tagged) {
		t.Fatalf("h2 got %d frames, want exactly the tagged one intact", len(got))
	}
	if len(seen) == 0 {
		t.Fatal("no tagged frame on the line")
	}
	f := seen[0]
	if binary.BigEndian.Uint16(f[14:]) != 300 || binary.BigEndian.Uint16(f[16:]) != macsec.EtherType {
		t.Fatalf("line frame is not tag 300 then SecTAG: %x", f[:24])
	}
	if n := w.a.Stats.BadVLANInClear.Load(); n != 1 {
		t.Errorf("A BadVLANInClear = %d, want 1", n)
	}
}

func TestEAPOLOnLineGoesToKeyAgreement(t *testing.T) {
	w := newWire(t, macsec.GCMAES128, 0, false, true, 64)
	h2, lineB := w.port(t, "hq"), w.port(t, "al")
	eapol := []byte{0x01, 0x80, 0xc2, 0, 0, 3, 2, 0, 0, 0, 0xa, 1, 0x88, 0x8e, 3, 5, 0, 4, 'M', 'K', 'P', 'D', 'U'}
	lineB.send(t, eapol)
	select {
	case f := <-w.eapol:
		if !bytes.Equal(f, eapol) {
			t.Fatalf("key agreement got %x", f)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("EAPOL frame did not reach key agreement")
	}
	if got := h2.collect(1, 500*time.Millisecond, func(f []byte) bool { return bytes.Contains(f, []byte("MKPDU")) }); len(got) != 0 {
		t.Fatal("EAPOL from the line was forwarded to the plaintext port")
	}
	// SendEAPOL puts MKA's frames on the line, unprotected.
	if err := w.a.SendEAPOL(eapol); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.eapol: // B's engine received it from its line port
	case <-time.After(3 * time.Second):
		t.Fatal("SendEAPOL frame did not reach the far end's key agreement")
	}
}

func TestReplayedAndMalformedLineFramesAreDropped(t *testing.T) {
	// Window 0: strict order, so a replay of the last frame is late.
	// (With a window, 802.1AE accepts a repeated PN inside it.)
	w := newWire(t, macsec.GCMAES256, 0, false, true, 0) // XPN would recover a replayed PN into the next epoch and fail its ICV instead
	h1, h2, lineB, lineA := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl"), w.port(t, "al")
	done := make(chan [][]byte)
	go func() {
		done <- lineB.collect(1, 3*time.Second, func(f []byte) bool { return binary.BigEndian.Uint16(f[12:]) == macsec.EtherType })
	}()
	time.Sleep(100 * time.Millisecond)
	h1.send(t, testFrame(1, 300))
	captured := <-done
	if len(captured) != 1 {
		t.Fatal("no protected frame captured on the line")
	}
	if got := h2.collect(1, 3*time.Second, isTest); len(got) != 1 {
		t.Fatal("the original frame did not arrive")
	}
	p := captured[0]
	truncated := p[:20]
	badICV := append([]byte(nil), p...)
	badICV[len(badICV)-1] ^= 1
	badTCI := append([]byte(nil), p...)
	badTCI[14] |= 0x80 // V=1
	before := w.sb.Stats.InPktsBadTag.Load()
	lineA.send(t, p, p, truncated, badICV, badTCI) // from A's line port to B
	if got := h2.collect(1, time.Second, isTest); len(got) != 0 {
		t.Fatalf("%d injected frames reached the plaintext side", len(got))
	}
	sa := w.sb.RxSC(macsec.MakeSCI(macA, 1)).SA(1)
	if n := sa.Stats.InPktsOK.Load(); n != 1 {
		t.Errorf("InPktsOK = %d, want 1", n)
	}
	if n := w.sb.RxSC(macsec.MakeSCI(macA, 1)).Stats.InPktsLate.Load(); n < 2 {
		t.Errorf("replays: InPktsLate = %d, want 2", n)
	}
	if n := w.sb.Stats.InPktsBadTag.Load() - before; n != 2 {
		t.Errorf("InPktsBadTag rose by %d, want 2 (truncated, V=1)", n)
	}
	if n := w.b.Stats.Dropped.Load(); n != 5 {
		t.Errorf("B dropped %d, want 5", n)
	}
}
