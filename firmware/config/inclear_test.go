package config

import (
	"strings"
	"testing"
)

func TestProtocolsInClear(t *testing.T) {
	cfg := func(datapath, list string) string {
		return `{"links": [{"name": "l", "plain": "p", "line": "q", "datapath": "` + datapath + `", "eapol_ethertype": "0x876f",
		  "mka": {"key_chain": [{"ckn": "0a0b", "cak": "` + strings.Repeat("11", 16) + `"}]},
		  "protocols_in_clear": [` + list + `]}]}`
	}
	good := `{"name": "lldp"}, {"name": "lacp"}, {"name": "pause"}, {"name": "ptp", "ethertype": "0x88f7", "destination": "01:1b:19:00:00:00"}`
	c, err := Parse([]byte(cfg("auto", good)))
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.Check(); len(errs) > 0 {
		t.Fatal(errs)
	}
	l := &c.Links[0]
	if l.InClearNames() != "lldp, lacp, pause, ptp" {
		t.Errorf("names %q", l.InClearNames())
	}
	r := l.InClearRules()
	if len(r) != 4 || r[0].EtherType != 0x88cc || len(r[0].DAs) != 3 || r[1].EtherType != 0x8809 || r[1].DAs[0].String() != "01:80:c2:00:00:02" ||
		r[2].EtherType != 0x8808 || r[3].EtherType != 0x88f7 || r[3].DAs[0].String() != "01:1b:19:00:00:00" {
		t.Errorf("rules %+v", r)
	}

	bad := `{"name": "lldp", "ethertype": "0x88cc"}, {"name": "lldp"}, {"name": "Bad Name"},
	  {"name": "mine"}, {"name": "ip", "ethertype": "0x0800", "destination": "02:00:00:00:00:01"},
	  {"name": "tags", "ethertype": "0x8100", "destination": "01:00:00:00:00:01"},
	  {"name": "macsec", "ethertype": "0x88e5", "destination": "01:00:00:00:00:01"},
	  {"name": "mka", "ethertype": "0x876f", "destination": "01:80:c2:00:00:03"},
	  {"name": "len", "ethertype": "0x0100", "destination": "zz"}`
	all := problems(t, cfg("kernel", bad))
	for _, want := range []string{
		"links[0].protocols_in_clear[0]: lldp is built in: leave out ethertype and destination",
		"links[0].protocols_in_clear[1].name: lldp is listed twice",
		`links[0].protocols_in_clear[2].name: "Bad Name"`,
		"links[0].protocols_in_clear[3].ethertype: missing",
		"links[0].protocols_in_clear[3].destination: missing",
		"links[0].protocols_in_clear[4].destination: 02:00:00:00:00:01 is a unicast address",
		"links[0].protocols_in_clear[5].ethertype: 0x8100 (MACsec or a VLAN tag) can never cross in clear",
		"links[0].protocols_in_clear[6].ethertype: 0x88e5",
		"links[0].protocols_in_clear[7].ethertype: 0x876f is key agreement's EtherType",
		"links[0].protocols_in_clear[8].ethertype:",
		`links[0].protocols_in_clear[8].destination: "zz" is not a MAC address`,
		"links[0].datapath: kernel cannot pass protocols in clear",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}
