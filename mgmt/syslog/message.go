package syslog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Facilities used: the system log is "daemon"; audit events (logins,
// commits) are "authpriv", as security and authorisation messages are.
const (
	facilityDaemon   = 3
	facilityAuthPriv = 10
)

// severity maps a slog level to an RFC 5424 severity.
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // error
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // informational
	}
	return 7 // debug
}

// entry is one log record, formatted apart from the header.
type entry struct {
	time     time.Time
	severity int
	facility int
	msgID    string
	text     string // the message and its attributes, key=value
}

// format renders an RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME
// PROCID MSGID SD MSG, cut to max octets on a UTF-8 boundary.
func (e entry) format(host, app string, pid, max int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s - %s", e.facility*8+e.severity,
		e.time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), field(host, 255), field(app, 48), pid, field(e.msgID, 32), e.text)
	out := b.Bytes()
	if len(out) > max {
		out = out[:max]
		for len(out) > 0 && !utf8.Valid(out) {
			out = out[:len(out)-1]
		}
	}
	return out
}

// field is an RFC 5424 header field: printable US-ASCII without spaces,
// at most n octets, "-" when empty.
func field(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r > 32 && r < 127 && b.Len() < n {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// handler is the slog.Handler that passes every record on to the next
// handler (the console or `show log`) and to the forwarder.
type handler struct {
	f    *Forwarder
	next slog.Handler
	ops  []func(slog.Handler) slog.Handler // WithAttrs/WithGroup, replayed to format
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || h.f.wants(l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if h.f.wants(r.Level) {
		h.f.enqueue(h.entry(ctx, r))
	}
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{f: h.f, next: h.next.WithAttrs(as), ops: append(h.ops[:len(h.ops):len(h.ops)], func(x slog.Handler) slog.Handler { return x.WithAttrs(as) })}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{f: h.f, next: h.next.WithGroup(name), ops: append(h.ops[:len(h.ops):len(h.ops)], func(x slog.Handler) slog.Handler { return x.WithGroup(name) })}
}

// entry formats the record's message and attributes as slog's text
// handler does (key=value, quoted where needed), without time and level,
// which the syslog header carries.
func (h *handler) entry(ctx context.Context, r slog.Record) entry {
	var b bytes.Buffer
	var th slog.Handler = slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug - 8,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		}})
	for _, op := range h.ops {
		th = op(th)
	}
	th.Handle(ctx, r)
	text := r.Message
	if attrs := strings.TrimSpace(b.String()); attrs != "" {
		text += " " + attrs
	}
	e := entry{time: r.Time, severity: severity(r.Level), facility: facilityDaemon, msgID: "system", text: text}
	switch {
	case strings.HasPrefix(r.Message, "audit: "):
		e.facility, e.msgID = facilityAuthPriv, "audit"
	case strings.Contains(" "+text, " link="):
		e.msgID = "link"
	}
	return e
}

// scrub replaces every run of 32 or 64 hex digits that is one of the
// configured keys with <redacted>. Logs never carry keys by design; this
// is the second line of defence, on the one path that leaves the box.
// The forwarder keeps only SHA-256 hashes of the keys, never the keys.
func scrub(s string, secret func([32]byte) bool) string {
	out := []byte(nil)
	i := 0
	for i < len(s) {
		j := i
		for j < len(s) && isHex(s[j]) {
			j++
		}
		if n := j - i; n == 32 || n == 64 {
			if secret(sha256.Sum256([]byte(strings.ToLower(s[i:j])))) {
				if out == nil {
					out = append(out, s[:i]...)
				}
				out = append(out, "<redacted>"...)
				i = j
				continue
			}
		}
		if j == i {
			j++
		}
		if out != nil {
			out = append(out, s[i:j]...)
		}
		i = j
	}
	if out == nil {
		return s
	}
	return string(out)
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// frame puts a message in octet-counting framing (RFC 6587 3.4.1, RFC
// 5425 4.3) for TCP and TLS.
func frame(msg []byte) []byte {
	return append(strconv.AppendInt(nil, int64(len(msg)), 10), append([]byte{' '}, msg...)...)
}
