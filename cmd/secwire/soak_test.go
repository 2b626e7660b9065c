//go:build soak

package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/offload/macsec"
)

// The soak of issue 14 (make soak DURATION=30m; not in make test): two
// MKA daemons on the software datapath in network namespaces, traffic
// both ways, a rekey every 30 s, a line flap every 2 minutes, a daemon
// SIGKILL every 10 minutes, and tshark on the line for the whole run. It
// prints the frames lost outside the fault windows, the leaked frames
// (any frame on the line that is neither MACsec nor EAPOL, or that shows
// the plaintext marker: must be 0), and RSS and goroutines over time.

var (
	soakDuration = flag.Duration("soak.duration", 30*time.Minute, "how long the soak runs")
	soakRate     = flag.Int("soak.rate", 100, "frames a second in each direction")
)

const (
	soakRekeyEvery  = 30 * time.Second
	soakFlapEvery   = 2 * time.Minute
	soakFlapDown    = 3 * time.Second
	soakKillEvery   = 10 * time.Minute
	soakSampleEvery = time.Minute
)

// window is a stretch of time in which frames may be lost: a fault from
// when it began until the CA was secured again, and a moment after.
type window struct {
	what       string
	start, end time.Time
}

type soakSample struct {
	at     time.Duration
	rt     [2]string // A, B: "RSS MiB / goroutines / threads"
	sent   [2]int
	got    [2]int
	events string
}

