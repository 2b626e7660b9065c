package supervisor

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/mka"
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
	Name     string    `json:"name"`
	Plain    PortState `json:"plain"`
	Line     PortState `json:"line"`
	Backend  string    `json:"backend"` // offload-mac, offload-phy, kernel or software
	Datapath string    `json:"datapath"`
	Policy   string    `json:"policy"`
	InClear  bool      `json:"in_clear"` // should-secure and frames are crossing unprotected now
	Fault    string    `json:"fault,omitempty"`
	// TxStopped is why the static-key PN guard stopped or holds
	// transmission.
	TxStopped string `json:"tx_stopped,omitempty"`
	// Diagnosis names the most likely reason the link is not secured, or
	// why data frames fail validation although it is.
	Diagnosis        string      `json:"diagnosis,omitempty"`
	LineMTUNeeded    int         `json:"line_mtu_needed"`
	Cipher           string      `json:"cipher"`
	SCI              string      `json:"sci"`
	SendSCI          bool        `json:"send_sci"`
	Validate         string      `json:"validate"`
	ReplayWindow     uint32      `json:"replay_window"`
	Offset           int         `json:"confidentiality_offset"`
	IntegrityOnly    bool        `json:"integrity_only"`
	VLANsInClear     int         `json:"vlans_in_clear"`
	ProtocolsInClear []string    `json:"protocols_in_clear,omitempty"` // exceptions in force, with what they match
	EncodingSA       int         `json:"encoding_sa"`
	TxSAs            []SAState   `json:"tx_sas"`
	RxSCs            []SCState   `json:"rx_scs"`
	SecYCounters     Counters    `json:"secy_counters"`
	TxSCCounters     Counters    `json:"tx_sc_counters"`
	DatapathCounters Counters    `json:"datapath_counters"`
	MKA              *mka.Status `json:"mka,omitempty"`
	// ClockWarning says that key chain start/end times are unreliable
	// because the clock was never synchronised.
	ClockWarning string `json:"clock_warning,omitempty"`
	// Stale is set when a part of the link (its key agreement or its
	// datapath) did not answer in time: the rest is the last status it
	// gave, and Stale says since when.
	Stale string `json:"stale,omitempty"`
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

// statusBudget is how long Status waits for a link's parts to answer
// before it shows their last answer: `show` must answer within a second
// even when a KaY or a datapath is wedged.
const statusBudget = 500 * time.Millisecond

// Status reports every link. It never waits for a link longer than
// statusBudget, nor for an update or a stop in progress.
func (s *Supervisor) Status() Status {
	h, _ := os.Hostname()
	st := Status{Hostname: h, Uptime: s.opts.Now().Sub(s.start).Round(time.Second)}
	for _, ls := range s.readAll() {
		s.sinceClear(&ls)
		st.Links = append(st.Links, ls)
	}
	return st
}

// RawStatus is Status with the counters as the datapath keeps them, not
// reset by ClearCounters: what the metrics endpoint exports.
func (s *Supervisor) RawStatus() Status {
	st := Status{Uptime: s.opts.Now().Sub(s.start).Round(time.Second)}
	st.Hostname, _ = os.Hostname()
	st.Links = s.readAll()
	return st
}

// readAll reads every link's status at once, within one statusBudget.
func (s *Supervisor) readAll() []LinkStatus {
	links := s.current()
	out := make([]LinkStatus, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], _ = l.reader.read(l, statusBudget)
			out[i].ClockWarning = s.clockWarning(l.cfg)
		}()
	}
	wg.Wait()
	return out
}

// statusReader reads a link's status on a goroutine of its own, one read
// at a time, so a caller can stop waiting for a wedged part: it gets the
// last complete status instead, marked stale. A wedged part costs one
// goroutine, however often the status is asked for.
type statusReader struct {
	mu       sync.Mutex
	inflight chan struct{} // closed when the read under way ends
	started  time.Time     // when the read under way started
	last     *LinkStatus
	lastAt   time.Time
}

