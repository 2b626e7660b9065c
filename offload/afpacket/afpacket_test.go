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
