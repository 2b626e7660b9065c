package show

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/firmware/supervisor"
)

// MKA prints each link's key agreement: its CAs with their peers, the
// key server, the installed keys (by fingerprint) and why MKPDUs were
// dropped.
func MKA(w io.Writer, st supervisor.Status) {
	if noLinks(w, st) {
		return
	}
	for _, l := range st.Links {
		stale(w, l)
		m := l.MKA
		if m == nil {
			fmt.Fprintf(w, "link %s: static keys, no MKA\n", l.Name)
			continue
		}
		fmt.Fprintf(w, "link %s: SCI %s, key server priority %d, cipher suite %s, confidentiality offset %d\n",
			l.Name, m.SCI, m.Priority, m.Cipher, m.Offset)
		switch {
		case !m.Secured:
			fmt.Fprintf(w, "  status: NOT SECURED: %s\n", or(l.Diagnosis, m.Diagnosis))
		case l.Diagnosis != "":
			fmt.Fprintf(w, "  status: SECURED, but %s\n", l.Diagnosis)
		default:
			fmt.Fprintln(w, "  status: SECURED")
		}
		if l.ClockWarning != "" {
			fmt.Fprintf(w, "  WARNING: %s\n", l.ClockWarning)
		}
		dest := m.Destination
		if m.AutoDest {
			dest += " (auto)"
		}
		fmt.Fprintf(w, "  MKPDUs to %s every %s, controlled port %s\n", dest, m.Hello, m.CPState)
		for _, ca := range m.CAs {
			state := "not secured"
			if ca.Secured {
				state = "SECURED"
			}
			role := ""
			if ca.Fallback {
				role = ", FALLBACK key"
			}
			if ca.Principal {
				role += ", principal"
			}
			fmt.Fprintf(w, "  CA CKN %s: %s%s\n", ca.CKN, state, role)
			fmt.Fprintf(w, "    member identifier %s, message number %d, key server %s\n", ca.MI, ca.MN, ca.KeyServer)
			if ca.Start != "" || ca.End != "" {
				fmt.Fprintf(w, "    valid from %s until %s\n", or(ca.Start, "always"), or(ca.End, "never"))
			}
			if len(ca.Live)+len(ca.Potential) == 0 {
				fmt.Fprintln(w, "    no peer with this CKN and CAK")
				continue
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "    Peer\tSCI\tMI\tMN\tPriority\tSSCI")
			peers := func(kind string, ps []mka.PeerStatus) {
				for _, p := range ps {
					ssci := "-"
					if p.SSCI != 0 {
						ssci = fmt.Sprint(p.SSCI)
					}
					fmt.Fprintf(tw, "    %s\t%s\t%s\t%d\t%d\t%s\n", kind, p.SCI, p.MI, p.MN, p.Priority, ssci)
				}
			}
			peers("live", ca.Live)
			peers("potential", ca.Potential)
			tw.Flush()
		}
		for _, k := range []struct {
			name string
			k    *mka.KeyStatus
		}{{"latest", m.Latest}, {"old", m.Old}} {
			if k.k == nil {
				fmt.Fprintf(w, "  %s key: none\n", k.name)
				continue
			}
			tx := "receive only"
			if k.k.Transmit {
				tx = "transmit and receive"
			}
			ssci := ""
			if k.k.SSCI != 0 {
				ssci = fmt.Sprintf(", SSCI %d", k.k.SSCI)
			}
			fmt.Fprintf(w, "  %s key: KN %d AN %d (%s), key server MI %s, CKN %s, SAK %s%s, TX next PN %d, lowest acceptable PN %d, age %s\n",
				k.name, k.k.KN, k.k.AN, tx, k.k.KeyServerMI, k.k.CKN, k.k.SAK, ssci, k.k.NextPN, k.k.LowestPN, k.k.Age)
		}
		fmt.Fprintf(w, "  next rekey: %s\n", m.NextRekey)
		c := m.Counters
		fmt.Fprintf(w, "  MKPDUs sent %d, received %d, valid %d; SAKs generated %d, installed %d, retired %d; send errors %d; CA lost %d times\n",
			c.MKPDUsSent, c.MKPDUsReceived, c.MKPDUsValid, c.SAKsGenerated, c.SAKsInstalled, c.SAKsRetired, c.SendErrors, c.CALosses)
		fmt.Fprintln(w, "  MKPDUs dropped:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, d := range m.Drops {
			fmt.Fprintf(tw, "    %s\t%d\n", d.Reason, d.Count)
		}
		tw.Flush()
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
