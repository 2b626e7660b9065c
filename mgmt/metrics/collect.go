package metrics

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/secwire/secwire/firmware/supervisor"
)

// mib maps the IEEE 802.1AE counter names that `show counters` uses to
// the IEEE8021-SECY-MIB objects the exported names follow.
var mib = map[string]string{
	// secyStatsTable, per SecY
	"OutPktsUntagged":  "secyStatsTxUntaggedPkts",
	"OutPktsTooLong":   "secyStatsTxTooLongPkts",
	"InPktsUntagged":   "secyStatsRxUntaggedPkts",
	"InPktsNoTag":      "secyStatsRxNoTagPkts",
	"InPktsBadTag":     "secyStatsRxBadTagPkts",
	"InPktsUnknownSCI": "secyStatsRxUnknownSCIPkts",
	"InPktsNoSCI":      "secyStatsRxNoSCIPkts",
	"InPktsOverrun":    "secyStatsRxOverrunPkts",
	// secyTxSCStatsTable
	"OutPktsProtected":   "secyTxSCStatsProtectedPkts",
	"OutPktsEncrypted":   "secyTxSCStatsEncryptedPkts",
	"OutOctetsProtected": "secyTxSCStatsOctetsProtected",
	"OutOctetsEncrypted": "secyTxSCStatsOctetsEncrypted",
	// secyRxSCStatsTable
	"InPktsUnchecked":   "secyRxSCStatsUncheckedPkts",
	"InPktsDelayed":     "secyRxSCStatsDelayedPkts",
	"InPktsLate":        "secyRxSCStatsLatePkts",
	"InPktsNotUsingSA":  "secyRxSCStatsNoUsingSAPkts",
	"InPktsUnusedSA":    "secyRxSCStatsUnusedSAPkts",
	"InOctetsValidated": "secyRxSCStatsOctetsValidated",
	"InOctetsDecrypted": "secyRxSCStatsOctetsDecrypted",
	"InPktsOK":          "secyRxSCStatsOKPkts",
	"InPktsInvalid":     "secyRxSCStatsInvalidPkts",
	"InPktsNotValid":    "secyRxSCStatsNotValidPkts",
}

// snake turns a MIB or Go name into a Prometheus name part:
// secyTxSCStatsEncryptedPkts -> secy_tx_sc_stats_encrypted_pkts.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prevLower := rs[i-1] >= 'a' && rs[i-1] <= 'z' || rs[i-1] >= '0' && rs[i-1] <= '9'
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			prevUpper := rs[i-1] >= 'A' && rs[i-1] <= 'Z'
			if prevLower || prevUpper && nextLower {
				b.WriteByte('_')
			}
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

// counterName is the exported name of an 802.1AE counter.
func counterName(ieee string) string {
	if m, ok := mib[ieee]; ok {
		return "secwire_" + snake(m) + "_total"
	}
	return "secwire_datapath_" + snake(ieee) + "_frames_total"
}

func counterHelp(ieee string) string {
	if m, ok := mib[ieee]; ok {
		return fmt.Sprintf("IEEE 802.1AE %s (IEEE8021-SECY-MIB %s); monotonic across rekeys, restarts and clear counters", ieee, m)
	}
	return fmt.Sprintf("secwire datapath counter %s (as in show counters); monotonic across restarts and clear counters", ieee)
}

// sample is one gauge or counter value with its labels.
type sample struct {
	name, help string
	counter    bool
	labels     []string // names and values alternating
	value      float64
}

