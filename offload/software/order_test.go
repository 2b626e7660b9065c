package software

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// TestWorkersKeepPNOrder runs two workers per direction at both ends and
// sends 10,000 frames in each of 8 flows (the flows a fanout hash would
// spread over the workers) to a peer with replay window 0: strict PN
// order. Every frame must arrive, in its flow's order, and none may be
// counted late.
func TestWorkersKeepPNOrder(t *testing.T) {
	const flows, perFlow = 8, 10000
	w := newWire(t, macsec.GCMAESXPN256, 0, false, true, 0) // two workers each
	h1, h2 := w.port(t, "hp"), w.port(t, "hq")
	frame := func(flow, seq int) []byte {
		f := testFrame(seq, 100)
		f[11] = byte(0x10 + flow) // source MAC: the flow
		return f
	}
	var got atomic.Int64
	bad := make(chan []byte, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := make([]int, flows)
		for got.Load() < flows*perFlow && ctx.Err() == nil {
			h2.rx.Receive(ctx, func(f []byte) {
				if !isTest(f) || len(f) < 100 {
					return
				}
				flow := int(f[11]) - 0x10
				seq := int(binary.BigEndian.Uint32(f[14+len("MARKER-secwire-plaintext"):]))
				if flow < 0 || flow >= flows || seq != next[flow] || !bytes.Equal(f, frame(flow, seq)) {
					select {
					case bad <- append([]byte(nil), f[:min(len(f), 48)]...):
					default:
					}
					return
				}
				next[flow]++
				got.Add(1)
			})
		}
	}()
	time.Sleep(100 * time.Millisecond)
	// Flows interleave frame by frame; at most 512 frames are in flight,
	// so no ring overflows however slow the machine is.
	sent := 0
	for seq := range perFlow {
		for flow := range flows {
			for int64(sent)-got.Load() >= 512 && ctx.Err() == nil {
				time.Sleep(200 * time.Microsecond)
			}
			if err := h1.tx.Send(frame(flow, seq)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if seq%8 == 7 {
			h1.tx.Flush()
		}
	}
	h1.tx.Flush()
	<-done
	sc := w.sb.RxSC(macsec.MakeSCI(macA, 1))
	late, ok := sc.Stats.InPktsLate.Load(), sc.SA(1).Stats.InPktsOK.Load()
	select {
	case f := <-bad:
		t.Errorf("a frame arrived out of its flow's order or altered: %x", f)
	default:
	}
	if late != 0 || got.Load() != flows*perFlow {
		t.Fatalf("B counted %d frames late (window 0), %d OK; h2 got %d of %d in order; A %s; B %s; B ring drops %d",
			late, ok, got.Load(), flows*perFlow, statsOf(w.a), statsOf(w.b), w.b.rxLine.Drops())
	}
	w.a.protecting.seq.Lock() // the workers still run
	batches := w.a.protecting.ticket
	w.a.protecting.seq.Unlock()
	t.Logf("%d frames in %d flows, none late; A took %d batches over 2 workers", got.Load(), flows, batches)
}
