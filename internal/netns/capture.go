package netns

import (
	"net"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Capture records the frames one port sees, from a packet socket bound to
// it, for tests that must prove what did or did not cross a port. It needs
// no tshark.
type Capture struct {
	fd       int
	keep     func(frame []byte, outgoing bool) bool
	mu       sync.Mutex
	frames   [][]byte
	done     chan struct{}
	finished chan struct{}
	stop     sync.Once
}

// StartCapture records the frames ifname receives and sends, inside ns
// (nil: the caller's namespace), that keep accepts (nil keeps every
// frame), until Stop.
func StartCapture(ns *NS, ifname string, keep func(frame []byte, outgoing bool) bool) (*Capture, error) {
	c := &Capture{keep: keep, done: make(chan struct{}), finished: make(chan struct{})}
	open := func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0 until bound: created for ETH_P_ALL, the socket would
		// take every interface's frames until the bind.
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return err
		}
		if err := unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
			unix.Close(c.fd)
			return err
		}
		// The reader wakes every 100 ms to see whether Stop was called.
		return unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	}
	var err error
	if ns == nil {
		err = open()
	} else {
		err = ns.Do(open)
	}
	if err != nil {
		return nil, err
	}
	go c.read()
	return c, nil
}

func (c *Capture) read() {
	defer close(c.finished)
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		if c.keep != nil && !c.keep(buf[:n], ll != nil && ll.Pkttype == unix.PACKET_OUTGOING) {
			continue
		}
		c.mu.Lock()
		c.frames = append(c.frames, slices.Clone(buf[:n]))
		c.mu.Unlock()
	}
}

// Frames is what was recorded so far.
func (c *Capture) Frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

// Stop ends the capture and returns every frame recorded. It may be
// called again, and returns the same frames.
func (c *Capture) Stop() [][]byte {
	c.stop.Do(func() {
		close(c.done)
		<-c.finished
		unix.Close(c.fd)
	})
	return c.Frames()
}

// Received is a keep function for StartCapture: the frames the port
// received, none it sent.
func Received(_ []byte, outgoing bool) bool { return !outgoing }

func htons(v uint16) uint16 { return v<<8 | v>>8 }
