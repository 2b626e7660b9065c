package software

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

var lldpDA = net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0x0e}

// lldpInClear is the rule firmware/config makes of "lldp".
var lldpInClear = Exception{Name: "lldp", EtherType: 0x88cc, DAs: []net.HardwareAddr{
	lldpDA, {0x01, 0x80, 0xc2, 0, 0, 0x03}, {0x01, 0x80, 0xc2, 0, 0, 0x00}}}

// rawFrame is DA, SA, the EtherType words given (tags then the type),
// the marker and seq, padded to 80 bytes.
func rawFrame(da net.HardwareAddr, seq int, types ...uint16) []byte {
	f := append([]byte(nil), da...)
	f = append(f, 2, 0, 0, 0, 0x11, 1)
	for _, t := range types {
		f = binary.BigEndian.AppendUint16(f, t)
	}
	f = append(f, []byte("MARKER-secwire-sweep")...)
	f = binary.BigEndian.AppendUint32(f, uint32(seq))
	for len(f) < 80 {
		f = append(f, 0)
	}
	return f
}

// watch records every frame arriving on p until stop is called.
func watch(p *port) (stop func() [][]byte) {
	var mu sync.Mutex
	var got [][]byte
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			f := p.collect(1<<30, 200*time.Millisecond, func([]byte) bool { return true })
			mu.Lock()
			got = append(got, f...)
			mu.Unlock()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	return func() [][]byte {
		time.Sleep(300 * time.Millisecond)
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestProtocolInClearCrossesBothWays(t *testing.T) {
	for _, keys := range []bool{true, false} {
		t.Run(fmt.Sprintf("keys=%v", keys), func(t *testing.T) {
			// Must-secure: with or without SAs, only LLDP crosses in clear.
			w := newWireWith(t, macsec.GCMAES128, 0, false, keys, 64, func(_ string, o *Options) {
				o.InClear = []Exception{lldpInClear}
			})
			h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl")
			stopLine := watch(line)
			lldp := rawFrame(lldpDA, 1, 0x88cc)
			h1.send(t, lldp)
			got := h2.collect(1, 3*time.Second, isTest)
			if len(got) != 1 || !bytes.Equal(got[0], lldp) {
				t.Fatalf("h2 got %d frames, want the LLDP frame unchanged", len(got))
			}
			onLine := stopLine()
			if len(onLine) != 1 || !bytes.Equal(onLine[0], lldp) {
				t.Fatalf("line saw %d frames, want the LLDP frame in clear", len(onLine))
			}
			// And from the far end's router back.
			back := rawFrame(lldpDA, 2, 0x88cc)
			h2.send(t, back)
			if got := h1.collect(1, 3*time.Second, isTest); len(got) != 1 || !bytes.Equal(got[0], back) {
				t.Fatalf("h1 got %d frames, want B's LLDP frame unchanged", len(got))
			}
			if a, b := w.a.Stats.InClearToLine.Load(), w.a.Stats.InClearFromLine.Load(); a != 1 || b != 1 {
				t.Errorf("A InClearToLine %d InClearFromLine %d, want 1 and 1", a, b)
			}
		})
	}
}

// sweep is every frame that must not cross in clear with only lldp
// excepted: EtherTypes from 0x0000 to 0xffff in steps of 0x0101 plus the
// usual ones, each to a unicast, the broadcast and the control protocols'
// group addresses; LLDP to other addresses or VLAN-tagged; pause and LACP
// (not configured); a tagged frame on every tag type.
func sweep() [][]byte {
	das := []net.HardwareAddr{
		{0x02, 0, 0, 0, 0x22, 2}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x01, 0x80, 0xc2, 0, 0, 0x01}, {0x01, 0x80, 0xc2, 0, 0, 0x02}, {0x01, 0x80, 0xc2, 0, 0, 0x0d},
		{0x01, 0x00, 0x5e, 0, 0, 1},
	}
	types := []uint16{0x0800, 0x0806, 0x86dd, 0x8808, 0x8809, 0x88e5, 0x888e, 0x88f7, 0x8847, 0x88b5, 0x0600, 0x05ff}
	for et := 0; et <= 0xffff; et += 0x0101 {
		types = append(types, uint16(et))
	}
	var out [][]byte
	seq := 0
	for _, et := range types {
		for _, da := range das {
			out = append(out, rawFrame(da, seq, et))
			seq++
		}
	}
	for _, tag := range []uint16{0x8100, 0x88a8, 0x9100} {
		out = append(out, rawFrame(lldpDA, seq, tag, 100, 0x88cc)) // LLDP behind a tag
		out = append(out, rawFrame(das[0], seq+1, tag, 100, 0x0800))
		seq += 2
	}
	for _, da := range das {
		out = append(out, rawFrame(da, seq, 0x88cc)) // LLDP to other addresses
		seq++
	}
	// PAUSE and LACP, which are not configured here.
	out = append(out, rawFrame(das[2], seq, 0x8808, 0x0001), rawFrame(das[3], seq+1, 0x8809, 0x0101))
	return out
}

// TestNothingElseCrossesInClear sends the sweep both ways, with and
// without SAs, with lldp in clear: on the line every frame is MACsec (or
// nothing is sent without SAs) and nothing reaches the far plaintext side
// unvalidated.
func TestNothingElseCrossesInClear(t *testing.T) {
	frames := sweep()
	for _, keys := range []bool{true, false} {
		t.Run(fmt.Sprintf("keys=%v", keys), func(t *testing.T) {
			w := newWireWith(t, macsec.GCMAESXPN256, 0, false, keys, 1<<20, func(_ string, o *Options) {
				o.InClear = []Exception{lldpInClear}
			})
			h1, h2, lineA, lineB := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "al"), w.port(t, "bl")
			stopLine := watch(lineB)
			stopH2 := watch(h2)
			for i := 0; i < len(frames); i += 64 {
				h1.send(t, frames[i:min(i+64, len(frames))]...)
				time.Sleep(5 * time.Millisecond)
			}
			onLine := stopLine()
			protected := 0
			for _, f := range onLine {
				if binary.BigEndian.Uint16(f[12:]) != macsec.EtherType || bytes.Contains(f, []byte("MARKER")) {
					t.Fatalf("frame in clear on the line: %x", f[:min(len(f), 40)])
				}
				protected++
			}
			want := 0
			if keys {
				want = len(frames)
			}
			if protected != want {
				t.Errorf("%d protected frames on the line, want %d (one per frame sent)", protected, want)
			}
			// The far end delivers what it validated, never a clear frame.
			delivered := stopH2()
			if keys && len(delivered) < len(frames) {
				t.Errorf("h2 got %d of %d frames", len(delivered), len(frames))
			}
			if !keys && len(delivered) != 0 {
				t.Errorf("h2 got %d frames with no SAs", len(delivered))
			}
			// The same frames injected in clear on the line: none reaches
			// the plaintext side.
			stopH2 = watch(h2)
			for i := 0; i < len(frames); i += 64 {
				lineA.send(t, frames[i:min(i+64, len(frames))]...)
				time.Sleep(5 * time.Millisecond)
			}
			if got := stopH2(); len(got) != 0 {
				t.Fatalf("%d clear frames from the line reached the plaintext side, first %x", len(got), got[0][:min(len(got[0]), 40)])
			}
			if n := w.b.Stats.InClearFromLine.Load() + w.a.Stats.InClearToLine.Load(); n != 0 {
				t.Errorf("%d sweep frames counted as protocol exceptions", n)
			}
		})
	}
}

