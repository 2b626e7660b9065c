// Package audit is the audit log: every login, failed login and commit,
// with who, when and what changed (secrets appear only as fingerprints).
package audit

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/commit"
)

// Log is kept on the config partition, so it survives reboots, and is
// capped in size. It implements commit.Recorder.
type Log struct {
	Path string
	Log  *slog.Logger // also logged here, for `show log`
	mu   sync.Mutex
}

// auditMax is the size at which the log is rotated to Path.1.
const auditMax = 256 << 10

// Record appends one event. A nil Log records nothing.
func (a *Log) Record(who commit.Who, event string, details ...string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s user=%s", time.Now().UTC().Format(time.RFC3339), or(who.User, "-"))
	if who.From != "" {
		fmt.Fprintf(&b, " from=%s", who.From)
	}
	fmt.Fprintf(&b, " %s\n", event)
	for _, d := range details {
		fmt.Fprintf(&b, "    %s\n", d)
	}
	if a.Log != nil {
		a.Log.Info("audit: "+event, "user", who.User, "from", who.From, "changes", len(details))
	}
	if a.Path == "" {
		return
	}
	if fi, err := os.Stat(a.Path); err == nil && fi.Size() > auditMax {
		os.Rename(a.Path, a.Path+".1")
	}
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		if a.Log != nil {
			a.Log.Error("audit log", "err", err)
		}
		return
	}
	defer f.Close()
	f.WriteString(b.String())
	f.Sync()
}

// Tail is the last n lines of the audit log.
func (a *Log) Tail(n int) []string {
	if a == nil || a.Path == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.Path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