// linkSamples turns the links' raw status into samples; counters go
// through mono so that they never go back.
func (c *Collector) linkSamples(st supervisor.Status) []sample {
	var out []sample
	gauge := func(name, help string, v float64, labels ...string) {
		out = append(out, sample{name: name, help: help, labels: labels, value: v})
	}
	values := c.mono.scrape(func(add func(seriesKey, string, uint64)) {
		counter := func(part, name, help string, v uint64, labels ...string) {
			k := seriesKey{name, strings.Join(labels, "\x00")}
			if _, ok := c.known[k]; !ok {
				c.known[k] = sample{name: name, help: help, counter: true, labels: labels}
			}
			add(k, part, v)
		}
		ieee := func(part string, x supervisor.Counter, labels ...string) {
			counter(part, counterName(x.Name), counterHelp(x.Name), x.Value, labels...)
		}
		for _, l := range st.Links {
			for _, x := range l.SecYCounters {
				ieee("secy", x, "link", l.Name)
			}
			for _, x := range l.TxSCCounters {
				ieee("txsc", x, "link", l.Name, "sci", l.SCI)
			}
			for _, x := range l.DatapathCounters {
				ieee("datapath", x, "link", l.Name)
			}
			for _, sc := range l.RxSCs {
				have := map[string]bool{}
				for _, x := range sc.Counters {
					have[x.Name] = true
					ieee("rxsc", x, "link", l.Name, "sci", sc.SCI)
				}
				// Counters the SC does not keep (the software datapath
				// counts InPktsOK per SA) are the sum of its SAs: each SA
				// is a part, so a rekey that replaces one loses nothing.
				for _, sa := range sc.SAs {
					for _, x := range sa.Counters {
						if !have[x.Name] {
							ieee(fmt.Sprintf("sa %d %s", sa.AN, sa.Key), x, "link", l.Name, "sci", sc.SCI)
						}
					}
				}
			}
			if m := l.MKA; m != nil {
				mc := m.Counters
				for _, x := range []struct {
					name string
					v    uint64
				}{{"MKPDUsSent", mc.MKPDUsSent}, {"MKPDUsReceived", mc.MKPDUsReceived}, {"MKPDUsValid", mc.MKPDUsValid},
					{"SendErrors", mc.SendErrors}, {"SAKsGenerated", mc.SAKsGenerated}, {"SAKsInstalled", mc.SAKsInstalled},
					{"SAKsRetired", mc.SAKsRetired}, {"CALosses", mc.CALosses}} {
					name, help := mkaCounter(x.name)
					counter("kay", name, help, x.v, "link", l.Name)
				}
				for _, d := range m.Drops {
					counter("kay", "secwire_mka_mkpdu_drops_total", "MKPDUs dropped, by reason (as in show mka)", d.Count, "link", l.Name, "reason", d.Reason)
				}
			}
		}
	})
	for k, v := range values {
		s := c.known[k]
		s.value = float64(v)
		out = append(out, s)
	}
	for _, l := range st.Links {
		secured := 0.0
		if l.MKA != nil && l.MKA.Secured || l.MKA == nil && staticSecured(l) {
			secured = 1
		}
		gauge("secwire_link_secured", "1 while the link transmits and receives with SAs (MKA: the principal CA is secured)", secured, "link", l.Name)
		gauge("secwire_link_datapath_info", "The datapath backend that runs the link (offload-mac, offload-phy, kernel or software)", 1, "link", l.Name, "backend", l.Backend)
		fault := 0.0
		if l.Fault != "" {
			fault = 1
		}
		gauge("secwire_link_fault", "1 while the plaintext port is held down (line down or not secured)", fault, "link", l.Name)
		for _, p := range []struct {
			role string
			s    supervisor.PortState
		}{{"plaintext", l.Plain}, {"line", l.Line}} {
			gauge("secwire_port_carrier", "1 while the port has carrier", b2f(p.s.Carrier), "link", l.Name, "role", p.role, "port", p.s.Name)
		}
		m := l.MKA
		if m == nil {
			continue
		}
		gauge("secwire_mka_secured", "1 while the principal CA transmits with a SAK", b2f(m.Secured), "link", l.Name)
		for _, ca := range m.CAs {
			lb := []string{"link", l.Name, "ckn", ca.CKN}
			gauge("secwire_mka_ca_principal", "1 for the CA whose SAKs the SecY uses", b2f(ca.Principal), lb...)
			gauge("secwire_mka_ca_fallback", "1 for the fallback CAK's CA", b2f(ca.Fallback), lb...)
			gauge("secwire_mka_ca_secured", "1 while the CA is secured", b2f(ca.Secured), lb...)
			gauge("secwire_mka_ca_live_peers", "Live peers of the CA", float64(len(ca.Live)), lb...)
			gauge("secwire_mka_ca_potential_peers", "Potential peers of the CA", float64(len(ca.Potential)), lb...)
			gauge("secwire_mka_ca_key_server_info", "The CA's key server: \"this end\" or the peer's SCI", 1, append(slices.Clone(lb), "key_server", ca.KeyServer)...)
		}
		if k := m.Latest; k != nil {
			gauge("secwire_mka_latest_key_number", "Key Number (KN) of the latest SAK", float64(k.KN), "link", l.Name)
			gauge("secwire_mka_latest_association_number", "Association Number (AN) of the latest SAK", float64(k.AN), "link", l.Name)
		}
	}
	return out
}

func mkaCounter(name string) (string, string) {
	switch name {
	case "MKPDUsSent":
		return "secwire_mka_mkpdus_sent_total", "MKPDUs sent"
	case "MKPDUsReceived":
		return "secwire_mka_mkpdus_received_total", "MKPDUs received"
	case "MKPDUsValid":
		return "secwire_mka_mkpdus_valid_total", "MKPDUs received that passed their ICV and checks"
	case "SendErrors":
		return "secwire_mka_send_errors_total", "MKPDUs that could not be sent"
	case "SAKsGenerated":
		return "secwire_mka_saks_generated_total", "SAKs this end generated as key server"
	case "SAKsInstalled":
		return "secwire_mka_sak_installs_total", "SAKs installed: the first keying of a CA and every rekey"
	case "SAKsRetired":
		return "secwire_mka_saks_retired_total", "Old SAKs retired after a rekey"
	}
	return "secwire_mka_ca_losses_total", "Secured CAs lost (no live peer left)"
}

// staticSecured: a static-key link has a transmit SA in use and a
// receive SA.
func staticSecured(l supervisor.LinkStatus) bool {
	if l.EncodingSA < 0 || len(l.TxSAs) == 0 {
		return false
	}
	for _, sc := range l.RxSCs {
		if len(sc.SAs) > 0 {
			return true
		}
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// emit sends samples as const metrics; samples of one name share the
// first one's help text and label names.
func emit(ch chan<- prometheus.Metric, samples []sample) {
	descs := map[string]*prometheus.Desc{}
	names := map[string][]string{}
	for _, s := range samples {
		var ln, lv []string
		for i := 0; i+1 < len(s.labels); i += 2 {
			ln, lv = append(ln, s.labels[i]), append(lv, s.labels[i+1])
		}
		d := descs[s.name]
		if d == nil {
			d = prometheus.NewDesc(s.name, s.help, ln, nil)
			descs[s.name], names[s.name] = d, ln
		}
		if !slices.Equal(names[s.name], ln) {
			continue // cannot happen with the names above; never emit a malformed family
		}
		t := prometheus.GaugeValue
		if s.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, t, s.value, lv...)
	}
}
