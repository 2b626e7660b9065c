package software

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/ring"
)

// loop is a receive ring that hands out the same frames over and over,
// and counts what it handed out.
type loop struct {
	frames [][]byte
	next   int
	taken  atomic.Int64
}

func (l *loop) Take(dst []ring.Frame) (n, _ int) {
	for n < len(dst) {
		dst[n] = ring.Frame{Data: l.frames[l.next]}
		l.next = (l.next + 1) % len(l.frames)
		n++
	}
	l.taken.Add(int64(n))
	return n, 0
}
func (l *loop) Release(ring.Frame)             {}
func (l *loop) Ready() bool                    { return true }
func (l *loop) Wait(ctx context.Context) error { return ctx.Err() }
func (l *loop) Interrupt()                     {}
func (l *loop) Drops() uint64                  { return 0 }
func (l *loop) Close() error                   { return nil }

// sink is a transmit ring that copies each frame into one slot, as a
// ring does, and sends nowhere.
type sink struct{ slot [16 << 10]byte }

func (s *sink) Send(f []byte) error       { copy(s.slot[:], f); return nil }
func (s *sink) Flush() error              { return nil }
func (s *sink) SetQdiscBypass(bool) error { return nil }
func (s *sink) Close() error              { return nil }

// BenchmarkPipeline is the datapath's user-space cost per frame, without
// the kernel: frames from memory through the protect or validate pipe
// (GCM-AES-XPN-256) to a ring copy, with 1 and 2 workers. ns/op is per
// frame; with 2 workers on 2 cores it shows what the ordered steps leave
// to run in parallel.
func BenchmarkPipeline(b *testing.B) {
	suite := macsec.GCMAESXPN256
	key := bytes.Repeat([]byte{7}, suite.KeyLen())
	sciA, sciB := macsec.MakeSCI(macA, 1), macsec.MakeSCI(macB, 1)
	mk := func(sci, peer macsec.SCI) *macsec.SecY {
		s, _ := macsec.NewSecY(macsec.Config{Suite: suite, SCI: sci, SendSCI: true, ReplayWindow: 1 << 20})
		s.InstallTxSA(macsec.SAParams{AN: 0, Key: macsec.NewKey(key), PN: 1, SSCI: 1})
		s.SetEncodingSA(0)
		s.InstallRxSA(peer, macsec.SAParams{AN: 0, Key: macsec.NewKey(key), PN: 1, SSCI: 1})
		return s
	}
	for _, dir := range []string{"protect", "validate"} {
		for _, size := range []int{64, 1500} {
			for _, workers := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%d/%dw", dir, size, workers), func(b *testing.B) {
					a, bb := mk(sciA, sciB), mk(sciB, sciA)
					frames := make([][]byte, 256)
					for i := range frames {
						frames[i] = testFrame(i, size)
						if dir == "validate" {
							frames[i], _ = a.Protect(nil, frames[i])
						}
					}
					e := &Engine{opts: Options{SecY: a}}
					p := newPipe(e, &loop{frames: frames}, &sink{}, (*Engine).protect, (*Engine).seal)
					if dir == "validate" {
						e.opts.SecY = bb
						p = newPipe(e, &loop{frames: frames}, &sink{}, nil, (*Engine).validate)
					}
					in := p.in.(*loop)
					b.SetBytes(int64(size))
					b.ResetTimer()
					var wg sync.WaitGroup
					for range workers {
						wg.Go(func() {
							r := e.opts.SecY.NewReader()
							bt := p.newBatch()
							for in.taken.Load() < int64(b.N) {
								p.step(context.Background(), r, bt)
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					if e.Stats.Dropped.Load() != 0 {
						b.Fatalf("%d frames dropped", e.Stats.Dropped.Load())
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(in.taken.Load()), "ns/frame")
				})
			}
		}
	}
}
