// Package show renders the appliance's status for operators: the output
// of `show interfaces`, `show macsec` and `show counters`, the same on the
// CLI and from `secwire show` against a host daemon.
package show

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/secwire/secwire/firmware/supervisor"
)

// NoLinks is what the views say when no link is configured, rather than
// printing nothing.
const NoLinks = "no links configured ('configure', then 'set links NAME plain PORT', 'set links NAME line PORT' and a key chain)"

// noLinks prints NoLinks when st has no links, and reports it.
func noLinks(w io.Writer, st supervisor.Status) bool {
	if len(st.Links) == 0 {
		fmt.Fprintln(w, NoLinks)
		return true
	}
	return false
}

// Interfaces prints one line per port.
func Interfaces(w io.Writer, st supervisor.Status) {
	if noLinks(w, st) {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Interface\tRole\tCarrier\tAdmin\tMTU\tNeeded\tMAC\tLink\tDatapath")
	for _, l := range st.Links {
		for _, p := range []struct {
			role string
			s    supervisor.PortState
			need string
		}{{"plaintext", l.Plain, "-"}, {"line", l.Line, fmt.Sprint(l.LineMTUNeeded)}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.s.Name, p.role, updown(p.s.Carrier), updown(p.s.Up),
				p.s.MTU, p.need, p.s.MAC, l.Name, short(l.Datapath))
		}
	}
	tw.Flush()
	for _, l := range st.Links {
		stale(w, l)
		if l.Fault != "" {
			fmt.Fprintf(w, "link %s: plaintext port held down: %s\n", l.Name, l.Fault)
		}
		if l.Line.MTU < l.LineMTUNeeded {
			fmt.Fprintf(w, "link %s: line port %s MTU %d is below the %d needed; longer frames are dropped (OutPktsTooLong)\n",
				l.Name, l.Line.Name, l.Line.MTU, l.LineMTUNeeded)
		}
		fmt.Fprintf(w, "link %s: datapath: %s\n", l.Name, l.Datapath)
	}
}

// MACsec prints each SecY with its SCs and SAs.
func MACsec(w io.Writer, st supervisor.Status) {
	if noLinks(w, st) {
		return
	}
	for _, l := range st.Links {
		stale(w, l)
		fmt.Fprintf(w, "link %s (%s -> %s)\n", l.Name, l.Plain.Name, l.Line.Name)
		fmt.Fprintf(w, "  datapath: %s\n", l.Datapath)
		if l.InClear {
			fmt.Fprintf(w, "  !!! policy should-secure: NO SA IS UP, FRAMES CROSS THIS LINK IN CLEAR !!!\n")
		}
		if l.TxStopped != "" {
			fmt.Fprintf(w, "  !!! TRANSMISSION STOPPED: %s !!!\n", l.TxStopped)
		}
		fmt.Fprintf(w, "  cipher %s, policy %s, validate %s, replay window %d, send SCI %s\n",
			l.Cipher, l.Policy, l.Validate, l.ReplayWindow, yesno(l.SendSCI))
		protect := "encrypt"
		if l.IntegrityOnly {
			protect = "integrity only"
		} else if l.Offset != 0 {
			protect = fmt.Sprintf("encrypt, confidentiality offset %d", l.Offset)
		}
		fmt.Fprintf(w, "  protection %s, VLAN tags in clear %d\n", protect, l.VLANsInClear)
		if len(l.ProtocolsInClear) > 0 {
			fmt.Fprintf(w, "  protocols in clear (cross unprotected both ways):\n")
			for _, p := range l.ProtocolsInClear {
				fmt.Fprintf(w, "    %s\n", p)
			}
		}
		enc := "none"
		if l.EncodingSA >= 0 {
			enc = fmt.Sprint(l.EncodingSA)
		}
		fmt.Fprintf(w, "  TX SC %s, encoding SA %s\n", l.SCI, enc)
		for _, sa := range l.TxSAs {
			fmt.Fprintf(w, "    SA %d: next PN %d, key %s\n", sa.AN, sa.NextPN, sa.Key)
		}
		for _, sc := range l.RxSCs {
			fmt.Fprintf(w, "  RX SC %s\n", sc.SCI)
			for _, sa := range sc.SAs {
				fmt.Fprintf(w, "    SA %d: lowest PN %d, next PN %d, key %s\n", sa.AN, sa.LowestPN, sa.NextPN, sa.Key)
			}
		}
	}
}

// Counters prints the IEEE 802.1AE counters and the datapath's own.
func Counters(w io.Writer, st supervisor.Status) {
	if noLinks(w, st) {
		return
	}
	for _, l := range st.Links {
		stale(w, l)
		fmt.Fprintf(w, "link %s\n", l.Name)
		block(w, "  SecY", l.SecYCounters)
		block(w, "  TX SC "+l.SCI, l.TxSCCounters)
		for _, sa := range l.TxSAs {
			block(w, fmt.Sprintf("    TX SA %d", sa.AN), sa.Counters)
		}
		for _, sc := range l.RxSCs {
			block(w, "  RX SC "+sc.SCI, sc.Counters)
			for _, sa := range sc.SAs {
				block(w, fmt.Sprintf("    RX SA %d", sa.AN), sa.Counters)
			}
		}
		block(w, "  datapath", l.DatapathCounters)
	}
}

func block(w io.Writer, title string, cs supervisor.Counters) {
	fmt.Fprintln(w, title)
	indent := strings.Repeat(" ", len(title)-len(strings.TrimLeft(title, " "))+2)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, c := range cs {
		fmt.Fprintf(tw, "%s%s\t%d\t\n", indent, c.Name, c.Value)
	}
	tw.Flush()
}

func updown(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func short(s string) string {
	f, _, _ := strings.Cut(s, " ")
	return f
}

// stale warns that a link's status is its last answer, not a fresh one.
func stale(w io.Writer, l supervisor.LinkStatus) {
	if l.Stale != "" {
		fmt.Fprintf(w, "link %s: !!! NOT ANSWERING: %s\n", l.Name, l.Stale)
	}
}
