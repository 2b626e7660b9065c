// Package access is what the serial console and the SSH server share:
// password checks, the per-source limit on failed logins, idle timeouts
// and the list of who is logged in.
package access

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/config"
)

// Authenticate checks a password against the config's users. It returns
// the user, or nil for a wrong name or password (the caller must not say
// which).
func Authenticate(c *config.Config, name, password string) *config.User {
	u := c.System.User(name)
	if u == nil || !u.CheckPassword(password) {
		return nil
	}
	return u
}

// Limiter blocks a source (an IP address, or "console") after MaxFails
// failed logins within Window, for Window.
type Limiter struct {
	MaxFails int
	Window   time.Duration
	mu       sync.Mutex
	fails    map[string][]time.Time
}

// NewLimiter allows 5 failures per minute per source.
func NewLimiter() *Limiter {
	return &Limiter{MaxFails: 5, Window: time.Minute, fails: map[string][]time.Time{}}
}

// Blocked reports whether src must wait, and how long.
func (l *Limiter) Blocked(src string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.recent(src)
	if len(f) < l.MaxFails {
		return 0, false
	}
	return time.Until(f[len(f)-1].Add(l.Window)), true
}

// Fail records a failed login from src.
func (l *Limiter) Fail(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[src] = append(l.recent(src), time.Now())
}

// Succeed forgets src's failures.
func (l *Limiter) Succeed(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, src)
}

func (l *Limiter) recent(src string) []time.Time {
	f := l.fails[src]
	for len(f) > 0 && time.Since(f[0]) > l.Window {
		f = f[1:]
	}
	if len(f) > l.MaxFails {
		f = f[len(f)-l.MaxFails:]
	}
	if len(f) == 0 {
		delete(l.fails, src) // bounded: sources with no recent failures are forgotten
	} else {
		l.fails[src] = f
	}
	return f
}

// Sessions is who is logged in.
type Sessions struct {
	mu   sync.Mutex
	next int
	m    map[int]string
}

// Add records a session and returns the function that ends it.
func (s *Sessions) Add(user, role, via, from string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int]string{}
	}
	s.next++
	id := s.next
	s.m[id] = fmt.Sprintf("%-12s %-9s %-8s %-22s since %s", user, role, via, from, time.Now().Format(time.DateTime))
	return func() { s.mu.Lock(); delete(s.m, id); s.mu.Unlock() }
}

// List is one line per session.
func (s *Sessions) List() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{fmt.Sprintf("%-12s %-9s %-8s %-22s %s", "USER", "ROLE", "VIA", "FROM", "LOGIN")}
	var ids []int
	for id := range s.m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		out = append(out, s.m[id])
	}
	return out
}

// Idle wraps a reader that ends (io.EOF) after d without input, calling
// onIdle once; d == 0 never ends. The wrapped reader's Read runs in a
// goroutine, so a blocked Read does not keep the timeout from firing.
type Idle struct {
	ch     chan chunk
	done   chan struct{} // closed by Close: the reader goroutine ends
	d      time.Duration
	onIdle func()
	buf    []byte
	err    error
}

type chunk struct {
	b   []byte
	err error
}

// NewIdle starts reading r.
func NewIdle(r io.Reader, d time.Duration, onIdle func()) *Idle {
	i := &Idle{ch: make(chan chunk), done: make(chan struct{}), d: d, onIdle: onIdle}
	go func() {
		for {
			b := make([]byte, 1024)
			n, err := r.Read(b)
			select {
			case i.ch <- chunk{b[:n], err}:
			case <-i.done:
				return // nobody reads any more
			}
			if err != nil {
				close(i.ch)
				return
			}
		}
	}()
	return i
}

// Read returns input, or io.EOF once idle.
func (i *Idle) Read(p []byte) (int, error) {
	if len(i.buf) == 0 && i.err == nil {
		var timeout <-chan time.Time
		if i.d > 0 {
			t := time.NewTimer(i.d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case c, ok := <-i.ch:
			if !ok {
				return 0, io.EOF
			}
			i.buf, i.err = c.b, c.err
		case <-timeout:
			if i.onIdle != nil {
				i.onIdle()
				i.onIdle = nil
			}
			return 0, io.EOF
		}
	}
	n := copy(p, i.buf)
	i.buf = i.buf[n:]
	if len(i.buf) == 0 && i.err != nil {
		err := i.err
		i.err = nil
		return n, err
	}
	return n, nil
}

// Close ends the reader goroutine once its pending Read returns (close r
// too, so that it does). Every Idle must be closed, or its goroutine
// stays for good.
func (i *Idle) Close() {
	select {
	case <-i.done:
	default:
		close(i.done)
	}
}

// SetTimeout changes the idle time and what happens then; the console
// keeps one Idle for its whole life and sets a timeout per session.
func (i *Idle) SetTimeout(d time.Duration, onIdle func()) { i.d, i.onIdle = d, onIdle }
