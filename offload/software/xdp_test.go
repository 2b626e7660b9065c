package software

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/internal/tctag"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// TestAFXDPForwardsProtectedBothWays runs both engines on AF_XDP (native
// XDP on veth, copy mode) with two workers: frames
// cross protected, in order, a VLAN tag the host's stack carried in
// metadata crosses with the frame, and the line shows only MACsec, to a
// capture too.
func TestAFXDPForwardsProtectedBothWays(t *testing.T) {
	w := newWireMTU(t, 1500, 1600, macsec.GCMAESXPN256, 0, false, true, 0, func(_ string, o *Options) { o.Rings = "af_xdp" })
	for _, e := range []*Engine{w.a, w.b} {
		if e.Rings() != "af_xdp" {
			t.Fatalf("engine runs on %s, want af_xdp", e.Rings())
		}
	}
	h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl")
	var tagged *afpacket.Tx
	err := w.ns.Do(func() (err error) {
		l, err := tctag.Push("hp", 0x88b6, 300)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		if tagged, err = afpacket.OpenTx("hp", afpacket.TxOptions{}); err != nil {
			return err
		}
		return tagged.SetQdiscBypass(false)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tagged.Close()
	var frames [][]byte
	for i := range 500 {
		frames = append(frames, testFrame(i, 60+(i*53)%1454))
	}
	frames = append(frames, testFrame(1000, 1400, 100), testFrame(1001, 1400, 100, 200))
	// XDP takes B's line frames before any capture: B shows them to the
	// kernel's taps while watched (monitor traffic), and still forwards.
	w.b.Visible(true)
	var lineSeen [][]byte
	var wg sync.WaitGroup
	wg.Go(func() {
		lineSeen = line.collect(len(frames)+1, 5*time.Second, func([]byte) bool { return true })
	})
	time.Sleep(100 * time.Millisecond)
	h1.send(t, frames...)
	got := h2.collect(len(frames), 5*time.Second, isTest)
	if len(got) != len(frames) {
		t.Fatalf("h2 got %d of %d frames; A %s; B %s", len(got), len(frames), statsOf(w.a), statsOf(w.b))
	}
	checkFlowOrder(t, frames, got)
	inner := testFrame(7, 300)
	binary.BigEndian.PutUint16(inner[12:], 0x88b6)
	tagged.Send(inner)
	tagged.Flush()
	want := append(append(append([]byte(nil), inner[:12]...), 0x81, 0, 0x01, 0x2c), inner[12:]...)
	if got := h2.collect(1, 5*time.Second, isTest); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("the frame tagged in metadata arrived as %x, want it with VLAN 300", got)
	}
	wg.Wait()
	for _, f := range lineSeen {
		if binary.BigEndian.Uint16(f[12:]) != macsec.EtherType || isTest(f) {
			t.Fatalf("frame on the line is not MACsec or shows the plaintext marker: %x", f[:min(len(f), 60)])
		}
	}
	if len(lineSeen) != len(frames)+1 {
		t.Fatalf("line capture saw %d frames, want %d", len(lineSeen), len(frames)+1)
	}
	w.b.Visible(false)
	h2.send(t, frames[:10]...)
	if back := h1.collect(10, 5*time.Second, isTest); len(back) != 10 {
		t.Fatalf("h1 got %d of 10 frames back", len(back))
	}
	if late := w.sb.RxSC(macsec.MakeSCI(macA, 1)).Stats.InPktsLate.Load(); late != 0 {
		t.Fatalf("B counted %d frames late with replay window 0", late)
	}
}

// TestAutoFallsBackToAFPacket: veth runs XDP natively but only in copy
// mode, so auto takes AF_PACKET, leaves no XDP program on the ports, and
// the link works.
func TestAutoFallsBackToAFPacket(t *testing.T) {
	w := newWireMTU(t, 1500, 1600, macsec.GCMAES128, 0, false, true, 64, nil)
	for _, e := range []*Engine{w.a, w.b} {
		if e.Rings() != "af_packet" {
			t.Fatalf("auto chose %s on veth, want af_packet", e.Rings())
		}
	}
	for _, dev := range []string{"ap", "al", "bl", "bp"} {
		out, _ := w.ns.Command("ip", "link", "show", "dev", dev).CombinedOutput()
		if bytes.Contains(out, []byte("xdp")) {
			t.Fatalf("an XDP program stayed on %s after the fallback:\n%s", dev, out)
		}
	}
	h1, h2 := w.port(t, "hp"), w.port(t, "hq")
	h1.send(t, testFrame(1, 500))
	if got := h2.collect(1, 5*time.Second, isTest); len(got) != 1 {
		t.Fatal("no frame crossed after the fallback")
	}
}
