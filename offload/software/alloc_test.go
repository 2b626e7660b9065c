package software

import (
	"net"
	"testing"

	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// TestHotPathDoesNotAllocate checks that protecting and validating a
// frame, with protocol exceptions and a management VLAN configured,
// allocates nothing.
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
	buf := make([]byte, 0, 64<<10)
	frame := testFrame(1, 1400)
	lldp := rawFrame(lldpDA, 1, 0x88cc)
	wire := make([]byte, 0, 64<<10)
	ok := w.sb.RxSC(macsec.MakeSCI(macA, 1)).SA(1).Stats.InPktsOK.Load()
	if n := testing.AllocsPerRun(1000, func() {
		buf = w.a.protect(out, buf, frame)
		buf = w.a.protect(out, buf, lldp)
		wire, _ = w.sa.Protect(wire, frame)
		buf = w.b.validate(out, buf, wire)
		buf = w.b.validate(out, buf, lldp)
		out.Flush()
	}); n != 0 {
		t.Errorf("%.1f allocations per frame set, want 0", n)
	}
	if got := w.sb.RxSC(macsec.MakeSCI(macA, 1)).SA(1).Stats.InPktsOK.Load() - ok; got < 1000 {
		t.Errorf("%d frames validated, want every one of the 1001 (the check ran on the success path)", got)
	}
}
