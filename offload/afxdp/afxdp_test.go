package afxdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/internal/tctag"
	"github.com/secwire/secwire/offload/afpacket"
	"github.com/secwire/secwire/offload/ring"
)

// testNS makes a namespace with a veth pair x0–x1 (MTU mtu), or skips when
// the test cannot (not root).
func testNS(t *testing.T, mtu int) *netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (make test runs as root in CI)")
	}
	ns, err := netns.Add(fmt.Sprintf("swxdp%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	if err := netns.Veth(ns, "x0", ns, "x1"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"x0", "x1"} {
		if err := ns.IP("link", "set", "dev", d, "mtu", fmt.Sprint(mtu)); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func marked(seq, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5})
	binary.BigEndian.PutUint32(f[14:], uint32(seq))
	copy(f[18:], "MARKER-afxdp")
	return f
}

// take collects n frames from p (copies), or fails after d.
func take(t *testing.T, p *Port, n int, d time.Duration) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got [][]byte
	buf := make([]ring.Frame, 64)
	for len(got) < n {
		k, _ := p.Take(buf)
		for _, f := range buf[:k] {
			if bytes.Contains(f.Data, []byte("MARKER-afxdp")) {
				got = append(got, append([]byte(nil), f.Data...))
			}
			p.Release(f)
		}
		if k == 0 {
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("received %d of %d frames: %v", len(got), n, err)
			}
		}
	}
	return got
}

