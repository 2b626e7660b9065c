package software

import (
	"context"
	"net"
	"testing"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/ring"
)

// feed is a receive ring that hands out the frames given to it.
type feed struct {
	frames   [][]byte
	released int
}

func (f *feed) Take(dst []ring.Frame) (n, _ int) {
	for n < len(dst) && len(f.frames) > 0 {
		dst[n] = ring.Frame{Data: f.frames[0], ID: uint64(n)}
		f.frames = f.frames[1:]
		n++
	}
	return n, 0
}
func (f *feed) Release(ring.Frame)             { f.released++ }
func (f *feed) Ready() bool                    { return len(f.frames) > 0 }
func (f *feed) Wait(ctx context.Context) error { return ctx.Err() }
func (f *feed) Interrupt()                     {}
func (f *feed) Drops() uint64                  { return 0 }
func (f *feed) Close() error                   { return nil }

// TestHotPathDoesNotAllocate checks that protecting and validating
// frames through the pipes, with protocol exceptions and a management
// VLAN configured, allocates nothing.
func TestHotPathDoesNotAllocate(t *testing.T) {
	w := newWireWith(t, macsec.GCMAESXPN256, 0, false, true, 64, func(_ string, o *Options) {
		o.InClear = []Exception{lldpInClear, {Name: "ptp", EtherType: 0x88f7, DAs: []net.HardwareAddr{{1, 0x1b, 0x19, 0, 0, 0}}}}
		o.ManagementVLAN = 100
	})
	var out *afpacket.Tx
	if err := w.ns.Do(func() (err error) { out, err = afpacket.OpenTx("hq", afpacket.TxOptions{}); return }); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	frame := testFrame(1, 1400)
	lldp := rawFrame(lldpDA, 1, 0x88cc)
	wire := make([]byte, 0, 64<<10)
	in := &feed{}
	protect := newPipe(w.a, in, out, (*Engine).protect, (*Engine).seal)
	validate := newPipe(w.b, in, out, nil, (*Engine).validate)
	pb, vb := protect.newBatch(), validate.newBatch()
	pr, vr := w.sa.NewReader(), w.sb.NewReader()
	ctx := context.Background()
	ok := w.sb.RxSC(macsec.MakeSCI(macA, 1)).SA(1).Stats.InPktsOK.Load()
	sent := w.a.Stats.LineOut.Load()
	frames := make([][]byte, 0, 2)
	if n := testing.AllocsPerRun(1000, func() {
		in.frames = append(frames[:0], frame, lldp)
		protect.step(ctx, pr, pb)
		wire, _ = w.sa.Protect(wire, frame)
		in.frames = append(frames[:0], wire, lldp)
		validate.step(ctx, vr, vb)
	}); n != 0 {
		t.Errorf("%.1f allocations per frame set, want 0", n)
	}
	if got := w.sb.RxSC(macsec.MakeSCI(macA, 1)).SA(1).Stats.InPktsOK.Load() - ok; got < 1000 {
		t.Errorf("%d frames validated, want every one of the 1001 (the check ran on the success path)", got)
	}
	if got := w.a.Stats.LineOut.Load() - sent; got < 2000 {
		t.Errorf("%d frames protected or passed and sent, want all 2002", got)
	}
	if in.released != 4*1001 {
		t.Errorf("%d frames released, want %d", in.released, 4*1001)
	}
}
