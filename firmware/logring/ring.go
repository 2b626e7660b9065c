// Package logring keeps the last lines of the system log in memory for
// `show log`: the appliance has no disk to spare for logs, and its
// console is for the CLI.
package logring

import (
	"strings"
	"sync"
)

// Ring is an io.Writer that keeps the last Max lines.
type Ring struct {
	Max   int
	mu    sync.Mutex
	lines []string
	part  string
}

// Write splits p into lines.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.part + string(p)
	parts := strings.Split(s, "\n")
	r.part = parts[len(parts)-1]
	r.lines = append(r.lines, parts[:len(parts)-1]...)
	if over := len(r.lines) - max(r.Max, 1); over > 0 {
		r.lines = append([]string(nil), r.lines[over:]...)
	}
	return len(p), nil
}

// Tail is the last n lines.
func (r *Ring) Tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines[max(0, len(r.lines)-n):]...)
}
