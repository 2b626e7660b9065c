package software

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// BenchmarkForward measures forwarding through
//
//	gen —[veth]— A —[veth]— B —[veth]— sink
//
// where A and B are two Linux bridges (plain kernel forwarding, the
// baseline) or two secwire software datapaths (A protects, B validates,
// GCM-AES-XPN-256) on AF_PACKET or AF_XDP rings with 1 or 2 workers per
// direction; "direct" is the generator straight to the sink, no A or B.
// For each case and frame size it measures:
//
//   - saturated throughput: the generator (an AF_PACKET transmit ring)
//     sends as fast as it can for a fixed time. CPU per GB delivered is
//     this process's CPU time (generator, A, B and sink all run in it, and
//     the kernel's forwarding runs in their system calls), which others'
//     load on the machine barely touches; "machine" is the whole machine's
//     busy time, the same figure on an idle machine;
//   - one-way latency at 200 frames/s and at half the case's saturated
//     rate: the generator stamps each frame, the sink's kernel stamps its
//     arrival. Per box is (path − direct)/2: what one A or B adds.
//
// Run with -benchtime 1x: each case is one timed run, not b.N
// iterations. SECWIRE_BENCH_DURATION sets the saturated run's length
// (default 3s), SECWIRE_BENCH_CASES a comma-separated subset of cases.
func BenchmarkForward(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("SECWIRE_BENCH_DURATION")); err == nil {
		dur = v
	}
	cases := []fwdCase{{"direct", "", 0}, {"bridge", "", 0},
		{"af_packet/1w", "af_packet", 1}, {"af_packet/2w", "af_packet", 2},
		{"af_xdp/1w", "af_xdp", 1}, {"af_xdp/2w", "af_xdp", 2}}
	if v := os.Getenv("SECWIRE_BENCH_CASES"); v != "" {
		keep := strings.Split(v, ",")
		cases = slices.DeleteFunc(cases, func(c fwdCase) bool { return c.name != "direct" && !slices.Contains(keep, c.name) })
	}
	results := map[string]fwdResult{}
	for _, size := range []int{64, 1500} {
		for _, c := range cases {
			name := fmt.Sprintf("%s/%d", c.name, size)
			b.Run(name, func(b *testing.B) {
				r := forwardRun(b, c, size, dur)
				b.ReportMetric(r.pps, "pps")
				b.ReportMetric(r.cpuPerGB, "cpu-s/GB")
				b.ReportMetric(r.low.p50, "µs-p50@200pps")
				b.ReportMetric(r.half.p50, "µs-p50@50%")
				results[name] = r
			})
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var t strings.Builder
	fmt.Fprintf(&t, "\nforwarding gen -> A -> B -> sink, GCM-AES-XPN-256 (load average %s)\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&t, "%-18s %9s %6s %8s %6s %8s | %-29s | %-29s\n", "", "", "", "", "", "", "one-way µs at 200 pps", "one-way µs at 50% load")
	fmt.Fprintf(&t, "%-18s %9s %6s %8s %6s %8s | %6s %6s %7s %7s | %6s %6s %7s %7s\n", "case", "pps", "Gbit/s", "cpu-s/GB", "vs br", "machine",
		"p50", "p99", "box p50", "box p99", "p50", "p99", "box p50", "box p99")
	for _, size := range []int{64, 1500} {
		direct := results[fmt.Sprintf("direct/%d", size)]
		bridge := results[fmt.Sprintf("bridge/%d", size)]
		for _, c := range cases {
			r, ok := results[fmt.Sprintf("%s/%d", c.name, size)]
			if !ok {
				continue
			}
			if r.skip != "" {
				fmt.Fprintf(&t, "%-18s %s\n", fmt.Sprintf("%s/%dB", c.name, size), r.skip)
				continue
			}
			ratio := "-"
			if c.name != "direct" && bridge.cpuPerGB > 0 {
				ratio = fmt.Sprintf("%.2fx", r.cpuPerGB/bridge.cpuPerGB)
			}
			box := func(v, d float64) string {
				if c.name == "direct" {
					return "-"
				}
				return fmt.Sprintf("%.1f", (v-d)/2)
			}
			fmt.Fprintf(&t, "%-18s %9.0f %6.2f %8.2f %6s %8.2f | %6.1f %6.1f %7s %7s | %6.1f %6.1f %7s %7s\n",
				fmt.Sprintf("%s/%dB", c.name, size), r.pps, r.pps*float64(size)*8/1e9, r.cpuPerGB, ratio, r.machinePerGB,
				r.low.p50, r.low.p99, box(r.low.p50, direct.low.p50), box(r.low.p99, direct.low.p99),
				r.half.p50, r.half.p99, box(r.half.p50, direct.half.p50), box(r.half.p99, direct.half.p99))
		}
	}
	fmt.Fprintf(&t, "cpu-s/GB: this process's CPU time per GB delivered; vs br: against the bridges'; machine: the whole machine's busy time per GB.\n")
	fmt.Fprintf(&t, "box: (path - direct)/2, what one A or B adds. 50%% load: half the case's own saturated rate.\n")
	// Printed, not logged: a parent benchmark's log is not shown.
	fmt.Print(t.String())
}

type fwdCase struct {
	name    string
	rings   string // "" for direct and bridge
	workers int
}

type quantiles struct{ p50, p99 float64 }

type fwdResult struct {
	pps, cpuPerGB float64
	machinePerGB  float64
	low, half     quantiles
	skip          string
}

func forwardRun(b *testing.B, c fwdCase, size int, dur time.Duration) (res fwdResult) {
	ns, err := netns.Add(fmt.Sprintf("swbench%d", os.Getpid()))
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Delete()
	pairs := [][2]string{{"gen", "ap"}, {"al", "bl"}, {"bp", "sink"}}
	if c.name == "direct" {
		pairs = [][2]string{{"gen", "sink"}} // the generator's own ceiling
	}
	for _, p := range pairs {
		if err := netns.Veth(ns, p[0], ns, p[1]); err != nil {
			b.Fatal(err)
		}
	}
	for _, i := range []string{"al", "bl"} {
		ns.IP("link", "set", "dev", i, "mtu", "1600")
	}
	switch c.name {
	case "direct":
	case "bridge":
		for _, br := range [][3]string{{"bra", "ap", "al"}, {"brb", "bl", "bp"}} {
			if err := ns.IP("link", "add", "name", br[0], "type", "bridge"); err != nil {
				b.Fatal(err)
			}
			for _, port := range br[1:] {
				if err := ns.IP("link", "set", "dev", port, "master", br[0]); err != nil {
					b.Fatal(err)
				}
			}
			if err := ns.IP("link", "set", "dev", br[0], "up"); err != nil {
				b.Fatal(err)
			}
		}
	default:
		suite := macsec.GCMAESXPN256
		key := bytes.Repeat([]byte{7}, suite.KeyLen())
		macA, macB := macsec.MakeSCI([]byte{2, 0, 0, 0, 0xa, 1}, 1), macsec.MakeSCI([]byte{2, 0, 0, 0, 0xb, 1}, 1)
		mk := func(sci, peer macsec.SCI) *macsec.SecY {
			s, _ := macsec.NewSecY(macsec.Config{Suite: suite, SCI: sci, SendSCI: true, ReplayWindow: 0})
			s.InstallTxSA(macsec.SAParams{AN: 0, Key: macsec.NewKey(key), PN: 1, SSCI: 1})
			s.SetEncodingSA(0)
			s.AddRxSC(peer)
			s.InstallRxSA(peer, macsec.SAParams{AN: 0, Key: macsec.NewKey(key), PN: 1, SSCI: 1})
			return s
		}
		for _, e := range []struct {
			plain, line string
			s           *macsec.SecY
		}{{"ap", "al", mk(macA, macB)}, {"bp", "bl", mk(macB, macA)}} {
			eng, err := Start(context.Background(), Options{Plain: e.plain, Line: e.line, SecY: e.s, Workers: c.workers, Rings: c.rings, Open: ns.Do})
			if err != nil {
				return fwdResult{skip: err.Error()}
			}
			defer eng.Stop()
		}
	}
	var tx *afpacket.Tx
	var rx *afpacket.Rx
	err = ns.Do(func() (err error) {
		if tx, err = afpacket.OpenTx("gen", afpacket.TxOptions{FrameSize: 2048, Frames: 1024}); err != nil {
			return err
		}
		rx, err = afpacket.OpenRx("sink", afpacket.RxOptions{Promiscuous: true})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	defer rx.Close()

	frame := make([]byte, size)
	copy(frame, []byte{2, 0, 0, 0, 0x22, 2, 2, 0, 0, 0, 0x11, 1, 0x88, 0xb5})
	var received atomic.Uint64
	var latMu sync.Mutex
	lat := make([]float64, 0, 1<<21)
	var collect atomic.Bool // record latencies (after the warm-up frames)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rx.ReceiveTimed(ctx, func(f afpacket.Frame) {
				if len(f.Data) < 22 || binary.BigEndian.Uint16(f.Data[12:]) != 0x88b5 {
					return
				}
				received.Add(1)
				if stamp := int64(binary.BigEndian.Uint64(f.Data[14:])); stamp != 0 && collect.Load() {
					latMu.Lock()
					if len(lat) < cap(lat) {
						lat = append(lat, float64(f.Nanos-stamp)/1e3)
					}
					latMu.Unlock()
				}
			})
		}
	}()
	time.Sleep(200 * time.Millisecond) // ports settle

	// Saturated: send as fast as the generator can.
	cpu0, self0 := busyJiffies(), selfCPU()
	b.ResetTimer()
	for end := time.Now().Add(dur); time.Now().Before(end); {
		for range 64 {
			tx.Send(frame)
		}
		tx.Flush()
	}
	time.Sleep(300 * time.Millisecond)           // frames in flight
	machine := float64(busyJiffies()-cpu0) / 100 // USER_HZ
	self := (selfCPU() - self0).Seconds()
	n := float64(received.Load())
	res.pps = n / dur.Seconds()
	if n > 0 {
		res.cpuPerGB = self / (n * float64(size) / 1e9)
		res.machinePerGB = machine / (n * float64(size) / 1e9)
	}
	b.StopTimer()

	measure := func(pps float64, d time.Duration) quantiles {
		time.Sleep(100 * time.Millisecond)
		collect.Store(true)
		paced(tx, frame, pps, d)
		time.Sleep(100 * time.Millisecond)
		collect.Store(false)
		latMu.Lock()
		defer latMu.Unlock()
		q := quantile(lat)
		lat = lat[:0]
		return q
	}
	res.low = measure(200, 2*time.Second)
	res.half = measure(res.pps/2, time.Second)
	cancel()
	<-done
	return res
}

