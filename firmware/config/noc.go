package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
)

// The settings a network operations centre needs: clock synchronisation,
// remote syslog and the metrics endpoint (system ntp, syslog, metrics).

// NTP synchronises the clock.
type NTP struct {
	// NTP server by IP address (give several).
	// Default: none
	//
	// Up to 8, by IP address (the appliance has no DNS resolver).
	Server []NTPServer `json:"server"`
}

// NTPServer is one NTP server, by IP address (the appliance has no DNS
// resolver).
type NTPServer struct {
	// The server's IP address.
	// Default: (required)
	Address netip.Addr `json:"address"`
	// Require Network Time Security (RFC 8915) from this server.
	// Default: `false`
	//
	// The server's answers are authenticated, and it is never asked
	// without NTS.
	NTS bool `json:"nts,omitempty"`
	// NTS: CA certificate (PEM) on the config partition that signed the server's.
	// Default: the system's CAs
	//
	// The appliance has no system CAs: give one.
	CAFile string `json:"ca_file,omitempty"`
	// NTS: name in the server's certificate (default its address).
	// Default: the address
	ServerName string `json:"server_name,omitempty"`
}

// Syslog sends the system log to collectors.
type Syslog struct {
	// Collector by IP address.
	// Default: none
	Host []SyslogHost `json:"host"`
	// Messages kept per TCP/TLS collector while it is down, 1..100000 (default 1000).
	// Default: `1000`
	//
	// Beyond it the oldest are dropped (and counted).
	Buffer int `json:"buffer,omitempty"`
}

// SyslogHost is one collector.
type SyslogHost struct {
	// The collector's IP address.
	// Default: (required)
	//
	// One entry per address.
	Address netip.Addr `json:"address"`
	// Collector port (default 514, tls 6514).
	// Default: 514, 6514 for `tls`
	Port int `json:"port,omitempty"`
	// udp (default), tcp or tls.
	// Default: `udp`
	//
	// `udp` is RFC 5426, `tcp` RFC 6587 (octet counting), `tls` RFC 5425.
	Transport Transport `json:"transport,omitempty"`
	// Lowest severity sent (default info).
	// Default: `info`
	Severity Severity `json:"severity,omitempty"`
	// TLS: CA certificate (PEM) on the config partition that signed the collector's.
	// Default: (`tls` only, required)
	//
	// A file relative to the config file.
	CAFile string `json:"ca_file,omitempty"`
	// TLS: name in the collector's certificate (default its address).
	// Default: the address
	ServerName string `json:"server_name,omitempty"`
}

// Metrics is the Prometheus endpoint on the management address.
type Metrics struct {
	// TCP port, such as 9100.
	// Default: (required)
	Port int `json:"port"`
}

// Defaults of the NOC settings.
const (
	DefaultSyslogBuffer = 1000
	DefaultSyslogPort   = 514
	DefaultSyslogTLS    = 6514
)

// TransportName is the host's transport, udp when unset.
func (h *SyslogHost) TransportName() Transport {
	if h.Transport == "" {
		return TransportUDP
	}
	return h.Transport
}

// PortNumber is the host's port or the transport's default.
func (h *SyslogHost) PortNumber() int {
	switch {
	case h.Port != 0:
		return h.Port
	case h.Transport == TransportTLS:
		return DefaultSyslogTLS
	}
	return DefaultSyslogPort
}

// SeverityName is the lowest severity sent to the host.
func (h *SyslogHost) SeverityName() Severity {
	if h.Severity == "" {
		return DefaultSeverity
	}
	return h.Severity
}

// CAPath is the CA file's path, relative names taken from dir (the
// config's directory).
func (h *SyslogHost) CAPath(dir string) string {
	if h.CAFile == "" || filepath.IsAbs(h.CAFile) {
		return h.CAFile
	}
	return filepath.Join(dir, h.CAFile)
}

// BufferSize is the per-collector buffer in messages.
func (s *Syslog) BufferSize() int {
	if s.Buffer == 0 {
		return DefaultSyslogBuffer
	}
	return s.Buffer
}

func checkNOC(s *System, add func(string, string, ...any)) {
	if n := s.NTP; n != nil {
		seen := map[netip.Addr]bool{}
		for i, srv := range n.Server {
			p := fmt.Sprintf("system.ntp.server[%d].address", i)
			switch a := srv.Address; {
			case !a.IsValid() || a.IsUnspecified() || a.IsMulticast():
				add(p, "%q: want the server's IP address (the appliance has no DNS resolver)", addrString(a))
			case seen[a]:
				add(p, "%s is listed twice", a)
			}
			seen[srv.Address] = true
			if !srv.NTS && (srv.CAFile != "" || srv.ServerName != "") {
				add(fmt.Sprintf("system.ntp.server[%d].nts", i), "ca_file and server_name are for NTS servers: set nts")
			}
		}
		if len(n.Server) > 8 {
			add("system.ntp.server", "%d servers: at most 8", len(n.Server))
		}
	}
	if sl := s.Syslog; sl != nil {
		if sl.Buffer < 0 || sl.Buffer > 100000 {
			add("system.syslog.buffer", "%d: want 1..100000 messages (0: the default, %d)", sl.Buffer, DefaultSyslogBuffer)
		}
		seen := map[netip.Addr]int{}
		for i := range sl.Host {
			h := &sl.Host[i]
			p := fmt.Sprintf("system.syslog.host[%d]", i)
			a := h.Address
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				add(p+".address", "%q: want the collector's IP address (the appliance has no DNS resolver)", addrString(a))
			} else if j, dup := seen[a]; dup {
				add(p+".address", "%s is also host[%d]", a, j)
			}
			seen[a] = i
			if h.Port < 0 || h.Port > 65535 {
				add(p+".port", "%d: want 1..65535 (0: the default, 514 or 6514 for tls)", h.Port)
			}
			if h.Transport == TransportTLS && h.CAFile == "" {
				add(p+".ca_file", "missing: tls needs the CA certificate (PEM) that signed the collector's certificate, a file on the config partition")
			}
			if h.Transport != TransportTLS && (h.CAFile != "" || h.ServerName != "") {
				add(p+".transport", "ca_file and server_name are for transport tls")
			}
		}
	}
	if m := s.Metrics; m != nil {
		if m.Port < 1 || m.Port > 65535 {
			add("system.metrics.port", "%d: want 1..65535, such as 9100", m.Port)
		} else if m.Port == s.SSHPort() {
			add("system.metrics.port", "%d is the SSH port", m.Port)
		}
	}
}

// addrString is an address as the config writes it, "" when unset.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
