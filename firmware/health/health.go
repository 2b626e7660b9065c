// Package health tells whether the firmware is making progress: loops
// mark heartbeats, components report their own progress, and a Monitor
// joins them into one verdict. The watchdog is fed only while that
// verdict is good, so a wedged part resets the box instead of leaving it
// up and silent.
package health

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StaleAfter is how long a loop may go without progress before it counts
// as wedged. Every loop it applies to ticks at least once a second, so it
// leaves room for a loaded CPU, never for a hang.
const StaleAfter = 10 * time.Second

// Beat is a heartbeat: a loop marks it each time round.
type Beat struct{ at atomic.Int64 }

// Mark records progress at t.
func (b *Beat) Mark(t time.Time) { b.at.Store(t.UnixNano()) }

// Last is when the beat was last marked (zero if never).
func (b *Beat) Last() time.Time {
	n := b.at.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stale says what has made no progress for longer than max, or nil.
func Stale(what string, last, now time.Time, max time.Duration) error {
	if last.IsZero() {
		return fmt.Errorf("%s has not started", what)
	}
	if d := now.Sub(last); d > max {
		return fmt.Errorf("%s has made no progress for %s", what, d.Round(time.Second))
	}
	return nil
}

// Check reports why a part is not making progress at now, or nil.
type Check func(now time.Time) error

// Monitor is the set of checks the watchdog asks before it is fed.
type Monitor struct {
	mu     sync.Mutex
	names  []string
	checks []Check
}

// Add adds a named check; checks run in the order they were added.
func (m *Monitor) Add(name string, c Check) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = append(m.names, name)
	m.checks = append(m.checks, c)
}

// Check runs every check and joins what failed, each prefixed with its
// name.
func (m *Monitor) Check(now time.Time) error {
	m.mu.Lock()
	names, checks := m.names, m.checks
	m.mu.Unlock()
	var errs []error
	for i, c := range checks {
		if err := c(now); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
		}
	}
	return errors.Join(errs...)
}

// Runtime is what the process uses, for `show system` and for tests that
// check nothing leaks.
type Runtime struct {
	Goroutines int    `json:"goroutines"`
	Threads    int    `json:"threads"`
	RSSBytes   uint64 `json:"rss_bytes"`
}

// ReadRuntime reads the goroutine count and, from /proc/self/status, the
// OS threads and resident memory.
func ReadRuntime() Runtime {
	r := Runtime{Goroutines: runtime.NumGoroutine()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return r
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			r.RSSBytes = n * 1024 // reported in kB
		case "Threads":
			r.Threads = int(n)
		}
	}
	return r
}
