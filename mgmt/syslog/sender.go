package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/config"
)

// Message size limits: RFC 5426 asks UDP senders to stay within 2048
// octets; over TCP and TLS, 8192 is what collectors accept by default.
const (
	maxUDP = 2048
	maxTCP = 8192
)

// sender delivers one collector's messages from its queue.
type sender struct {
	cfg      config.SyslogHost
	name     string // address:port/transport
	severity int    // highest RFC 5424 severity number sent
	level    slog.Level
	buffer   int
	f        *Forwarder
	cancel   context.CancelFunc
	done     chan struct{}
	wake     chan struct{}

	mu        sync.Mutex
	queue     [][]byte
	state     string
	since     time.Time
	lastErr   string
	sent      uint64
	dropped   uint64
	unnoticed uint64 // drops the collector has not been told about yet
}

func (f *Forwarder) newSender(h config.SyslogHost, buffer int) *sender {
	sev := h.SeverityName().Level()
	s := &sender{cfg: h, name: describe(h), severity: sev, level: levelFor(sev), buffer: buffer, f: f,
		done: make(chan struct{}), wake: make(chan struct{}, 1), state: "connecting", since: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s
}

func (s *sender) maxLen() int {
	if s.cfg.TransportName() == "udp" {
		return maxUDP
	}
	return maxTCP
}

// put queues a message; a full queue drops its oldest.
func (s *sender) put(msg []byte) {
	s.mu.Lock()
	if len(s.queue) >= s.buffer {
		s.queue = s.queue[1:]
		s.dropped++
		s.unnoticed++
	}
	s.queue = append(s.queue, msg)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) stop() {
	s.cancel()
	<-s.done
}

func (s *sender) status() HostStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return HostStatus{Collector: s.name, Severity: string(s.cfg.SeverityName()), State: s.state, Since: s.since, LastError: s.lastErr,
		Queued: len(s.queue), Buffer: s.buffer, Sent: s.sent, Dropped: s.dropped}
}

// setState records a state change and reports whether it was one.
func (s *sender) setState(state, errText string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errText != "" {
		s.lastErr = errText
	}
	if s.state == state {
		return false
	}
	s.state, s.since = state, time.Now()
	return true
}

func (s *sender) log() *slog.Logger {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.opts.Log
}

// run connects, sends and reconnects until stopped.
func (s *sender) run(ctx context.Context) {
	defer close(s.done)
	addr := net.JoinHostPort(s.cfg.Address.String(), strconv.Itoa(s.cfg.PortNumber()))
	wait := time.Second
	for ctx.Err() == nil {
		conn, err := s.dial(ctx, addr)
		if err != nil {
			if s.setState("unreachable", err.Error()) {
				s.log().Warn("syslog collector unreachable; messages wait in the buffer", "collector", s.name, "err", err, "buffer", s.buffer)
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, s.f.opts.Retry)
			continue
		}
		wait = time.Second
		state := "connected"
		if s.cfg.TransportName() == "udp" {
			state = "sending"
		}
		if s.setState(state, "") && state == "connected" {
			s.log().Info("syslog collector connected", "collector", s.name)
		}
		err = s.send(ctx, conn)
		conn.Close()
		if err != nil && ctx.Err() == nil {
			s.setState("reconnecting", err.Error())
			s.log().Warn("syslog collector connection lost; messages wait in the buffer", "collector", s.name, "err", err)
		}
	}
}

func (s *sender) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	switch s.cfg.TransportName() {
	case "udp":
		return d.DialContext(ctx, "udp", addr)
	case "tls":
		tc, err := tlsConfig(s.cfg, s.f.opts.ConfigDir)
		if err != nil {
			return nil, err
		}
		c, err := (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("TLS to %s: %w", addr, err)
		}
		return c, nil
	}
	return d.DialContext(ctx, "tcp", addr)
}

// send writes queued messages until the connection fails or ctx ends.
// A message leaves the queue only once written. TCP has no
// acknowledgement a collector sends, so a reader watches for the
// collector closing the connection, and nothing more is written once it
// has.
func (s *sender) send(ctx context.Context, conn net.Conn) error {
	udp := s.cfg.TransportName() == "udp"
	closed := make(chan error, 1)
	if !udp {
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := conn.Read(buf); err != nil {
					if err == io.EOF {
						err = errors.New("the collector closed the connection")
					}
					closed <- err
					return
				}
			}
		}()
	}
	for {
		s.mu.Lock()
		var msg []byte
		notice := false
		if s.unnoticed > 0 && !udp {
			// Told to this collector first, straight, not through the
			// log: logging it would queue it behind a full buffer.
			msg, notice = s.f.dropNotice(s), true
		}
		if msg == nil && len(s.queue) > 0 {
			msg = s.queue[0]
		}
		s.mu.Unlock()
		if msg == nil {
			select {
			case <-ctx.Done():
				return nil
			case err := <-closed:
				return err
			case <-s.wake:
			}
			continue
		}
		select {
		case err := <-closed:
			return err
		default:
		}
		out := msg
		if !udp {
			out = frame(msg)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(out); err != nil {
			if udp {
				// A datagram refused (ICMP port unreachable) is lost: UDP
				// cannot buffer. Count it, and go on with the next.
				s.mu.Lock()
				if len(s.queue) > 0 && &s.queue[0][0] == &msg[0] {
					s.queue = s.queue[1:]
				}
				s.dropped++
				s.lastErr = err.Error()
				s.mu.Unlock()
				s.setState("refused", err.Error())
				continue
			}
			return err
		}
		s.mu.Lock()
		if notice {
			s.unnoticed = 0
		} else if len(s.queue) > 0 && &s.queue[0][0] == &msg[0] {
			s.queue = s.queue[1:]
		}
		s.sent++
		if udp {
			s.state = "sending"
		}
		s.mu.Unlock()
	}
}
