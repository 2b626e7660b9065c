// Package metrics is the Prometheus endpoint (prometheus/client_golang):
// per link the IEEE 802.1AE counters under IEEE8021-SECY-MIB names, per
// CA the MKA state, the datapath in use, the time sync state, the
// syslog collectors and the software version. Counters never go back:
// neither `clear counters` (which only resets the CLI's view) nor a
// rekey nor a link restart at a commit resets them.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/firmware/timesync"
	"github.com/secwire/secwire/mgmt/syslog"
)

// Sources are what the endpoint exports; nil functions export nothing.
type Sources struct {
	Links   func() supervisor.Status // raw counters, not since clear counters
	Time    func() timesync.Status
	Syslog  func() []syslog.HostStatus
	Version string
	Slot    func() string // the software slot booted, "" on a host
}

// Collector is a prometheus.Collector over Sources.
type Collector struct {
	src   Sources
	mu    sync.Mutex
	mono  *monotonic
	known map[seriesKey]sample // name, help and labels of every counter series seen
}

// NewCollector makes a collector.
func NewCollector(src Sources) *Collector {
	return &Collector{src: src, mono: newMonotonic(), known: map[seriesKey]sample{}}
}

// Describe sends nothing: the series depend on the links and CAs, so the
// collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect exports one scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sample
	gauge := func(name, help string, v float64, labels ...string) {
		out = append(out, sample{name: name, help: help, labels: labels, value: v})
	}
	slot := ""
	if c.src.Slot != nil {
		slot = c.src.Slot()
	}
	gauge("secwire_software_info", "The firmware version and the software slot it booted from", 1, "version", c.src.Version, "slot", slot)
	if c.src.Links != nil {
		out = append(out, c.linkSamples(c.src.Links())...)
	}
	if c.src.Time != nil {
		t := c.src.Time()
		gauge("secwire_time_synchronized", "1 once the clock was synchronised by NTP (0: key chain start/end times are unreliable)", b2f(t.Synchronized))
		if !t.LastSync.IsZero() {
			gauge("secwire_time_offset_seconds", "Clock offset measured at the last synchronisation (server minus this box)", t.Offset.Seconds())
			gauge("secwire_time_stratum", "NTP stratum of the source of the last synchronisation", float64(t.Stratum))
			gauge("secwire_time_last_sync_timestamp_seconds", "When the clock was last synchronised (Unix time)", float64(t.LastSync.UnixNano())/1e9)
		}
		for _, s := range t.Servers {
			gauge("secwire_ntp_server_reachable", "1 when the NTP server answered the last query", b2f(s.Reachable), "server", s.Address)
		}
	}
	if c.src.Syslog != nil {
		for _, h := range c.src.Syslog() {
			gauge("secwire_syslog_collector_up", "1 while the collector is connected (TCP, TLS) or takes datagrams (UDP)", b2f(h.State == "connected" || h.State == "sending"), "collector", h.Collector)
			gauge("secwire_syslog_messages_queued", "Messages waiting for the collector", float64(h.Queued), "collector", h.Collector)
			out = append(out,
				sample{name: "secwire_syslog_messages_sent_total", help: "Messages sent to the collector", counter: true, labels: []string{"collector", h.Collector}, value: float64(h.Sent)},
				sample{name: "secwire_syslog_messages_dropped_total", help: "Messages dropped: buffer full while the collector was down, or refused datagrams", counter: true, labels: []string{"collector", h.Collector}, value: float64(h.Dropped)})
		}
	}
	emit(ch, out)
}

// Server serves the collector on the management address.
type Server struct {
	Collector *Collector
	Log       *slog.Logger

	mu      sync.Mutex
	addr    string // listening on, "" when off
	stop    context.CancelFunc
	lastErr string
}

// addrFor is where c wants the endpoint: the management address and the
// metrics port, all addresses without a management address; "" when off.
func addrFor(c *config.Config) string {
	m := c.System.Metrics
	if m == nil {
		return ""
	}
	host := ""
	if mg := c.System.Management; mg != nil {
		host = mg.Address.Addr().String()
	}
	return net.JoinHostPort(host, strconv.Itoa(m.Port))
}

// Check refuses a metrics port that another program holds. An address
// the box does not have yet (a management address this commit sets) is
// left to Apply.
func (s *Server) Check(c *config.Config) error {
	addr := addrFor(c)
	s.mu.Lock()
	same := addr == s.addr
	s.mu.Unlock()
	if addr == "" || same {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("system metrics port %d: %s is in use by another program; choose another port", c.System.Metrics.Port, addr)
	}
	if err == nil {
		ln.Close()
	}
	return nil
}

// Apply starts, moves or stops the endpoint to match c. Errors are
// logged and shown (Status); the links never depend on it.
func (s *Server) Apply(c *config.Config) {
	addr := addrFor(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == s.addr && (addr == "" || s.lastErr == "") {
		return
	}
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	s.addr, s.lastErr = addr, ""
	if addr == "" {
		return
	}
	var ln net.Listener
	var err error
	for range 10 { // the previous listener may still be closing
		if ln, err = net.Listen("tcp", addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.lastErr = fmt.Sprintf("cannot listen on %s: %v", addr, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			s.lastErr = fmt.Sprintf("%s is in use by another program: choose another system metrics port", addr)
		}
		s.Log.Error("metrics endpoint: " + s.lastErr)
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	s.Log.Info("metrics endpoint listening", "address", addr)
}

// Close stops the endpoint.
func (s *Server) Close() { s.Apply(&config.Config{}) }

// Status is the endpoint for `show system metrics`.
type Status struct {
	Address string `json:"address,omitempty"` // "" when off
	Error   string `json:"error,omitempty"`
}

// Status reports the endpoint.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Address: s.addr, Error: s.lastErr}
}

// SetLinks sets the links' source (the commit manager's RawStatus).
func (c *Collector) SetLinks(f func() supervisor.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src.Links = f
}
