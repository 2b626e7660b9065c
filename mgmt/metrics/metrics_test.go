package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/firmware/supervisor"
)

func TestSnakeNames(t *testing.T) {
	for in, want := range map[string]string{
		"secyTxSCStatsEncryptedPkts": "secy_tx_sc_stats_encrypted_pkts",
		"secyStatsRxUnknownSCIPkts":  "secy_stats_rx_unknown_sci_pkts",
		"secyRxSCStatsOKPkts":        "secy_rx_sc_stats_ok_pkts",
		"DroppedNoSA":                "dropped_no_sa",
		"BadVLANInClear":             "bad_vlan_in_clear",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
}

// status is a link whose receive SC counts InPktsOK per SA, as the
// software datapath does.
func status(txEnc uint64, sas ...supervisor.SAState) supervisor.Status {
	return supervisor.Status{Links: []supervisor.LinkStatus{{
		Name: "link0", SCI: "025e00000a010001", Backend: "software", EncodingSA: 0,
		TxSAs:        []supervisor.SAState{{AN: 0}},
		TxSCCounters: supervisor.Counters{{Name: "OutPktsEncrypted", Value: txEnc}},
		RxSCs:        []supervisor.SCState{{SCI: "025e00000b010001", Counters: supervisor.Counters{{Name: "InPktsLate", Value: 0}}, SAs: sas}},
		MKA:          &mka.Status{Secured: true, Counters: mka.Counters{SAKsInstalled: 1}},
	}}}
}

func ok(an uint8, key string, v uint64) supervisor.SAState {
	return supervisor.SAState{AN: an, Key: key, Counters: supervisor.Counters{{Name: "InPktsOK", Value: v}}}
}

func value(t *testing.T, c *Collector, name string) float64 {
	t.Helper()
	n, err := testutil.GatherAndCount(reg(c), name)
	if err != nil || n != 1 {
		t.Fatalf("%s: %d series, %v", name, n, err)
	}
	mfs, _ := reg(c).Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

func reg(c *Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	return r
}

// A rekey replaces the SA that counts InPktsOK; a commit restarts the
// datapath and its counters start from zero. The exported counters go
// on from where they were.
func TestCountersNeverGoBack(t *testing.T) {
	cur := status(100, ok(0, "k1", 50))
	c := NewCollector(Sources{Links: func() supervisor.Status { return cur }, Version: "test"})
	const rxOK, txEnc = "secwire_secy_rx_sc_stats_ok_pkts_total", "secwire_secy_tx_sc_stats_encrypted_pkts_total"
	steps := []struct {
		what      string
		st        supervisor.Status
		rxOK, enc float64
	}{
		{"start", status(100, ok(0, "k1", 50)), 50, 100},
		{"rekey: both SAs", status(150, ok(0, "k1", 60), ok(1, "k2", 5)), 65, 150},
		{"old SA retired", status(160, ok(1, "k2", 20)), 80, 160},
		{"datapath restarted by a commit", status(3, ok(2, "k3", 1)), 81, 163},
		{"SC gone", supervisor.Status{Links: []supervisor.LinkStatus{{Name: "link0", SCI: "025e00000a010001", MKA: &mka.Status{}}}}, 81, 163},
	}
	for _, s := range steps {
		cur = s.st
		if got := value(t, c, rxOK); got != s.rxOK {
			t.Errorf("%s: %s = %v, want %v", s.what, rxOK, got, s.rxOK)
		}
		if s.st.Links[0].TxSCCounters != nil {
			if got := value(t, c, txEnc); got != s.enc {
				t.Errorf("%s: %s = %v, want %v", s.what, txEnc, got, s.enc)
			}
		}
	}
}

// The exposition passes client_golang's linter (promtool's rules).
func TestExpositionLints(t *testing.T) {
	c := NewCollector(Sources{Links: func() supervisor.Status { return status(1, ok(0, "k", 1)) }, Version: "test"})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	out, _ := reg(c).Gather()
	var names []string
	for _, mf := range out {
		names = append(names, mf.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "secwire_mka_secured") {
		t.Errorf("no MKA state among %v", names)
	}
}