func TestManagementVLANNeverCrosses(t *testing.T) {
	for _, c := range []struct {
		name         string
		shouldSecure bool
		keys         bool
	}{{"static-keys", false, true}, {"should-secure-no-SA", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWireWith(t, macsec.GCMAES128, 0, c.shouldSecure, c.keys, 64, func(side string, o *Options) {
				if side == "a" {
					o.ManagementVLAN = 100
				}
			})
			h1, h2, line := w.port(t, "hp"), w.port(t, "hq"), w.port(t, "bl")
			stopLine := watch(line)
			mgmt := testFrame(1, 200, 100)
			mgmtPrio := testFrame(2, 200, 0xe000|100) // priority 7, VLAN 100
			other := testFrame(3, 200, 101)
			plain := testFrame(4, 200)
			h1.send(t, mgmt, mgmtPrio, other, plain)
			got := h2.collect(3, 3*time.Second, isTest)
			seen := stopLine()
			if len(got) != 2 || !bytes.Equal(got[0], other) || !bytes.Equal(got[1], plain) {
				t.Fatalf("h2 got %d frames, want only VLAN 101 and the untagged one", len(got))
			}
			for _, f := range seen {
				if bytes.Contains(f, []byte("MARKER")) && binary.BigEndian.Uint16(f[14:])&0xfff == 100 {
					t.Fatalf("management VLAN frame on the line: %x", f[:24])
				}
			}
			if len(seen) != 2 {
				t.Errorf("line saw %d frames, want 2", len(seen))
			}
			// From the far end: VLAN 100 frames stay off A's plaintext port.
			h2.send(t, testFrame(5, 200, 100), testFrame(6, 200, 102))
			back := h1.collect(2, 2*time.Second, isTest)
			if len(back) != 1 || binary.BigEndian.Uint16(back[0][14:]) != 102 {
				t.Fatalf("h1 got %d frames, want only VLAN 102", len(back))
			}
			if n := w.a.Stats.ManagementVLANDropped.Load(); n != 3 {
				t.Errorf("A ManagementVLANDropped = %d, want 3", n)
			}
		})
	}
}