// paced sends frames at rate pps for d, each stamped with the time it is
// handed to the kernel. The thread sleeps between frames with a fine
// timer; frames that fell due meanwhile go out together.
func paced(tx *afpacket.Tx, frame []byte, pps float64, d time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	f := append([]byte(nil), frame...)
	interval := time.Duration(float64(time.Second) / pps)
	start := time.Now()
	for i := 0; ; {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			break
		}
		due := int(el/interval) + 1
		if i >= due {
			wait := start.Add(time.Duration(i) * interval).Sub(now)
			ts := unix.NsecToTimespec(wait.Nanoseconds())
			unix.Nanosleep(&ts, nil)
			continue
		}
		for ; i < due; i++ {
			binary.BigEndian.PutUint64(f[14:], uint64(time.Now().UnixNano()))
			tx.Send(f)
		}
		tx.Flush()
	}
	// The thread's timer slack goes back to the default with the thread.
	unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
}

// quantile returns the median and 99th percentile, in µs.
func quantile(v []float64) quantiles {
	if len(v) == 0 {
		return quantiles{}
	}
	slices.Sort(v)
	at := func(q float64) float64 { return v[min(len(v)-1, int(q*float64(len(v))))] }
	return quantiles{at(0.5), at(0.99)}
}

// selfCPU is this process's CPU time, user and system.
func selfCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// busyJiffies is the machine's non-idle CPU time from /proc/stat.
func busyJiffies() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		x, _ := strconv.ParseUint(v, 10, 64)
		busy += x
	}
	return busy
}
