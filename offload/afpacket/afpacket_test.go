package afpacket

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/secwire/secwire/internal/netns"
)

// testNS makes a namespace with a veth pair p0–p1, or skips when the test
// cannot (not root).
func testNS(t *testing.T) *netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (make test runs as root in CI)")
	}
	ns, err := netns.Add(fmt.Sprintf("swafp%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	if err := netns.Veth(ns, "p0", ns, "p1"); err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestRingsCarryFramesInOrder(t *testing.T) {
	ns := testNS(t)
	if err := ns.IP("link", "set", "dev", "p0", "mtu", "9000"); err != nil {
		t.Fatal(err)
	}
	if err := ns.IP("link", "set", "dev", "p1", "mtu", "9000"); err != nil {
		t.Fatal(err)
	}
	var rx *Rx
	var tx *Tx
	err := ns.Do(func() (err error) {
		if rx, err = OpenRx("p1", RxOptions{Promiscuous: true}); err != nil {
			return err
		}
		tx, err = OpenTx("p0", TxOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()

	// 600 frames: untagged, 802.1Q-tagged (the receiver's stack moves the
	// tag into metadata; Rx must put it back) and jumbo.
	var sent [][]byte
	for i := range 600 {
		n := 60 + (i*37)%1440
		if i%100 == 99 {
			n = 9014
		}
		f := make([]byte, n)
		copy(f, []byte{0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x01})
		p := 12
		if i%3 == 1 {
			binary.BigEndian.PutUint16(f[12:], 0x8100)
			binary.BigEndian.PutUint16(f[14:], uint16(100+i%7))
			p = 16
		}
		binary.BigEndian.PutUint16(f[p:], 0x88b5)
		binary.BigEndian.PutUint32(f[p+2:], uint32(i))
		sent = append(sent, f)
		if err := tx.Send(f); err != nil {
			t.Fatal(err)
		}
		if i%32 == 31 {
			if err := tx.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got [][]byte
	for len(got) < len(sent) {
		_, trunc, err := rx.Receive(ctx, func(f []byte) {
			// Only our test frames (the kernel may send its own).
			p := 12
			if binary.BigEndian.Uint16(f[12:]) == 0x8100 {
				p = 16
			}
			if binary.BigEndian.Uint16(f[p:]) == 0x88b5 {
				got = append(got, append([]byte(nil), f...))
			}
		})
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(got), len(sent), err)
		}
		if trunc != 0 {
			t.Fatalf("%d frames truncated", trunc)
		}
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs (len %d vs %d):\n got %x\nwant %x", i, len(got[i]), len(sent[i]), got[i][:20], sent[i][:20])
		}
	}
}

func TestTxRefusesOversizeFrames(t *testing.T) {
	ns := testNS(t)
	var tx *Tx
	if err := ns.Do(func() (err error) { tx, err = OpenTx("p0", TxOptions{FrameSize: 2048}); return }); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(make([]byte, 2048)); err != ErrTooBig {
		t.Fatalf("Send(2048 bytes) = %v, want ErrTooBig", err)
	}
}

// marked builds a test frame carrying seq.
func marked(seq int) []byte {
	f := make([]byte, 200)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5})
	binary.BigEndian.PutUint32(f[14:], uint32(seq))
	copy(f[18:], "MARKER-afpacket-outage")
	return f
}

// within runs fn and fails the test if it has not returned after d: a
// wedged transmit ring would block forever.
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

// TestTxSurvivesLineOutage sends through a port that is administratively
// down, then one that has lost carrier (its peer is down): Send and Flush
// must return, the frames the port could not send are dropped and
// counted, and once the port is back frames flow again.
func TestTxSurvivesLineOutage(t *testing.T) {
	for _, c := range []struct{ name, dev string }{{"admin-down", "p0"}, {"carrier-loss", "p1"}} {
		t.Run(c.name, func(t *testing.T) {
			ns := testNS(t)
			var rx *Rx
			var tx *Tx
			err := ns.Do(func() (err error) {
				if rx, err = OpenRx("p1", RxOptions{Promiscuous: true}); err != nil {
					return err
				}
				tx, err = OpenTx("p0", TxOptions{Frames: 64})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			defer tx.Close()
			if err := ns.IP("link", "set", "dev", c.dev, "down"); err != nil {
				t.Fatal(err)
			}
			// Ten times the ring: a ring that never drains fills up.
			within(t, 10*time.Second, "sending 640 frames to a port that is down", func() {
				for i := range 640 {
					tx.Send(marked(i))
					if i%16 == 15 {
						tx.Flush()
					}
				}
				tx.Flush()
			})
			t.Logf("dropped while down: %d", tx.Dropped())
			if tx.Dropped() == 0 {
				t.Error("no frames counted as dropped while the port was down")
			}
			if err := ns.IP("link", "set", "dev", c.dev, "up"); err != nil {
				t.Fatal(err)
			}
			// Carrier comes back: every frame sent from now on arrives.
			time.Sleep(200 * time.Millisecond)
			within(t, 10*time.Second, "sending after the port came back", func() {
				for i := range 100 {
					if err := tx.Send(marked(10000 + i)); err != nil {
						t.Errorf("Send after recovery: %v", err)
					}
				}
				tx.Flush()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got := map[uint32]bool{}
			for len(got) < 100 {
				if _, _, err := rx.Receive(ctx, func(f []byte) {
					if bytes.Contains(f, []byte("MARKER-afpacket-outage")) {
						if seq := binary.BigEndian.Uint32(f[14:]); seq >= 10000 {
							got[seq] = true
						}
					}
				}); err != nil {
					break
				}
			}
			if len(got) != 100 {
				t.Fatalf("after the outage %d of 100 frames arrived (dropped %d)", len(got), tx.Dropped())
			}
		})
	}
}
