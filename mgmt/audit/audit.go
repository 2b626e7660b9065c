// Package audit is the audit log: every login, failed login and commit,
// with who, when and what changed (secrets appear only as fingerprints).
//
// Whatever a client sends (a user name, a command) is written escaped and
// shortened, one record per event, so nobody can forge an entry or reach
// an administrator's terminal through `show log audit`. Failed and
// refused logins are recorded at most FailuresPerSource times per source
// and FailuresTotal times in all per minute; the rest are counted in one
// summary line, so a flood cannot rotate real history away.
package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/store"
)

// Limits of the failed-login records (per minute).
const (
	FailuresPerSource = 10
	FailuresTotal     = 60
)

// Log is kept on the config partition, so it survives reboots, and is
// capped in size. It implements commit.Recorder.
type Log struct {
	Path string
	Log  *slog.Logger     // also logged here, for `show log`
	Now  func() time.Time // nil: time.Now

	mu         sync.Mutex
	minute     time.Time      // start of the current failure-counting minute
	perSource  map[string]int // failure records this minute
	total      int
	suppressed map[string]int // failures not recorded this minute
	erased     bool
}

// auditMax is the size at which the log is rotated to Path.1.
const auditMax = 256 << 10

// Widths of what a client chooses, once escaped.
const (
	maxUser  = 64
	maxField = 512
)

func (a *Log) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Record appends one event. A nil Log records nothing.
func (a *Log) Record(who commit.Who, event string, details ...string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The last minute's summary of failures goes before this event, so
	// the log stays in time order even when no failure follows.
	a.flushMinute()
	a.write(who, event, details...)
}

// Failure records a failed or refused login from src, within the limits;
// the ones over them are summed up once the minute is over.
func (a *Log) Failure(src string, who commit.Who, event string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushMinute()
	if a.perSource == nil {
		a.perSource, a.suppressed = map[string]int{}, map[string]int{}
	}
	if a.perSource[src] >= FailuresPerSource || a.total >= FailuresTotal {
		if len(a.suppressed) < 1024 || a.suppressed[src] > 0 {
			a.suppressed[src]++
		} else {
			a.suppressed["other sources"]++
		}
		return
	}
	a.perSource[src]++
	a.total++
	a.write(who, event)
}

// flushMinute writes the summary of the previous minute's suppressed
// failures and starts a new minute. Called with mu held.
func (a *Log) flushMinute() {
	now := a.now()
	if now.Sub(a.minute) < time.Minute && !now.Before(a.minute) {
		return
	}
	for src, n := range a.suppressed {
		a.write(commit.Who{User: "system"}, fmt.Sprintf("%d more failed or refused logins from %s not recorded one by one (at most %d per source and %d in all per minute)",
			n, escape(src, maxField), FailuresPerSource, FailuresTotal))
	}
	a.minute, a.perSource, a.total, a.suppressed = now, nil, 0, nil
}

// write appends one record. Called with mu held.
func (a *Log) write(who commit.Who, event string, details ...string) {
	if a.erased {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s user=%s", a.now().UTC().Format(time.RFC3339), userField(who.User))
	if who.From != "" {
		fmt.Fprintf(&b, " from=%s", escape(who.From, maxField))
	}
	fmt.Fprintf(&b, " %s\n", escape(event, maxField))
	for _, d := range details {
		fmt.Fprintf(&b, "    %s\n", escape(d, maxField))
	}
	if a.Log != nil {
		a.Log.Info("audit: "+escape(event, maxField), "user", userField(who.User), "from", escape(who.From, maxField), "changes", len(details))
	}
	if a.Path == "" {
		return
	}
	if fi, err := os.Stat(a.Path); err == nil && fi.Size() > auditMax {
		store.WipeFile(a.Path + ".1") // its blocks are freed: clear them first
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

// userField is a user name as recorded: as is when it is a valid user
// name, else quoted with Go escapes and shortened.
func userField(u string) string {
	if u == "" {
		return "-"
	}
	plain := len(u) <= 32
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			plain = false
		}
	}
	if plain {
		return u
	}
	return quote(u, maxUser)
}

// quote is s in Go's ASCII quoting, cut at max bytes of input.
func quote(s string, max int) string {
	if len(s) <= max {
		return strconv.QuoteToASCII(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.QuoteToASCII(s[:cut]) + fmt.Sprintf("...(%d bytes)", len(s))
}

// escape keeps printable text as is and writes control characters (and
// invalid UTF-8) as Go escapes; text over max bytes is cut.
func escape(s string, max int) string {
	clean := len(s) <= max && utf8.ValidString(s)
	for _, r := range s {
		clean = clean && (r == ' ' || unicode.IsPrint(r))
	}
	if clean {
		return s
	}
	return quote(s, max)
}

// Tail is the last n lines of the audit log (the rotated file first if
// the current one is short), with control characters escaped and
// overlong lines cut, whatever the file holds.
func (a *Log) Tail(n int) []string {
	if a == nil || a.Path == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushMinute()
	lines := tailFile(a.Path, n)
	if len(lines) < n {
		lines = append(tailFile(a.Path+".1", n-len(lines)), lines...)
	}
	return lines
}

func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	r := bufio.NewReaderSize(f, 4096)
	for {
		line, err := readLine(r, maxField+64)
		if line != "" || err == nil {
			lines = append(lines, escapeLine(line))
			if len(lines) > 4*n {
				lines = lines[len(lines)-n:]
			}
		}
		if err != nil {
			break
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// readLine reads one line, keeping at most max bytes of it.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	size := 0
	for {
		part, err := r.ReadSlice('\n')
		size += len(part)
		if keep := max - len(b); keep > 0 {
			b = append(b, part[:min(len(part), keep)]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && size == 0 {
			return "", err
		}
		if len(part) > 0 && part[len(part)-1] == '\n' {
			size--
		}
		s := strings.TrimSuffix(string(b), "\n")
		if size > max {
			s += fmt.Sprintf("...(%d bytes)", size)
		}
		return s, err
	}
}

// escapeLine escapes the control characters of a stored line (a log
// written before records were escaped).
func escapeLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r == '\t':
			b.WriteString("    ")
		case r < 0x80 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r != ' ' && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Erase wipes the audit log's files (request system zeroize) and
// records nothing more until the reboot.
func (a *Log) Erase() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Path == "" {
		return nil
	}
	err := errors.Join(store.WipeFile(a.Path), store.WipeFile(a.Path+".1"))
	a.Path, a.erased = "", true
	return err
}