// read returns l's status, fresh if it came within budget.
func (r *statusReader) read(l *link, budget time.Duration) (LinkStatus, bool) {
	r.mu.Lock()
	done := r.inflight
	if done == nil {
		done = make(chan struct{})
		r.inflight, r.started = done, time.Now()
		go func() {
			ls := l.status()
			r.mu.Lock()
			r.last, r.lastAt, r.inflight = &ls, time.Now(), nil
			r.mu.Unlock()
			close(done)
		}()
	}
	r.mu.Unlock()
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == nil && r.last != nil && !r.lastAt.Before(r.started) {
		return *r.last, true
	}
	stuck := time.Since(r.started).Round(100 * time.Millisecond)
	if r.last == nil {
		return LinkStatus{Name: l.cfg.Name, Backend: l.backend, Datapath: l.datapath,
			Stale: fmt.Sprintf("the link's key agreement or datapath has not answered for %s; no earlier status", stuck)}, false
	}
	ls := *r.last
	ls.Stale = fmt.Sprintf("the link's key agreement or datapath has not answered for %s; status as of %s",
		stuck, r.lastAt.Format(time.TimeOnly))
	return ls, false
}

func (l *link) status() LinkStatus {
	c := l.secyCfg
	l.mu.Lock()
	fault := l.fault
	l.mu.Unlock()
	ls := LinkStatus{
		Name: l.cfg.Name, Plain: port(l.cfg.Plain), Line: port(l.cfg.Line),
		Backend: l.backend, Datapath: l.datapath, Policy: "must-secure", Fault: fault,
		LineMTUNeeded: l.cfg.LineMTU(), Cipher: c.Suite.String(), SCI: c.SCI.String(),
		SendSCI: c.SendSCI, Validate: c.Validate.String(), ReplayWindow: c.ReplayWindow,
		Offset: c.Offset, IntegrityOnly: c.IntegrityOnly, VLANsInClear: l.cfg.VLANsInClear,
		EncodingSA: l.dp.EncodingSA(),
	}
	l.dp.status(&ls)
	if l.kay != nil {
		m := l.kay.Status()
		ls.MKA = &m
		ls.Diagnosis = m.Diagnosis
	}
	if ls.Diagnosis == "" {
		l.mu.Lock()
		ls.Diagnosis = l.dataDiag
		l.mu.Unlock()
	}
	if l.guard != nil {
		ls.TxStopped = l.guard.status()
	}
	if l.cfg.ShouldSecure() {
		ls.Policy = "should-secure"
		ls.InClear = !l.dp.Secured()
	}
	return ls
}

