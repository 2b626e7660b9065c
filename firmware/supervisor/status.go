package supervisor

import (
	"os"

	"github.com/secwire/secwire/firmware/mka"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

// Status is what the management plane shows. It never holds key
// material: SAs are shown by AN, PN and key fingerprint.
type Status struct {
	Hostname string        `json:"hostname"`
	Uptime   time.Duration `json:"uptime_ns"`
	Links    []LinkStatus  `json:"links"`
}

// LinkStatus is one link.
type LinkStatus struct {
	Name             string      `json:"name"`
	Plain            PortState   `json:"plain"`
	Line             PortState   `json:"line"`
	Datapath         string      `json:"datapath"`
	Policy           string      `json:"policy"`
	InClear          bool        `json:"in_clear"` // should-secure and frames are crossing unprotected now
	Fault            string      `json:"fault,omitempty"`
	LineMTUNeeded    int         `json:"line_mtu_needed"`
	Cipher           string      `json:"cipher"`
	SCI              string      `json:"sci"`
	SendSCI          bool        `json:"send_sci"`
	Validate         string      `json:"validate"`
	ReplayWindow     uint32      `json:"replay_window"`
	Offset           int         `json:"confidentiality_offset"`
	IntegrityOnly    bool        `json:"integrity_only"`
	VLANsInClear     int         `json:"vlans_in_clear"`
	EncodingSA       int         `json:"encoding_sa"`
	TxSAs            []SAState   `json:"tx_sas"`
	RxSCs            []SCState   `json:"rx_scs"`
	SecYCounters     Counters    `json:"secy_counters"`
	TxSCCounters     Counters    `json:"tx_sc_counters"`
	DatapathCounters Counters    `json:"datapath_counters"`
	MKA              *mka.Status `json:"mka,omitempty"`
}

// PortState is an interface as the kernel reports it.
type PortState struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Up      bool   `json:"up"`
	Carrier bool   `json:"carrier"`
	MTU     int    `json:"mtu"`
	Speed   int    `json:"speed_mbps"`
}

// SAState is one SA.
type SAState struct {
	AN       uint8    `json:"an"`
	NextPN   uint64   `json:"next_pn"`
	LowestPN uint64   `json:"lowest_pn,omitempty"`
	Key      string   `json:"key_fingerprint"`
	Counters Counters `json:"counters"`
}

// SCState is one receive SC.
type SCState struct {
	SCI      string    `json:"sci"`
	SAs      []SAState `json:"sas"`
	Counters Counters  `json:"counters"`
}

// Counter is one named counter; Counters keep the IEEE 802.1AE order.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Counters is an ordered list of counters.
type Counters []Counter

// counters reads every atomic.Uint64 field of a stats struct, by name.
func counters(v any) Counters {
	rv := reflect.ValueOf(v).Elem()
	var out Counters
	for i := 0; i < rv.NumField(); i++ {
		if c, ok := rv.Field(i).Addr().Interface().(*atomic.Uint64); ok {
			out = append(out, Counter{rv.Type().Field(i).Name, c.Load()})
		}
	}
	return out
}

// Status reports every link.
func (s *Supervisor) Status() Status {
	h, _ := os.Hostname()
	st := Status{Hostname: h, Uptime: time.Since(s.start).Round(time.Second)}
	for _, l := range s.links {
		st.Links = append(st.Links, l.status())
	}
	return st
}

func (l *link) status() LinkStatus {
	c := l.secy.Config()
	l.mu.Lock()
	fault := l.fault
	l.mu.Unlock()
	ls := LinkStatus{
		Name: l.cfg.Name, Plain: port(l.cfg.Plain), Line: port(l.cfg.Line),
		Datapath: l.datapath, Policy: "must-secure", Fault: fault,
		LineMTUNeeded: l.cfg.LineMTU(), Cipher: c.Suite.String(), SCI: c.SCI.String(),
		SendSCI: c.SendSCI, Validate: c.Validate.String(), ReplayWindow: c.ReplayWindow,
		Offset: c.Offset, IntegrityOnly: c.IntegrityOnly, VLANsInClear: l.cfg.VLANsInClear,
		EncodingSA:   l.secy.EncodingSA(),
		SecYCounters: counters(&l.secy.Stats), TxSCCounters: counters(&l.secy.TxSC),
		DatapathCounters: counters(&l.engine.Stats),
	}
	if l.kay != nil {
		m := l.kay.Status()
		ls.MKA = &m
	}
	if l.cfg.ShouldSecure() {
		ls.Policy = "should-secure"
		ls.InClear = !l.secured()
	}
	for an := range uint8(4) {
		if sa := l.secy.TxSA(an); sa != nil {
			ls.TxSAs = append(ls.TxSAs, SAState{AN: an, NextPN: sa.NextPN(), Key: sa.KeyFingerprint(), Counters: counters(&sa.Stats)})
		}
	}
	for _, sc := range l.secy.RxSCs() {
		scs := SCState{SCI: sc.SCI.String(), Counters: counters(&sc.Stats)}
		for an := range uint8(4) {
			if sa := sc.SA(an); sa != nil {
				scs.SAs = append(scs.SAs, SAState{AN: an, NextPN: sa.NextPN(), LowestPN: sa.LowestPN(), Key: sa.KeyFingerprint(), Counters: counters(&sa.Stats)})
			}
		}
		ls.RxSCs = append(ls.RxSCs, scs)
	}
	return ls
}

func port(name string) PortState {
	p := PortState{Name: name}
	read := func(attr string) string {
		b, _ := os.ReadFile("/sys/class/net/" + name + "/" + attr)
		return strings.TrimSpace(string(b))
	}
	p.MAC = read("address")
	p.Up = read("operstate") == "up" || read("flags") != "" && flagsUp(read("flags"))
	p.Carrier = read("carrier") == "1"
	p.MTU = atoi(read("mtu"))
	p.Speed = atoi(read("speed"))
	return p
}

func flagsUp(hex string) bool {
	var v int
	for _, r := range strings.TrimPrefix(hex, "0x") {
		v <<= 4
		switch {
		case r >= '0' && r <= '9':
			v |= int(r - '0')
		case r >= 'a' && r <= 'f':
			v |= int(r-'a') + 10
		}
	}
	return v&1 != 0 // IFF_UP
}

func atoi(s string) int {
	n := 0
	neg := strings.HasPrefix(s, "-")
	for _, r := range strings.TrimPrefix(s, "-") {
		if r < '0' || r > '9' {
			return 0
		}
		n = n*10 + int(r-'0')
	}
	if neg {
		return 0 // unknown speed
	}
	return n
}
