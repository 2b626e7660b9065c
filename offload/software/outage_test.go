package software

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// within fails the test when fn has not returned after d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestLineOutageNeverWedges takes engine A's line port down (admin down,
// then, separately, carrier loss: B's end down) while traffic is sent
// into both plaintext ports and key agreement keeps sending: SendEAPOL
// returns at once each time, nothing wedges, frames flow again when the
// line comes back, and Stop returns promptly with no goroutine or socket
// left behind.
func TestLineOutageNeverWedges(t *testing.T) {
	for _, c := range []struct{ name, dev string }{{"admin-down", "al"}, {"carrier-loss", "bl"}} {
		t.Run(c.name, func(t *testing.T) {
			goroutines, fds := runtime.NumGoroutine(), openFDs(t)
			w := newWire(t, macsec.GCMAES128, 0, false, true, 1024)
			h1, h2 := w.port(t, "hp"), w.port(t, "hq")
			if err := w.ns.IP("link", "set", "dev", c.dev, "down"); err != nil {
				t.Fatal(err)
			}
			// Ten times the 256-slot rings each way, and five times the
			// 16-slot key agreement ring, with the line down.
			eapol := []byte{0x01, 0x80, 0xc2, 0, 0, 3, 2, 0, 0, 0, 0xa, 1, 0x88, 0x8e, 3, 5, 0, 4, 'M', 'K', 'P', 'D'}
			within(t, 20*time.Second, "traffic and key agreement into a down line", func() {
				for i := range 2560 {
					f := testFrame(i, 300)
					h1.tx.Send(f)
					h2.tx.Send(f)
					if i%32 == 31 {
						h1.tx.Flush()
						h2.tx.Flush()
						if i%256 == 255 {
							time.Sleep(10 * time.Millisecond) // let the workers read
						}
					}
					if i%32 == 0 {
						start := time.Now()
						errA, errB := w.a.SendEAPOL(eapol), w.b.SendEAPOL(eapol)
						if d := time.Since(start); d > time.Second {
							t.Errorf("SendEAPOL took %v with the line down", d)
						}
						// The side whose port is down knows it.
						if err := map[string]error{"al": errA, "bl": errB}[c.dev]; err == nil {
							t.Errorf("SendEAPOL on port %s while down: no error", c.dev)
						}
					}
				}
				h1.tx.Flush()
				h2.tx.Flush()
			})
			time.Sleep(300 * time.Millisecond)
			if w.a.Stats.LineTxDropped.Load()+w.b.Stats.LineTxDropped.Load() == 0 {
				t.Errorf("no frames counted in LineTxDropped: A %s; B %s", statsOf(w.a), statsOf(w.b))
			}
			if err := w.ns.IP("link", "set", "dev", c.dev, "up"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // carrier
			for _, dir := range []struct {
				name     string
				from, to *port
			}{{"h1 to h2", h1, h2}, {"h2 to h1", h2, h1}} {
				var sent [][]byte
				for i := range 50 {
					sent = append(sent, testFrame(100000+i, 300))
				}
				done := make(chan [][]byte)
				go func() {
					done <- dir.to.collect(50, 5*time.Second, func(f []byte) bool {
						return isTest(f) && binary.BigEndian.Uint32(f[14+24:]) >= 100000
					})
				}()
				time.Sleep(100 * time.Millisecond)
				dir.from.send(t, sent...)
				if got := <-done; len(got) != 50 {
					t.Fatalf("%s after the outage: %d of 50 frames; A %s; B %s", dir.name, len(got), statsOf(w.a), statsOf(w.b))
				}
			}
			if err := w.a.SendEAPOL(eapol); err != nil {
				t.Errorf("SendEAPOL after the outage: %v", err)
			}
			within(t, 5*time.Second, "Engine.Stop", func() { w.a.Stop(); w.b.Stop() })
			for _, p := range []*port{h1, h2} {
				p.rx.Close()
				p.tx.Close()
			}
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > goroutines {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines after Stop, %d before Start:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
			}
			if n := openFDs(t); n > fds {
				t.Errorf("%d open file descriptors after Stop, %d before Start", n, fds)
			}
		})
	}
}