func TestSoak(t *testing.T) {
	needTools(t, "ip", "ping", "tshark")
	tp := newTopoNoTools(t, macsec.GCMAESXPN256)
	chain := []config.CAKEntry{cak("soak", 32, "50")}
	cfg := map[string]string{}
	for _, side := range []string{"a", "b"} {
		cfg[side] = tp.mkaConfig(side, chain, func(l *config.Link) { l.Datapath = "software" })
		tp.start(side, cfg[side])
	}
	bothSecured := func(within time.Duration) (time.Time, bool) {
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if secured(tp.mkaStatus("a")) && secured(tp.mkaStatus("b")) {
				return time.Now(), true
			}
		}
		return time.Now(), false
	}
	if _, ok := bothSecured(20 * time.Second); !ok {
		t.Fatalf("CA not secured\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
	}
	lineCap := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
	limit := int((*soakDuration + time.Minute).Seconds()) * *soakRate
	flows := [2]*flow{
		startFlow(t, "h1->h2", 1, tp.h1, tp.h2, *soakRate, limit),
		startFlow(t, "h2->h1", 2, tp.h2, tp.h1, *soakRate, limit),
	}
	start := time.Now()
	var (
		mu        sync.Mutex
		windows   []window
		events    []string
		rekeys    [2]int // ok, failed
		flaps     int
		kills     int
		worstBack = map[string]time.Duration{}
	)
	note := func(f string, a ...any) {
		s := fmt.Sprintf(f, a...)
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
		t.Logf("%7s  %s", time.Since(start).Round(time.Second), s)
	}
	// fault runs a fault and records its window: from its start until
	// both ends are secured again, plus a second for the plaintext ports
	// to follow (link-fault pass-through) and frames in flight.
	fault := func(what string, do func()) {
		w := window{what: what, start: time.Now().Add(-200 * time.Millisecond)}
		do()
		back := time.Now()
		at, ok := bothSecured(60 * time.Second)
		if !ok {
			t.Errorf("%s: CA not secured again within 60 s\nA:\n%s\nB:\n%s", what, tp.log("a"), tp.log("b"))
		}
		took := at.Sub(back)
		kind := strings.Fields(what)[0]
		mu.Lock()
		worstBack[kind] = max(worstBack[kind], took)
		mu.Unlock()
		w.end = at.Add(time.Second)
		mu.Lock()
		windows = append(windows, w)
		mu.Unlock()
		note("%s: secured again %s after", what, took.Round(time.Millisecond))
	}
	var samples []soakSample
	sample := func() {
		s := soakSample{at: time.Since(start).Round(time.Second)}
		for i, side := range []string{"a", "b"} {
			r, err := ctl.ReadRuntime(tp.socket(side), false)
			if err != nil {
				s.rt[i] = "(no answer)"
			} else {
				s.rt[i] = fmt.Sprintf("%6.1f %5d %4d", mib(r.RSSBytes), r.Goroutines, r.Threads)
			}
			s.sent[i], s.got[i] = flows[i].counts()
		}
		mu.Lock()
		s.events = strings.Join(events, "; ")
		events = nil
		mu.Unlock()
		samples = append(samples, s)
	}
	sample()
	killSide := "a"
	nextRekey, nextFlap, nextKill, nextSample := start.Add(soakRekeyEvery), start.Add(soakFlapEvery), start.Add(soakKillEvery), start.Add(soakSampleEvery)
	for time.Since(start) < *soakDuration {
		now := time.Now()
		switch {
		case !now.Before(nextKill):
			nextKill = nextKill.Add(soakKillEvery)
			side := killSide
			kills++
			fault(fmt.Sprintf("kill -9 of daemon %s", strings.ToUpper(side)), func() {
				tp.kill(side)
				tp.start(side, cfg[side])
			})
			if killSide == "a" {
				killSide = "b"
			} else {
				killSide = "a"
			}
		case !now.Before(nextFlap):
			nextFlap = nextFlap.Add(soakFlapEvery)
			flaps++
			fault(fmt.Sprintf("flap of A's line (down %s)", soakFlapDown), func() {
				if err := tp.a.IP("link", "set", "dev", "line", "down"); err != nil {
					t.Error(err)
				}
				time.Sleep(soakFlapDown)
				if err := tp.a.IP("link", "set", "dev", "line", "up"); err != nil {
					t.Error(err)
				}
			})
		case !now.Before(nextRekey):
			nextRekey = nextRekey.Add(soakRekeyEvery)
			if err := ctl.Rekey(tp.socket("a"), "link0"); err != nil {
				rekeys[1]++
				note("rekey refused: %v", err)
			} else {
				rekeys[0]++
			}
		case !now.Before(nextSample):
			nextSample = nextSample.Add(soakSampleEvery)
			sample()
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, f := range flows {
		f.stop()
	}
	sample()
	frames := lineCap()

	// Leaks: anything on the line that is neither MACsec nor EAPOL, or
	// that shows the marker every flow frame and ping carries.
	leaked, macsecFrames, eapol := 0, 0, 0
	for _, f := range frames {
		et := binary.BigEndian.Uint16(f[12:])
		switch {
		case bytes.Contains(f, marker):
			leaked++
		case et == macsec.EtherType:
			macsecFrames++
		case et == 0x888e:
			eapol++
		default:
			leaked++
		}
	}
	excused := func(at time.Time) bool {
		for _, w := range windows {
			if !at.Before(w.start) && at.Before(w.end) {
				return true
			}
		}
		return false
	}
	var report strings.Builder
	fmt.Fprintf(&report, "soak: %s, software datapath, GCM-AES-XPN-256, %d frames/s each way, rekey every %s, flap every %s, SIGKILL every %s\n\n",
		*soakDuration, *soakRate, soakRekeyEvery, soakFlapEvery, soakKillEvery)
	fmt.Fprintf(&report, "%7s  %-21s  %-21s  %-15s  %-15s  %s\n", "time", "A RSS MiB/gor/thr", "B RSS MiB/gor/thr", "h1->h2 sent/got", "h2->h1 sent/got", "events since the last sample")
	for _, s := range samples {
		fmt.Fprintf(&report, "%7s  %-21s  %-21s  %-15s  %-15s  %s\n", s.at, s.rt[0], s.rt[1],
			fmt.Sprintf("%d/%d", s.sent[0], s.got[0]), fmt.Sprintf("%d/%d", s.sent[1], s.got[1]), s.events)
	}
	fmt.Fprintln(&report)
	for _, f := range flows {
		sent, got := f.counts()
		lost, inWindows := f.lostOutside(excused)
		fmt.Fprintf(&report, "flow %s: %d sent, %d received, %d duplicates; lost outside fault windows: %d; lost inside fault windows: %d\n",
			f.name, sent, got, f.dups, lost, inWindows)
		if b := f.lossBursts(excused, start, 20); len(b) > 0 {
			fmt.Fprintf(&report, "  losses outside the windows (since the start): %s\n", strings.Join(b, ", "))
		}
	}
	for _, w := range windows {
		fmt.Fprintf(&report, "  window %s-%s: %s\n", w.start.Sub(start).Round(10*time.Millisecond), w.end.Sub(start).Round(10*time.Millisecond), w.what)
	}
	var windowTime time.Duration
	for _, w := range windows {
		windowTime += w.end.Sub(w.start)
	}
	fmt.Fprintf(&report, "fault windows: %d, %s in all; rekeys: %d done, %d refused; flaps: %d; kills: %d\n",
		len(windows), windowTime.Round(time.Second), rekeys[0], rekeys[1], flaps, kills)
	fmt.Fprintf(&report, "secured again at worst: %s after a flap, %s after a kill\n",
		worstBack["flap"].Round(time.Millisecond), worstBack["kill"].Round(time.Millisecond))
	fmt.Fprintf(&report, "line capture: %d frames (%d MACsec, %d EAPOL); LEAKED FRAMES: %d\n", len(frames), macsecFrames, eapol, leaked)
	t.Log("\n" + report.String())
	fmt.Print(report.String())
	if leaked > 0 {
		t.Errorf("%d frames left the line neither MACsec nor EAPOL, or with the plaintext marker", leaked)
	}
	if macsecFrames == 0 {
		t.Error("no MACsec frame on the line: the capture saw nothing")
	}
}

// lostOutside counts frames lost that were sent when excused said no.
func (f *flow) lostOutside(excused func(time.Time) bool) (lost, excusedLost int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for seq, at := range f.sentAt {
		if f.got[seq] {
			continue
		}
		if excused(at) {
			excusedLost++
		} else {
			lost++
		}
	}
	return lost, excusedLost
}

// lossBursts lists runs of lost frames sent when excused said no: when
// each began (since t0) and how many frames it lost, at most n of them.
func (f *flow) lossBursts(excused func(time.Time) bool, t0 time.Time, n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for seq := 0; seq < len(f.sentAt) && len(out) < n; seq++ {
		if f.got[seq] || excused(f.sentAt[seq]) {
			continue
		}
		first := seq
		for seq+1 < len(f.sentAt) && !f.got[seq+1] && !excused(f.sentAt[seq+1]) {
			seq++
		}
		out = append(out, fmt.Sprintf("%s: %d lost", f.sentAt[first].Sub(t0).Round(10*time.Millisecond), seq-first+1))
	}
	return out
}
