package software

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/macsec"
)

// BenchmarkForward measures frames per second through
//
//	gen —[veth]— A —[veth]— B —[veth]— sink
//
// where A and B are either two secwire software datapaths (A protects, B
// validates) or two Linux bridges: plain kernel forwarding on the same
// machine, the baseline. The generator is an AF_PACKET transmit ring that
// sends as fast as it can for a fixed time; the sink counts what arrives.
// CPU is the whole machine's busy time (generator and sink included, the
// same in both cases) per GB delivered. Run with -benchtime 1x: each case
// is one timed run, not b.N iterations.
func BenchmarkForward(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("SECWIRE_BENCH_DURATION")); err == nil {
		dur = v
	}
	type result struct{ pps, gbps, cpuPerGB float64 }
	results := map[string]result{}
	modes := []string{"direct", "bridge", "gcm-aes-128", "gcm-aes-xpn-256"}
	for _, size := range []int{64, 1500} {
		for _, mode := range modes {
			name := fmt.Sprintf("%s/%d", mode, size)
			b.Run(name, func(b *testing.B) {
				pps, gbps, cpu := forwardRun(b, mode, size, dur)
				b.ReportMetric(pps, "pps")
				b.ReportMetric(gbps, "Gbit/s")
				b.ReportMetric(cpu, "cpu-s/GB")
				results[name] = result{pps, gbps, cpu}
			})
		}
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\nforwarding through A and B (direct: generator to sink, no A/B)\n%-22s %12s %9s %10s %9s\n", "case", "pps", "Gbit/s", "cpu-s/GB", "vs bridge")
	for _, size := range []int{64, 1500} {
		base := results[fmt.Sprintf("bridge/%d", size)]
		for _, mode := range modes {
			r := results[fmt.Sprintf("%s/%d", mode, size)]
			ratio := 0.0
			if base.pps > 0 {
				ratio = r.pps / base.pps
			}
			fmt.Fprintf(&t, "%-22s %12.0f %9.2f %10.1f %8.2fx\n", fmt.Sprintf("%s/%dB", mode, size), r.pps, r.gbps, r.cpuPerGB, ratio)
		}
	}
	// Printed, not logged: a parent benchmark's log is not shown.
	fmt.Print(t.String())
}

func forwardRun(b *testing.B, mode string, size int, dur time.Duration) (pps, gbps, cpuPerGB float64) {
	ns, err := netns.Add(fmt.Sprintf("swbench%d", os.Getpid()))
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Delete()
	pairs := [][2]string{{"gen", "ap"}, {"al", "bl"}, {"bp", "sink"}}
	if mode == "direct" {
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
	switch mode {
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
		suite, _ := macsec.ParseCipherSuite(mode)
		key := bytes.Repeat([]byte{7}, suite.KeyLen())
		macA, macB := macsec.MakeSCI([]byte{2, 0, 0, 0, 0xa, 1}, 1), macsec.MakeSCI([]byte{2, 0, 0, 0, 0xb, 1}, 1)
		mk := func(sci, peer macsec.SCI) *macsec.SecY {
			s, _ := macsec.NewSecY(macsec.Config{Suite: suite, SCI: sci, SendSCI: true, ReplayWindow: 1 << 16})
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
			eng, err := Start(context.Background(), Options{Plain: e.plain, Line: e.line, SecY: e.s, Workers: 1, Open: ns.Do})
			if err != nil {
				b.Fatal(err)
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rx.Receive(ctx, func(f []byte) {
				if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == 0x88b5 {
					received.Add(1)
				}
			})
		}
	}()
	time.Sleep(200 * time.Millisecond) // bridges learn nothing; ports settle
	cpu0 := busyJiffies()
	start := time.Now()
	end := start.Add(dur)
	b.ResetTimer()
	for time.Now().Before(end) {
		for range 64 {
			tx.Send(frame)
		}
		tx.Flush()
	}
	time.Sleep(300 * time.Millisecond) // frames in flight
	elapsed := dur.Seconds()
	cancel()
	<-done
	cpu := float64(busyJiffies()-cpu0) / 100 // USER_HZ
	n := float64(received.Load())
	pps = n / elapsed
	gbps = pps * float64(size) * 8 / 1e9
	if n > 0 {
		cpuPerGB = cpu / (n * float64(size) / 1e9)
	}
	return pps, gbps, cpuPerGB
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
