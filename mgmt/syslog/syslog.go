// Package syslog sends the system log to remote collectors in RFC 5424
// format, over UDP (RFC 5426), TCP (RFC 6587, octet counting) or TLS
// (RFC 5425). While a TCP or TLS collector is unreachable its messages
// wait in a bounded buffer and go out when it returns; beyond the bound
// the oldest are dropped, counted, and the collector is told how many.
package syslog

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
)

// AppName is the APP-NAME of every message.
const AppName = "secwire"

// Options tune a Forwarder.
type Options struct {
	// ConfigDir is where relative CA file names are found (the config
	// partition).
	ConfigDir string
	// Log receives the forwarder's own events (a collector lost or back);
	// they are forwarded too.
	Log *slog.Logger
	// Now stamps the messages; nil is the record's time.
	Now func() time.Time
	// Retry is the longest wait between connection attempts to a TCP or
	// TLS collector; 0 is 8 s.
	Retry time.Duration
}

// Forwarder sends log records to the configured collectors.
type Forwarder struct {
	opts Options
	pid  int

	mu       sync.Mutex
	hostname string
	minLevel slog.Level // the lowest level any collector wants
	any      bool       // a collector is configured
	senders  []*sender
	secrets  map[[32]byte]bool // SHA-256 of each configured key, in hex
}

// New makes a forwarder with no collectors; Apply configures them.
func New(o Options) *Forwarder {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Retry == 0 {
		o.Retry = 8 * time.Second
	}
	return &Forwarder{opts: o, pid: os.Getpid()}
}

// Handler returns a handler that passes records to next and also to the
// collectors.
func (f *Forwarder) Handler(next slog.Handler) slog.Handler { return &handler{f: f, next: next} }

// SetLog sets the logger of the forwarder's own events (it is usually
// built on the forwarder's Handler, after New).
func (f *Forwarder) SetLog(l *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts.Log = l
}

// levelFor is the slog level that an RFC 5424 severity admits: the
// forwarder sends records of this level and above.
func levelFor(sev int) slog.Level {
	switch {
	case sev <= 3:
		return slog.LevelError
	case sev <= 5:
		return slog.LevelWarn
	case sev == 6:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func (f *Forwarder) wants(l slog.Level) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.any && l >= f.minLevel
}

// Check reports what would keep the collectors of c from working that
// a commit can know: a TLS CA file that is missing or holds no
// certificate.
func (f *Forwarder) Check(c *config.Config) error {
	if c.System.Syslog == nil {
		return nil
	}
	var errs []error
	for _, h := range c.System.Syslog.Host {
		if h.Transport == "tls" {
			if _, err := loadCA(h.CAPath(f.opts.ConfigDir)); err != nil {
				errs = append(errs, fmt.Errorf("system syslog host %s ca-file: %w", h.Address, err))
			}
		}
	}
	return errors.Join(errs...)
}

func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (copy the CA certificate, PEM, to the config partition)", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return p, nil
}

// Apply makes the collectors those of c. A collector whose settings did
// not change keeps its connection and buffered messages.
func (f *Forwarder) Apply(c *config.Config) {
	secrets := keyHashes(c)
	host := c.System.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var want []config.SyslogHost
	buffer := config.DefaultSyslogBuffer
	if s := c.System.Syslog; s != nil {
		want, buffer = s.Host, s.BufferSize()
	}
	f.mu.Lock()
	f.hostname, f.secrets = host, secrets
	var keep, stop []*sender
	for _, s := range f.senders {
		if slices.ContainsFunc(want, func(h config.SyslogHost) bool { return h == s.cfg && buffer == s.buffer }) {
			keep = append(keep, s)
		} else {
			stop = append(stop, s)
		}
	}
	for _, h := range want {
		if !slices.ContainsFunc(keep, func(s *sender) bool { return s.cfg == h }) {
			keep = append(keep, f.newSender(h, buffer))
		}
	}
	f.senders = keep
	f.any = len(keep) > 0
	f.minLevel = slog.LevelError
	for _, s := range keep {
		f.minLevel = min(f.minLevel, s.level)
	}
	f.mu.Unlock()
	for _, s := range stop {
		s.stop()
	}
}

// Close stops every collector's sender.
func (f *Forwarder) Close() { f.Apply(&config.Config{}) }

func (f *Forwarder) enqueue(e entry) {
	if f.opts.Now != nil {
		e.time = f.opts.Now()
	}
	f.mu.Lock()
	e.text = scrub(e.text, func(h [32]byte) bool { return f.secrets[h] })
	host, senders := f.hostname, f.senders
	f.mu.Unlock()
	for _, s := range senders {
		if e.severity <= s.severity {
			s.put(e.format(host, AppName, f.pid, s.maxLen()))
		}
	}
}

// dropNotice is the message that tells a collector how many messages it
// missed. Called with s.mu held.
func (f *Forwarder) dropNotice(s *sender) []byte {
	e := entry{time: time.Now(), severity: 4, facility: facilityDaemon, msgID: "system",
		text: fmt.Sprintf("syslog: messages to this collector were dropped while it was unreachable (buffer full) collector=%s dropped=%d buffer=%d", s.name, s.unnoticed, s.buffer)}
	if f.opts.Now != nil {
		e.time = f.opts.Now()
	}
	f.mu.Lock()
	host := f.hostname
	f.mu.Unlock()
	return e.format(host, AppName, f.pid, s.maxLen())
}

// HostStatus is one collector as `show system syslog` shows it.
type HostStatus struct {
	Collector string    `json:"collector"` // address:port/transport
	Severity  string    `json:"severity"`
	State     string    `json:"state"` // connected, connecting, unreachable, sending (udp)
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Queued    int       `json:"queued"`
	Buffer    int       `json:"buffer"`
	Sent      uint64    `json:"sent"`
	Dropped   uint64    `json:"dropped"`
}

// Status reports every collector.
func (f *Forwarder) Status() []HostStatus {
	f.mu.Lock()
	senders := f.senders
	f.mu.Unlock()
	out := []HostStatus{}
	for _, s := range senders {
		out = append(out, s.status())
	}
	return out
}

// keyHashes hashes every key of c (CAKs, fallback CAKs, static SAKs) as
// lower-case hex, for scrub.
func keyHashes(c *config.Config) map[[32]byte]bool {
	out := map[[32]byte]bool{}
	add := func(k macsec.Key, err error) {
		if err == nil {
			out[sha256.Sum256([]byte(fmt.Sprintf("%x", k.Bytes())))] = true
			k.Wipe()
		}
	}
	for _, l := range c.Links {
		if m := l.MKA; m != nil {
			for i := range m.KeyChain {
				add(m.KeyChain[i].LoadCAK(c.KeyDir()))
			}
			if m.Fallback != nil {
				add(m.Fallback.LoadCAK(c.KeyDir()))
			}
		}
		if s := l.Static; s != nil {
			add(s.TX.LoadKey(l.Suite(), c.KeyDir()))
			for _, sc := range s.RX {
				for i := range sc.SAs {
					add(sc.SAs[i].LoadKey(l.Suite(), c.KeyDir()))
				}
			}
		}
	}
	return out
}

// tlsConfig is the client side of RFC 5425: the collector's certificate
// must chain to the configured CA and name the collector.
func tlsConfig(h config.SyslogHost, dir string) (*tls.Config, error) {
	pool, err := loadCA(h.CAPath(dir))
	if err != nil {
		return nil, err
	}
	name := h.ServerName
	if name == "" {
		name = h.Address.String()
	}
	return &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

func describe(h config.SyslogHost) string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(h.Address, uint16(h.PortNumber())), h.TransportName())
}
