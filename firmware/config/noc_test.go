package config

import (
	"strings"
	"testing"
)

func TestCheckNOC(t *testing.T) {
	good, err := Parse([]byte(`{"system": {
		"ntp": {"server": [{"address": "192.0.2.123"}, {"address": "2001:db8::123"}]},
		"syslog": {"buffer": 50, "host": [{"address": "192.0.2.50"},
			{"address": "192.0.2.51", "transport": "tcp", "port": 10514, "severity": "warning"},
			{"address": "192.0.2.52", "transport": "tls", "ca_file": "ca.pem", "server_name": "logs.example"}]},
		"metrics": {"port": 9100}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if errs := good.Check(); len(errs) > 0 {
		t.Fatalf("a good NOC config: %v", errs)
	}
	h := good.System.Syslog.Host
	if h[0].PortNumber() != 514 || h[2].PortNumber() != 6514 || h[1].SeverityName() != "warning" || h[0].TransportName() != "udp" ||
		h[2].CAPath("/config") != "/config/ca.pem" || good.System.Syslog.BufferSize() != 50 {
		t.Errorf("defaults: %+v", h)
	}
	got := problems(t, `{"system": {
		"ntp": {"server": [{"address": "pool.ntp.org"}, {"address": "192.0.2.1"}, {"address": "192.0.2.1"}]},
		"syslog": {"buffer": -1, "host": [{"address": "192.0.2.50", "transport": "relp", "severity": "loud", "port": 70000},
			{"address": "192.0.2.50", "ca_file": "x.pem"}, {"address": "192.0.2.52", "transport": "tls"}]},
		"metrics": {"port": 22}}}`)
	for _, want := range []string{
		`system.ntp.server[0].address: "pool.ntp.org": want an IP address (the appliance has no DNS resolver)`,
		`system.ntp.server[2].address: 192.0.2.1 is listed twice`,
		`system.syslog.buffer: -1: want 1..100000`,
		`system.syslog.host[0].transport: "relp": want udp, tcp, tls`,
		`system.syslog.host[0].severity: "loud": want one of emergency,`,
		`system.syslog.host[0].port: 70000: want 1..65535`,
		`system.syslog.host[1].address: 192.0.2.50 is also host[0]`,
		`system.syslog.host[1].transport: ca_file and server_name are for transport tls`,
		`system.syslog.host[2].ca_file: missing: tls needs the CA certificate`,
		`system.metrics.port: 22 is the SSH port`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
