package syslog

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
)

func TestFormatRFC5424(t *testing.T) {
	e := entry{time: time.Date(2031, 2, 3, 4, 5, 6, 7000, time.UTC), severity: 4, facility: facilityDaemon, msgID: "link", text: "plaintext port held down link=link0"}
	got := string(e.format("enc a", AppName, 42, maxUDP))
	want := "<28>1 2031-02-03T04:05:06.000007Z enca secwire 42 link - plaintext port held down link=link0"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	long := entry{time: time.Unix(0, 0), text: strings.Repeat("é", 3000)}
	if b := long.format("h", AppName, 1, maxUDP); len(b) > maxUDP || !strings.HasPrefix(string(b), "<0>1 ") {
		t.Fatalf("a long message is %d octets, want at most %d", len(b), maxUDP)
	}
}

func TestHandlerFormatsRecords(t *testing.T) {
	f := New(Options{})
	var got []entry
	h := &handler{f: f, next: slog.DiscardHandler}
	log := slog.New(h).With("link", "link0")
	f.any, f.minLevel = true, slog.LevelDebug
	// Capture what would be queued.
	capture := func(r slog.Record) { got = append(got, h.entry(t.Context(), r)) }
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "MKPDU dropped", 0)
	r.AddAttrs(slog.String("reason", "bad ICV"))
	lh := log.Handler().(*handler)
	got = append(got, lh.entry(t.Context(), r))
	capture(slog.NewRecord(time.Now(), slog.LevelInfo, "audit: commit", 0))
	if got[0].text != `MKPDU dropped link=link0 reason="bad ICV"` || got[0].severity != 4 || got[0].msgID != "link" {
		t.Errorf("link record: %+v", got[0])
	}
	if got[1].facility != facilityAuthPriv || got[1].msgID != "audit" || got[1].severity != 6 {
		t.Errorf("audit record: %+v", got[1])
	}
}

func TestScrubRemovesConfiguredKeys(t *testing.T) {
	cak := strings.Repeat("5a", 16)
	ckn := strings.Repeat("aa", 16) // a CKN is not secret
	set := map[[32]byte]bool{sha256.Sum256([]byte(cak)): true}
	in := fmt.Sprintf("bug: cak=%s ckn=%s upper=%s", cak, ckn, strings.ToUpper(cak))
	got := scrub(in, func(h [32]byte) bool { return set[h] })
	want := fmt.Sprintf("bug: cak=<redacted> ckn=%s upper=<redacted>", ckn)
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// collector is a TCP syslog collector on loopback that reads octet-
// counted messages.
type collector struct {
	ln    net.Listener
	got   chan string
	conns chan net.Conn
}

func newCollector(t *testing.T, addr string) *collector {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may still be closing from a previous listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{ln: ln, got: make(chan string, 1000), conns: make(chan net.Conn, 100)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns <- conn
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					n, err := r.ReadString(' ')
					if err != nil {
						return
					}
					l, _ := strconv.Atoi(strings.TrimSpace(n))
					b := make([]byte, l)
					if _, err := io.ReadFull(r, b); err != nil {
						return
					}
					c.got <- string(b)
				}
			}()
		}
	}()
	return c
}

// close stops the collector as a stopped daemon does: no listener, and
// its connections closed.
func (c *collector) close() {
	c.ln.Close()
	for {
		select {
		case conn := <-c.conns:
			conn.Close()
		default:
			return
		}
	}
}

var msgText = regexp.MustCompile(` secwire \d+ \S+ - (.*)$`)

// A TCP collector that goes away: messages wait in the buffer and arrive
// when it returns; beyond the buffer the oldest are dropped and counted,
// and the collector is told.
func TestTCPCollectorOutage(t *testing.T) {
	c := newCollector(t, "127.0.0.1:0")
	port := c.ln.Addr().(*net.TCPAddr).Port
	f := New(Options{Retry: 200 * time.Millisecond})
	log := slog.New(f.Handler(slog.DiscardHandler))
	f.SetLog(log)
	cfg := func(buffer int) *config.Config {
		return &config.Config{System: config.System{Syslog: &config.Syslog{Buffer: buffer, Host: []config.SyslogHost{
			{Address: netip.MustParseAddr("127.0.0.1"), Port: port, Transport: "tcp", Severity: "info"}}}}}
	}
	f.Apply(cfg(50))
	defer f.Close()
	log.Debug("not sent: below info")
	log.Info("one")
	if got := c.waitFor(t, "one"); contains(got, "not sent") {
		t.Fatalf("a debug message was sent to an info collector: %q", got)
	}
	c.close()
	waitState(t, f, "unreachable")
	for i := range 3 {
		log.Info(fmt.Sprintf("during outage %d", i))
	}
	c = newCollector(t, fmt.Sprintf("127.0.0.1:%d", port))
	c.waitFor(t, "during outage 0", "during outage 1", "during outage 2")
	if st := f.Status()[0]; st.Dropped != 0 {
		t.Errorf("dropped %d below the buffer bound", st.Dropped)
	}
	// Over the bound: 9 messages into a buffer of 5.
	f.Apply(cfg(5))
	waitState(t, f, "connected")
	c.close()
	waitState(t, f, "unreachable")
	for i := range 9 {
		log.Info(fmt.Sprintf("overflow %d", i))
	}
	st := f.Status()[0]
	if st.Queued != 5 || st.Dropped < 4 {
		t.Fatalf("buffer 5, 9 messages: queued %d dropped %d", st.Queued, st.Dropped)
	}
	c = newCollector(t, fmt.Sprintf("127.0.0.1:%d", port))
	defer c.close()
	got := c.waitFor(t, "overflow 8", "dropped=")
	if contains(got, "overflow 0") {
		t.Errorf("want the oldest dropped: %q", got)
	}
	if n := f.Status()[0].Dropped; !contains(got, fmt.Sprintf("dropped=%d ", n)) {
		t.Errorf("show says %d dropped, the collector was told otherwise: %q", n, got)
	}
}

// waitFor reads messages until each of want was in one.
func (c *collector) waitFor(t *testing.T, want ...string) []string {
	t.Helper()
	var out []string
	deadline := time.After(20 * time.Second)
	for {
		all := true
		for _, w := range want {
			all = all && contains(out, w)
		}
		if all {
			return out
		}
		select {
		case m := <-c.got:
			out = append(out, texts([]string{m})...)
		case <-deadline:
			t.Fatalf("collector never got all of %q: %q", want, out)
		}
	}
}

func waitState(t *testing.T, f *Forwarder, want string) {
	t.Helper()
	for range 200 {
		if f.Status()[0].State == want {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("collector state %q, want %q", f.Status()[0].State, want)
}

func texts(ms []string) []string {
	var out []string
	for _, m := range ms {
		if s := msgText.FindStringSubmatch(m); s != nil {
			out = append(out, s[1])
		}
	}
	return out
}

func contains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
