package main

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/internal/netns"
)

// wire is a line the test controls: A's and B's line ports connect to a
// namespace where the test relays every frame, and may drop some, the way
// a provider circuit that filters addresses or one direction would.
type wire struct {
	// drop decides, per frame, whether the circuit loses it; fromA is the
	// direction.
	drop func(fromA bool, frame []byte) bool
	mu   sync.Mutex
}

func (w *wire) setDrop(f func(fromA bool, frame []byte) bool) {
	w.mu.Lock()
	w.drop = f
	w.mu.Unlock()
}

func (w *wire) dropped(fromA bool, f []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drop != nil && w.drop(fromA, f)
}

// connect builds A.line — wa [relay] wb — B.line and starts the relay.
func (w *wire) connect(t *testing.T, a, b *netns.NS, id int) error {
	ns, err := netns.Add(fmt.Sprintf("swwire%d", id))
	if err != nil {
		return err
	}
	t.Cleanup(func() { ns.Delete() })
	if err := netns.Veth(a, "line", ns, "wa"); err != nil {
		return err
	}
	if err := netns.Veth(b, "line", ns, "wb"); err != nil {
		return err
	}
	for _, port := range []string{"wa", "wb"} {
		// VLAN tags stay in the frames the relay reads (veth would move
		// them to metadata a plain packet socket does not see).
		if out, err := ns.Command("ethtool", "-K", port, "rxvlan", "off", "txvlan", "off").CombinedOutput(); err != nil {
			return fmt.Errorf("ethtool -K %s: %v: %s", port, err, out)
		}
	}
	var fa, fb int
	if err := ns.Do(func() error {
		var err error
		if fa, err = rawSocket("wa"); err != nil {
			return err
		}
		fb, err = rawSocket("wb")
		return err
	}); err != nil {
		return err
	}
	t.Cleanup(func() { unix.Close(fa); unix.Close(fb) })
	go w.relay(fa, fb, true)
	go w.relay(fb, fa, false)
	return nil
}

// rawSocket is a packet socket bound to ifname that sees only what
// arrives there.
func rawSocket(ifname string) (int, error) {
	ifi, err := ifindex(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	all := uint16(unix.ETH_P_ALL)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: all<<8 | all>>8, Ifindex: ifi}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func ifindex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// relay copies frames from one side to the other until the sockets close.
func (w *wire) relay(from, to int, fromA bool) {
	buf := make([]byte, 16<<10)
	for {
		n, _, err := unix.Recvfrom(from, buf, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if n < 14 || w.dropped(fromA, buf[:n]) {
			continue
		}
		unix.Write(to, buf[:n])
	}
}
