package noc

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// ShowTime prints `show system time`: the clock, whether and from where
// it was synchronised, and each server. Ages are on the box's clock.
func ShowTime(w io.Writer, st Status) {
	t := st.Time
	now := t.Now
	fmt.Fprintf(w, "Time: %s\n", t.Now.UTC().Format("2006-01-02 15:04:05 UTC"))
	if !t.SystemClock {
		fmt.Fprintln(w, "Clock: the daemon's own view (the host's clock is never set)")
	}
	switch {
	case t.Synchronized && !t.LastSync.IsZero():
		auth := ""
		if t.SourceNTS {
			auth = " (NTS)"
		}
		fmt.Fprintf(w, "Synchronised: yes, source %s%s, stratum %d, offset %s, last sync %s ago\n",
			t.Source, auth, t.Stratum, t.Offset.Round(time.Microsecond), now.Sub(t.LastSync).Round(time.Second))
	case t.Synchronized:
		fmt.Fprintln(w, "Synchronised: yes, by the host (no system ntp server configured)")
	default:
		fmt.Fprintln(w, "Synchronised: NO: key chain start/end times are unreliable until it is")
	}
	if !t.RTCWritten.IsZero() {
		fmt.Fprintf(w, "RTC: written %s ago\n", now.Sub(t.RTCWritten).Round(time.Second))
	}
	if t.RTCError != "" {
		fmt.Fprintf(w, "RTC: ERROR: %s\n", t.RTCError)
	}
	if len(t.Servers) == 0 {
		fmt.Fprintln(w, "NTP servers: none configured (set system ntp server ADDRESS)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Server\tReach\tStratum\tOffset\tDelay\tLast answer\tError")
	for _, s := range t.Servers {
		reach, last := "no", "never"
		if s.Reachable {
			reach = "yes"
			if s.NTS {
				reach = "yes, NTS"
			}
		}
		if !s.LastAnswer.IsZero() {
			last = now.Sub(s.LastAnswer).Round(time.Second).String() + " ago"
		}
		stratum, off, rtt := "-", "-", "-"
		if s.Reachable {
			stratum, off, rtt = fmt.Sprint(s.Stratum), s.Offset.Round(time.Microsecond).String(), s.RTT.Round(time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Address, reach, stratum, off, rtt, last, or(s.Error, "-"))
	}
	tw.Flush()
}

// ShowSyslog prints `show system syslog`: each collector's state, queue
// and dropped messages.
func ShowSyslog(w io.Writer, st Status, now time.Time) {
	if len(st.Syslog) == 0 {
		fmt.Fprintln(w, "No syslog collector configured (set system syslog host ADDRESS)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Collector\tSeverity\tState\tSince\tQueued\tSent\tDropped\tLast error")
	for _, h := range st.Syslog {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%d/%d\t%d\t%d\t%s\n", h.Collector, h.Severity, h.State,
			now.Sub(h.Since).Round(time.Second), h.Queued, h.Buffer, h.Sent, h.Dropped, or(h.LastError, "-"))
	}
	tw.Flush()
}

// ShowMetrics prints `show system metrics`.
func ShowMetrics(w io.Writer, st Status) {
	m := st.Metrics
	switch {
	case m.Error != "":
		fmt.Fprintf(w, "Metrics endpoint: ERROR: %s\n", m.Error)
	case m.Address == "":
		fmt.Fprintln(w, "Metrics endpoint: off (set system metrics port 9100)")
	default:
		fmt.Fprintf(w, "Metrics endpoint: http://%s/metrics (Prometheus)\n", m.Address)
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
