// Package termtest is what the tests of interactive sessions (serial
// console, SSH) share: a screen that collects what the session shows and
// waits for text on it.
package termtest

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Wait is how long WaitFor waits: long enough for a loaded machine.
const Wait = 20 * time.Second

// Screen collects what a session writes. It is safe to write from one
// goroutine (an SSH or exec copier) while a test reads it in another.
type Screen struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor waits until the screen shows want, and fails the test if it
// does not within Wait.
func (s *Screen) WaitFor(t testing.TB, want string) {
	t.Helper()
	s.WaitFrom(t, 0, want)
}

// WaitFrom waits until the screen, from offset from on, shows want, and
// returns the offset just after it.
func (s *Screen) WaitFrom(t testing.TB, from int, want string) int {
	t.Helper()
	for end := time.Now().Add(Wait); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if i := strings.Index(s.String()[from:], want); i >= 0 {
			return from + i + len(want)
		}
	}
	t.Fatalf("the session never showed %q:\n%s", want, s.String()[from:])
	return 0
}
