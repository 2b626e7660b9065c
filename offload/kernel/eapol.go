package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// eapolSocket carries key agreement frames on the line port: one packet
// socket per EtherType, bound to the port itself (not the macsec link), so
// MKPDUs are read and sent in clear beside the kernel's datapath.
type eapolSocket struct {
	ifindex int
	fds     []int
	wg      sync.WaitGroup
	mu      sync.Mutex
	failed  error
	closed  atomic.Bool
	in      atomic.Uint64
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openEAPOL(ctx context.Context, port string, types []uint16, on func([]byte), log *slog.Logger) (*eapolSocket, error) {
	ifc, err := net.InterfaceByName(port)
	if err != nil {
		return nil, fmt.Errorf("line port %s: %w", port, err)
	}
	s := &eapolSocket{ifindex: ifc.Index}
	for _, t := range types {
		// Protocol 0 receives nothing until bind names the port: created
		// with the EtherType, the socket would take that EtherType from
		// every interface until then.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("EAPOL socket on %s: %w", port, err)
		}
		s.fds = append(s.fds, fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(t), Ifindex: ifc.Index}); err != nil {
			s.close()
			return nil, fmt.Errorf("EAPOL socket on %s: bind: %w", port, err)
		}
		// Wake up now and then to notice a closed socket.
		tv := unix.Timeval{Usec: 200_000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		s.wg.Add(1)
		go s.read(ctx, fd, on, log)
	}
	return s, nil
}

func (s *eapolSocket) read(ctx context.Context, fd int, on func([]byte), log *slog.Logger) {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	down := false
	for ctx.Err() == nil && !s.closed.Load() {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EBADF) {
				return
			}
			if errors.Is(err, unix.ENETDOWN) {
				// The port went down. The kernel says so once; the socket
				// stays bound and receives again when the port comes back,
				// so a line outage must not end MKA for good.
				if !down {
					log.Warn("EAPOL socket: line port down, waiting for it")
					down = true
				}
				continue
			}
			s.mu.Lock()
			s.failed = fmt.Errorf("EAPOL socket: %w", err)
			s.mu.Unlock()
			log.Error("EAPOL socket failed", "err", err)
			return
		}
		if down {
			log.Info("EAPOL socket: receiving again")
			down = false
		}
		// Only frames that arrived on the port: not our own transmissions.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		s.in.Add(1)
		if on != nil {
			on(append([]byte(nil), buf[:n]...))
		}
	}
}

func (s *eapolSocket) send(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fds) == 0 {
		return errors.New("no EAPOL socket")
	}
	if len(frame) < 14 {
		return errors.New("EAPOL frame shorter than an Ethernet header")
	}
	to := &unix.SockaddrLinklayer{Ifindex: s.ifindex, Protocol: htons(uint16(frame[12])<<8 | uint16(frame[13])), Halen: 6}
	copy(to.Addr[:], frame[:6])
	return unix.Sendto(s.fds[0], frame, 0, to)
}

func (s *eapolSocket) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *eapolSocket) close() {
	s.closed.Store(true)
	s.mu.Lock()
	fds := s.fds
	s.fds = nil
	s.mu.Unlock()
	for _, fd := range fds {
		unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	s.wg.Wait()
	for _, fd := range fds {
		unix.Close(fd)
	}
}
