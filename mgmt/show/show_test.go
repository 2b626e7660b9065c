package show

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secwire/secwire/firmware/supervisor"
)

func TestShouldSecureInClearIsLoud(t *testing.T) {
	st := supervisor.Status{Links: []supervisor.LinkStatus{{
		Name: "link0", Plain: supervisor.PortState{Name: "eth0"}, Line: supervisor.PortState{Name: "eth1", MTU: 1500},
		Policy: "should-secure", InClear: true, Cipher: "gcm-aes-128", EncodingSA: -1, LineMTUNeeded: 1532,
		Fault: "", Datapath: "software (reason)",
	}}}
	var b bytes.Buffer
	MACsec(&b, st)
	if !strings.Contains(b.String(), "FRAMES CROSS THIS LINK IN CLEAR") || !strings.Contains(b.String(), "encoding SA none") {
		t.Errorf("show macsec:\n%s", b.String())
	}
	b.Reset()
	Interfaces(&b, st)
	if !strings.Contains(b.String(), "MTU 1500 is below the 1532 needed") {
		t.Errorf("show interfaces does not flag the short line MTU:\n%s", b.String())
	}
	st.Links[0].InClear = false
	b.Reset()
	MACsec(&b, st)
	if strings.Contains(b.String(), "IN CLEAR") {
		t.Errorf("banner without cause:\n%s", b.String())
	}
}

func TestCountersUseIEEENames(t *testing.T) {
	st := supervisor.Status{Links: []supervisor.LinkStatus{{Name: "link0",
		SecYCounters: supervisor.Counters{{Name: "InPktsNoTag", Value: 7}},
		RxSCs:        []supervisor.SCState{{SCI: "025e00000b010001", Counters: supervisor.Counters{{Name: "InPktsLate", Value: 2}}}},
	}}}
	var b bytes.Buffer
	Counters(&b, st)
	for _, want := range []string{"InPktsNoTag", "7", "RX SC 025e00000b010001", "InPktsLate"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q:\n%s", want, b.String())
		}
	}
}
