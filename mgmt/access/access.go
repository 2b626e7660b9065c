// Package access is what the serial console and the SSH server share:
// password checks, the per-source limit on failed logins, the limits on
// logins in progress, idle timeouts and the list of who is logged in.
package access

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/secwire/secwire/firmware/config"
)

// dummyHash is checked when the user does not exist, so that a wrong
// name costs the same bcrypt time as a wrong password (no user
// enumeration by timing): the hash of random bytes nobody knows.
var dummyHash = sync.OnceValue(func() string {
	b := make([]byte, 16)
	rand.Read(b)
	h, _ := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(b)), bcrypt.DefaultCost)
	return string(h)
})

// Authenticate checks a password against the system's users. It returns
// the user, or nil for a wrong name or password (the caller must not say
// which).
func Authenticate(s *config.System, name, password string) *config.User {
	u := s.User(name)
	if u == nil || u.Password == "" {
		(&config.User{Password: dummyHash()}).CheckPassword(password)
		return nil
	}
	if !u.CheckPassword(password) {
		return nil
	}
	return u
}

// Limiter blocks a source (an IP address, or "console") after MaxFails
// unsuccessful logins within Window, for Window after the last one.
// Logins still being checked count too, so parallel attempts from one
// source cannot get past the limit.
type Limiter struct {
	MaxFails int
	Window   time.Duration
	Now      func() time.Time // nil: time.Now

	mu       sync.Mutex
	fails    map[string][]time.Time
	inflight map[string]int
	good     map[string]time.Time // last successful login per source
}

// Known good sources: an address that logged in within goodFor goes
// ahead of unknown ones when logins queue (an administrator's station
// during a flood). At most maxGood are remembered.
const (
	goodFor = 24 * time.Hour
	maxGood = 256
)

func (l *Limiter) succeed(src string) {
	delete(l.fails, src)
	if l.good == nil {
		l.good = map[string]time.Time{}
	}
	if _, ok := l.good[src]; !ok && len(l.good) >= maxGood {
		oldest := ""
		for s, t := range l.good {
			if oldest == "" || t.Before(l.good[oldest]) {
				oldest = s
			}
		}
		delete(l.good, oldest)
	}
	l.good[src] = l.now()
}

// trusted is 1 for a source that logged in within goodFor, else 0.
func (l *Limiter) trusted(src string) int {
	if t, ok := l.good[src]; ok && l.now().Sub(t) < goodFor {
		return 1
	}
	return 0
}

// NewLimiter allows 5 failures per minute per source.
func NewLimiter() *Limiter {
	return &Limiter{MaxFails: 5, Window: time.Minute}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Blocked reports whether src must wait, and how long.
func (l *Limiter) Blocked(src string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocked(src, 0)
}

func (l *Limiter) blocked(src string, extra int) (time.Duration, bool) {
	f := l.recent(src)
	if len(f)+extra < l.MaxFails {
		return 0, false
	}
	if len(f) == 0 {
		return time.Second, true // only attempts in progress: try again shortly
	}
	return f[len(f)-1].Add(l.Window).Sub(l.now()), true
}

// Begin reserves a login attempt from src, unless src is blocked. The
// attempt counts against the limit until done says how it went.
func (l *Limiter) Begin(src string) (done func(ok bool), wait time.Duration, blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if wait, blocked := l.blocked(src, l.inflight[src]); blocked {
		return nil, wait, true
	}
	if l.inflight == nil {
		l.inflight = map[string]int{}
	}
	l.inflight[src]++
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.inflight[src]--; l.inflight[src] <= 0 {
				delete(l.inflight, src)
			}
			if ok {
				l.succeed(src)
			} else {
				l.fail(src)
			}
		})
	}, 0, false
}

// Fail records a failed login from src.
func (l *Limiter) Fail(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail(src)
}

func (l *Limiter) fail(src string) {
	if l.fails == nil {
		l.fails = map[string][]time.Time{}
	}
	l.fails[src] = append(l.recent(src), l.now())
}

// Rank is how suspect src is for a connection slot, lower first: its
// recent failures, one less for a known good source (attempts in
// progress do not count: a login being checked keeps its slot).
func (l *Limiter) Rank(src string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(src)) - l.trusted(src)
}

// Succeed forgets src's failures and remembers it as a known good source.
func (l *Limiter) Succeed(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.succeed(src)
}

// Score is how suspect src is, lower first: its recent failures plus
// its attempts in progress, one less for a known good source.
func (l *Limiter) Score(src string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(src)) + l.inflight[src] - l.trusted(src)
}

func (l *Limiter) recent(src string) []time.Time {
	f := l.fails[src]
	now := l.now()
	for len(f) > 0 && now.Sub(f[0]) > l.Window {
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