// TestPortCarriesFramesBothWays runs AF_XDP natively on a veth: frames
// sent into the port arrive in order, a VLAN tag the stack carried in
// metadata (a VLAN device on the peer) is back in the frame, and frames
// the port sends arrive at the peer.
func TestPortCarriesFramesBothWays(t *testing.T) {
	ns := testNS(t, 1500)
	var p *Port
	var peer *afpacket.Tx
	var tagged *afpacket.Tx
	var peerRx *afpacket.Rx
	err := ns.Do(func() (err error) {
		if p, err = Open("x0", Options{}); err != nil {
			return err
		}
		if peer, err = afpacket.OpenTx("x1", afpacket.TxOptions{}); err != nil {
			return err
		}
		// Frames of EtherType 0x88b6 leave x1 with VLAN 300 in
		// metadata, through the qdisc where the tagger sits.
		tagger, err := tctag.Push("x1", 0x88b6, 300)
		if err != nil {
			return err
		}
		t.Cleanup(func() { tagger.Close() })
		if tagged, err = afpacket.OpenTx("x1", afpacket.TxOptions{}); err != nil {
			return err
		}
		if err := tagged.SetQdiscBypass(false); err != nil {
			return err
		}
		peerRx, err = afpacket.OpenRx("x1", afpacket.RxOptions{Promiscuous: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer peer.Close()
	defer tagged.Close()
	defer peerRx.Close()
	t.Logf("zero copy: %v", p.ZeroCopy())
	var sent [][]byte
	for i := range 2000 { // fewer than the receive ring holds: read after

		f := marked(i, 60+(i*37)%1454)
		sent = append(sent, f)
		if err := peer.Send(f); err != nil {
			t.Fatal(err)
		}
		if i%32 == 31 {
			peer.Flush()
		}
	}
	peer.Flush()
	got := take(t, p, len(sent), 10*time.Second)
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs or is out of order", i)
		}
	}
	// The tag travels as metadata; the XDP program must put it back.
	inner := marked(7777, 200)
	inner[13] = 0xb6
	if err := tagged.Send(inner); err != nil {
		t.Fatal(err)
	}
	tagged.Flush()
	f := take(t, p, 1, 5*time.Second)[0]
	if binary.BigEndian.Uint16(f[12:]) != 0x8100 || binary.BigEndian.Uint16(f[14:])&0xfff != 300 || !bytes.Equal(f[16:], inner[12:]) || !bytes.Equal(f[:12], inner[:12]) {
		t.Fatalf("frame from the VLAN device arrived as %x, want tag 300 in place", f[:24])
	}
	// And out: 2000 frames, more than the transmit ring, in order.
	tx := p.Tx()
	for i := range 2000 {
		if err := tx.Send(marked(10000+i, 100+i%1400)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i%64 == 63 {
			if err := tx.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tx.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next := 10000
	for next < 12000 {
		if _, _, err := peerRx.Receive(ctx, func(f []byte) {
			if bytes.Contains(f, []byte("MARKER-afxdp")) {
				if seq := int(binary.BigEndian.Uint32(f[14:])); seq == next {
					next++
				} else {
					t.Errorf("peer got frame %d, want %d", seq, next)
				}
			}
		}); err != nil {
			t.Fatalf("peer got %d of 2000 frames: %v", next-10000, err)
		}
	}
}

// TestVisibleHandsFramesToTheStack: while a capture watches, received
// frames go through the kernel (captures see them, the port still takes
// them through its AF_PACKET ring) and sent frames through the qdisc.
func TestVisibleHandsFramesToTheStack(t *testing.T) {
	ns := testNS(t, 1500)
	var p *Port
	var peer *afpacket.Tx
	// A capture as tcpdump makes it: it sees frames both ways.
	var capture int
	err := ns.Do(func() (err error) {
		if p, err = Open("x0", Options{}); err != nil {
			return err
		}
		if capture, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil { // nothing until bound
			return err
		}
		ifi, _ := net.InterfaceByName("x0")
		tv := unix.Timeval{Usec: 300000}
		unix.SetsockoptTimeval(capture, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Bind(capture, &unix.SockaddrLinklayer{Protocol: 0x0300, Ifindex: ifi.Index}); err != nil {
			return err
		}
		peer, err = afpacket.OpenTx("x1", afpacket.TxOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer peer.Close()
	defer unix.Close(capture)
	captured := func() int {
		n := 0
		buf := make([]byte, 2048)
		for {
			k, _, err := unix.Recvfrom(capture, buf, 0)
			if err != nil {
				return n
			}
			if bytes.Contains(buf[:k], []byte("MARKER-afxdp")) {
				n++
			}
		}
	}
	peer.Send(marked(1, 100))
	peer.Flush()
	take(t, p, 1, 5*time.Second)
	if n := captured(); n != 0 {
		t.Fatalf("a capture saw %d frames that XDP took", n)
	}
	if err := p.SetVisible(true); err != nil {
		t.Fatal(err)
	}
	p.Tx().SetQdiscBypass(false)
	peer.Send(marked(2, 100))
	peer.Flush()
	if f := take(t, p, 1, 5*time.Second)[0]; binary.BigEndian.Uint32(f[14:]) != 2 {
		t.Fatalf("got frame %x", f[:20])
	}
	p.Tx().Send(marked(3, 100))
	p.Tx().Flush()
	if n := captured(); n != 2 {
		t.Fatalf("a capture saw %d frames while visible, want the one received and the one sent", n)
	}
}

// TestOpenFailsCleanlyWhereXDPCannotRun: a jumbo MTU is beyond a single
// XDP buffer; Open says why, and leaves no program on the port.
func TestOpenFailsCleanlyWhereXDPCannotRun(t *testing.T) {
	ns := testNS(t, 9000)
	err := ns.Do(func() error {
		_, err := Open("x0", Options{})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "MTU 9000") {
		t.Fatalf("Open on a 9000-byte MTU port = %v, want an MTU error", err)
	}
	out, _ := ns.Command("ip", "link", "show", "dev", "x0").CombinedOutput()
	if strings.Contains(string(out), "xdp") {
		t.Fatalf("an XDP program stayed on the port:\n%s", out)
	}
}

// TestTxSurvivesPortDown: while the port is down, Send and Flush return
// at once and count the frames they drop; once it is up, frames flow.
func TestTxSurvivesPortDown(t *testing.T) {
	ns := testNS(t, 1500)
	var p *Port
	var peerRx *afpacket.Rx
	err := ns.Do(func() (err error) {
		if p, err = Open("x0", Options{}); err != nil {
			return err
		}
		peerRx, err = afpacket.OpenRx("x1", afpacket.RxOptions{Promiscuous: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer peerRx.Close()
	if err := ns.IP("link", "set", "dev", "x0", "down"); err != nil {
		t.Fatal(err)
	}
	tx := p.Tx()
	start := time.Now()
	for i := range 3000 { // three times the transmit ring
		tx.Send(marked(i, 100))
		if i%32 == 31 {
			tx.Flush()
		}
	}
	tx.Flush()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("sending to a down port took %v", d)
	}
	dropped := p.tx.dropped.Load()
	if dropped == 0 {
		t.Fatal("no frames counted as dropped while the port was down")
	}
	if err := ns.IP("link", "set", "dev", "x0", "up"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for i := range 100 {
		if err := tx.Send(marked(100000+i, 100)); err != nil {
			t.Fatalf("Send after the port came back: %v", err)
		}
	}
	tx.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[uint32]bool{}
	for len(got) < 100 && ctx.Err() == nil {
		peerRx.Receive(ctx, func(f []byte) {
			if bytes.Contains(f, []byte("MARKER-afxdp")) {
				if seq := binary.BigEndian.Uint32(f[14:]); seq >= 100000 {
					got[seq] = true
				}
			}
		})
	}
	if len(got) != 100 {
		t.Fatalf("after the port came back %d of 100 frames arrived (dropped while down: %d)", len(got), dropped)
	}
	t.Logf("dropped while down: %d", dropped)
}
