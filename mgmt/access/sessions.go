package access

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/config"
)

// Sessions is who is logged in. Each session can be ended from outside:
// a commit that deletes a user or changes their role ends their sessions
// (Reconcile), so nobody keeps rights they no longer have.
type Sessions struct {
	mu   sync.Mutex
	next int
	m    map[int]*session
}

type session struct {
	user, role, via, from string
	since                 time.Time
	end                   func(reason string)
}

// Add records a session and returns the function that removes it. end
// (nil: the session cannot be ended from outside) must not block: it
// tells the session to log out, with the reason to show the user.
func (s *Sessions) Add(user, role, via, from string, end func(reason string)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int]*session{}
	}
	s.next++
	id := s.next
	s.m[id] = &session{user: user, role: role, via: via, from: from, since: time.Now(), end: end}
	return func() { s.mu.Lock(); delete(s.m, id); s.mu.Unlock() }
}

// Reconcile ends the sessions of users that sys no longer has, or has
// with another role (they log in again with the new one). It returns
// how many it ended.
func (s *Sessions) Reconcile(sys *config.System) int {
	s.mu.Lock()
	var ends []func()
	for _, x := range s.m {
		u := sys.User(x.user)
		var reason string
		switch {
		case u == nil:
			reason = "user " + x.user + " was deleted by a commit"
		case string(u.Role) != x.role:
			reason = "user " + x.user + " is now " + string(u.Role) + " (was " + x.role + "): log in again"
		default:
			continue
		}
		if x.end != nil {
			end := x.end
			ends = append(ends, func() { end(reason) })
		}
	}
	s.mu.Unlock()
	for _, e := range ends {
		e()
	}
	return len(ends)
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
		x := s.m[id]
		out = append(out, fmt.Sprintf("%-12s %-9s %-8s %-22s since %s", x.user, x.role, x.via, x.from, x.since.Format(time.DateTime)))
	}
	return out
}

// Len is the number of sessions.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
