package kernel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/internal/netns"
)

// TestEAPOLSocketSurvivesLineDown takes the line port down and up under
// an open EAPOL socket: the kernel reports ENETDOWN on it once, and MKPDUs
// must be received again once the port is back (a reader that ended
// there left the kernel datapath unable to re-form its CA after any
// line outage). Runs on the host: it needs packet sockets, not macsec.
func TestEAPOLSocketSurvivesLineDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (make test runs as root in CI)")
	}
	ns, err := netns.Add(fmt.Sprintf("swke%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	if err := netns.Veth(ns, "line", ns, "peer"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	var s *eapolSocket
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = ns.Do(func() error {
		var err error
		s, err = openEAPOL(ctx, "line", []uint16{0x888e}, func(f []byte) {
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
		}, log)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()

	// The peer end sends one MKPDU-shaped frame (EtherType 888E) per call.
	var peer int
	var peerIndex int
	err = ns.Do(func() error {
		ifc, err := net.InterfaceByName("peer")
		if err != nil {
			return err
		}
		peerIndex = ifc.Index
		peer, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(peer)
	send := func(mark byte) {
		frame := make([]byte, 60)
		copy(frame, []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03, 0x02, 0, 0, 0, 0, 0x02, 0x88, 0x8e})
		frame[20] = mark
		to := &unix.SockaddrLinklayer{Ifindex: peerIndex, Protocol: htons(0x888e), Halen: 6}
		copy(to.Addr[:], frame[:6])
		if err := unix.Sendto(peer, frame, 0, to); err != nil {
			t.Fatalf("peer send: %v", err)
		}
	}
	received := func(mark byte) bool {
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			for _, f := range got {
				if len(f) > 20 && f[20] == mark {
					mu.Unlock()
					return true
				}
			}
			mu.Unlock()
		}
		return false
	}

	send(1)
	if !received(1) {
		t.Fatal("no MKPDU received before the outage")
	}
	for round := byte(2); round < 5; round++ {
		if err := ns.IP("link", "set", "dev", "line", "down"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // the reader wakes every 200 ms
		if err := ns.IP("link", "set", "dev", "line", "up"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		send(round)
		if !received(round) {
			t.Fatalf("outage %d: no MKPDU received after the line came back (socket error %v)\nlog:\n%s", round-1, s.err(), logged())
		}
	}
	if err := s.err(); err != nil {
		t.Errorf("socket reports %v after the line came back", err)
	}
	if l := logged(); !strings.Contains(l, "line port down") {
		t.Errorf("the outage was not logged:\n%s", l)
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