func ifStat(name, stat string) uint64 {
	b, _ := os.ReadFile("/sys/class/net/" + name + "/statistics/" + stat)
	return uint64(atoi(strings.TrimSpace(string(b))))
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

// ClearCounters makes `show counters` count from now, as `clear counters`
// does on a router; the underlying IEEE counters keep running.
func (s *Supervisor) ClearCounters() {
	base := map[string]LinkStatus{}
	for _, ls := range s.readAll() {
		base[ls.Name] = ls
	}
	s.mu.Lock()
	s.cleared = base
	s.mu.Unlock()
}

// sinceClear subtracts the counters saved by ClearCounters.
func (s *Supervisor) sinceClear(ls *LinkStatus) {
	s.mu.Lock()
	b, ok := s.cleared[ls.Name]
	s.mu.Unlock()
	if !ok {
		return
	}
	ls.SecYCounters = ls.SecYCounters.minus(b.SecYCounters)
	ls.TxSCCounters = ls.TxSCCounters.minus(b.TxSCCounters)
	ls.DatapathCounters = ls.DatapathCounters.minus(b.DatapathCounters)
	for i := range ls.RxSCs {
		for _, o := range b.RxSCs {
			if o.SCI == ls.RxSCs[i].SCI {
				ls.RxSCs[i].Counters = ls.RxSCs[i].Counters.minus(o.Counters)
			}
		}
	}
}

// minus is c less base, counter by counter (a counter that went backwards,
// because its datapath restarted, counts from zero).
func (c Counters) minus(base Counters) Counters {
	out := make(Counters, len(c))
	for i, x := range c {
		out[i] = x
		for _, b := range base {
			if b.Name == x.Name && b.Value <= x.Value {
				out[i].Value = x.Value - b.Value
			}
		}
	}
	return out
}

// validationWindow is how often the data plane diagnosis looks at the
// receive counters.
const validationWindow = 5 * time.Second

// dataPlane names why data frames fail validation on a keyed link, from
// how the receive counters moved since the previous look, or "".
type dataPlane struct {
	at   time.Time
	prev map[string]uint64
}

func (d *dataPlane) look(now time.Time, ls LinkStatus) (diag string, ok bool) {
	if !d.at.IsZero() && now.Sub(d.at) < validationWindow {
		return "", false
	}
	cur := receiveCounters(ls)
	prev := d.prev
	d.at, d.prev = now, cur
	if prev == nil {
		return "", true
	}
	delta := func(name string) uint64 {
		if cur[name] < prev[name] {
			return cur[name]
		}
		return cur[name] - prev[name]
	}
	okPkts := delta("InPktsOK")
	causes := []struct{ counter, why string }{
		{"InPktsNoSCI", "frames arrive without an SCI this end can infer: the peer's send_sci (include-sci) setting differs"},
		{"InPktsUnknownSCI", "frames arrive from an SCI with no receive SC here: the peer transmits with another SCI than its MKPDUs name (port identifier or send_sci mismatch)"},
		{"InPktsNotValid", "frames fail their ICV: the peer derives the XPN salt or SSCI differently, or the cipher differs"},
		{"InPktsInvalid", "frames fail their ICV (validate check): the peer derives the XPN salt or SSCI differently, or the cipher differs"},
		{"InPktsBadTag", "frames carry a malformed SecTAG: check the peer's SecTAG options and confidentiality offset"},
		{"InPktsNoTag", "frames arrive without a SecTAG where one is due: the peer's VLAN tags in clear (vlans_in_clear) differ, or it sends in clear"},
		{"InPktsLate", "frames arrive late for the replay window: the circuit reorders; raise replay_window"},
	}
	for _, c := range causes {
		if n := delta(c.counter); n > 0 && n >= okPkts {
			return fmt.Sprintf("data frames fail validation: %s (%s +%d, InPktsOK +%d in %s)", c.why, c.counter, n, okPkts, validationWindow), true
		}
	}
	return "", true
}

// receiveCounters sums the receive counters of the SecY, its SCs and SAs.
func receiveCounters(ls LinkStatus) map[string]uint64 {
	out := map[string]uint64{}
	add := func(cs Counters) {
		for _, c := range cs {
			out[c.Name] += c.Value
		}
	}
	add(ls.SecYCounters)
	for _, sc := range ls.RxSCs {
		add(sc.Counters)
		for _, sa := range sc.SAs {
			add(sa.Counters)
		}
	}
	return out
}

// clockWarning is set while key chain entries have start or end times
// and the clock was never synchronised.
func (s *Supervisor) clockWarning(lc config.Link) string {
	if lc.MKA == nil || s.opts.ClockSynced == nil || s.opts.ClockSynced() {
		return ""
	}
	for _, e := range lc.MKA.KeyChain {
		if !e.Start.IsZero() || !e.End.IsZero() {
			return "the clock was never synchronised (system ntp): key chain start/end times, and so rollover times, are unreliable"
		}
	}
	return ""
}

// logSecured logs a link becoming secured or losing it, for the NOC.
func logSecured(log *slog.Logger, l *link, secured bool) {
	if secured {
		log.Info("link secured", "backend", l.backend)
		return
	}
	why := "no transmit or receive SA"
	if l.kay != nil {
		if d := l.kay.Status().Diagnosis; d != "" {
			why = d
		}
	}
	log.Warn("link not secured", "reason", why)
}
