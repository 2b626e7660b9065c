package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/mgmt/noc"
	"github.com/secwire/secwire/offload/macsec"
)

// The NOC tests give both daemons a management port into a NOC
// namespace where the real servers run (Debian's chrony, rsyslog and
// prometheus):
//
//	A [mgmt 10.77.0.1] — [eth0 10.77.0.2-.5] NOC [eth1 10.78.0.2] — [mgmt 10.78.0.1] B

type nocNet struct {
	ns  *netns.NS
	dir string
}

func newNOC(t *testing.T, tp *topo) *nocNet {
	t.Helper()
	ns, err := netns.Add(fmt.Sprintf("swnoc%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netns.Veth(tp.a, "mgmt", ns, "eth0"))
	must(netns.Veth(tp.b, "mgmt", ns, "eth1"))
	must(tp.a.IP("addr", "add", "10.77.0.1/24", "dev", "mgmt"))
	must(tp.b.IP("addr", "add", "10.78.0.1/24", "dev", "mgmt"))
	for _, a := range []string{"10.77.0.2/24", "10.77.0.3/24", "10.77.0.4/24", "10.77.0.5/24"} {
		must(ns.IP("addr", "add", a, "dev", "eth0"))
	}
	must(ns.IP("addr", "add", "10.78.0.2/24", "dev", "eth1"))
	return &nocNet{ns: ns, dir: tp.dir}
}

// withSystem rewrites a config file's system section.
func withSystem(t *testing.T, path string, f func(*config.System)) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	f(&c.System)
	b, _ = json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// server runs a program in the NOC namespace until the test ends.
func (n *nocNet) server(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	logf, _ := os.Create(filepath.Join(n.dir, filepath.Base(name)+".out"))
	cmd := n.ns.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	return cmd
}

// stopProcess ends a server the test started and waits for it.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (n *nocNet) out(name string) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, name+".out"))
	return string(b)
}

// secwireShow runs `secwire show ARGS` against side's daemon.
func (tp *topo) secwireShow(side string, args ...string) string {
	out, err := exec.Command(secwireBinary(tp.t), append(append([]string{"show"}, args...), "--socket", tp.socket(side))...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("secwire show %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor polls cond (bounded) and fails with what it last saw.
func waitFor(t *testing.T, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	var last string
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not within %s; last seen:\n%s", what, within, last)
}

// testCA makes a CA and a server certificate for the given IP addresses,
// written as PEM files in dir: ca.pem, server.pem, server.key.
func testCA(t *testing.T, dir string, ips ...string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "secwire test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "collector"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	for name, blk := range map[string]*pem.Block{
		"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "server.pem": {Type: "CERTIFICATE", Bytes: srvDER},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// httpGet fetches a URL from inside ns. net/http dials on a goroutine of
// its own, so the dial enters the namespace itself.
func httpGet(ns *netns.NS, u string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = ns.Do(func() error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}}}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	return string(b), err
}

// promQuery asks the prometheus in ns; it returns the result vector's
// values by their labels' string form.
func promQuery(ns *netns.NS, q string) (map[string]string, error) {
	body, err := httpGet(ns, "http://127.0.0.1:9090/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, fmt.Errorf("%v: %s", err, body)
	}
	out := map[string]string{}
	for _, s := range r.Data.Result {
		out[fmt.Sprint(s.Metric)] = fmt.Sprint(s.Value[1])
	}
	return out, nil
}

// nocStatus reads side's NOC services status.
func (tp *topo) nocStatus(side string) noc.Status {
	tp.t.Helper()
	var st noc.Status
	if err := ctl.Get(tp.socket(side), "noc", &st); err != nil {
		tp.t.Fatalf("status of %s: %v\n%s", side, err, tp.log(side))
	}
	return st
}

func hasCKN(m *mka.Status, ckn string) bool {
	for _, ca := range m.CAs {
		if ca.CKN == ckn {
			return true
		}
	}
	return false
}

// Debian's chrony serves time to both daemons; its clock runs an hour
// ahead of this host's (libfaketime), as the true time does for a box
// whose RTC is an hour behind. The daemons synchronise to it, `show
// system time` says so, the step is logged and audited, and a key chain
// entry starts at its start time as the server's clock measures it, not
// an hour later as the box's own clock would have it.
func TestNOCTimeFromChrony(t *testing.T) {
	needTools(t, "ip", "ping", "chronyd", "faketime")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	n := newNOC(t, tp)
	conf := filepath.Join(tp.dir, "chrony.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("local stratum 3\nallow all\nport 123\ncmdport 0\npidfile %s/chrony.pid\n", tp.dir)), 0o644)
	const ahead = time.Hour
	// -x: chronyd never touches this host's clock.
	n.server(t, "faketime", "-f", fmt.Sprintf("+%d", int(ahead.Seconds())), "chronyd", "-x", "-d", "-f", conf)
	serverNow := func() time.Time { return time.Now().Add(ahead) }

	start := serverNow().Truncate(time.Second).Add(30 * time.Second)
	first, second := cak("ntp-first", 16, "1f"), cak("ntp-second", 16, "2e")
	second.Start = start.UTC().Truncate(time.Second)
	chain := []config.CAKEntry{first, second}
	ntpFrom := func(addr string) func(*config.System) {
		return func(s *config.System) {
			s.NTP = &config.NTP{Server: []config.NTPServer{{Address: netip.MustParseAddr(addr)}}}
		}
	}
	tp.start("a", withSystem(t, tp.mkaConfig("a", chain, nil), ntpFrom("10.77.0.2")))
	tp.start("b", withSystem(t, tp.mkaConfig("b", chain, nil), ntpFrom("10.78.0.2")))

	for side, src := range map[string]string{"a": "10.77.0.2", "b": "10.78.0.2"} {
		waitFor(t, side+" synchronised", 20*time.Second, func() (bool, string) {
			out := tp.secwireShow(side, "system", "time")
			return strings.Contains(out, "Synchronised: yes, source "+src+", stratum 3"), out + "\n" + n.out("faketime")
		})
		st := tp.nocStatus(side)
		if d := st.Time.Now.Sub(serverNow()); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("%s clock is %s off the server's", side, d)
		}
		t.Logf("show system time on %s:\n%s", side, tp.secwireShow(side, "system", "time"))
	}
	if !strings.Contains(tp.log("a"), "clock stepped") {
		t.Errorf("the step is not logged:\n%s", tp.log("a"))
	}
	b, _ := os.ReadFile(filepath.Join(tp.dir, "audit.log"))
	if !strings.Contains(string(b), "clock stepped by 1h0m0") {
		t.Errorf("the step is not audited:\n%s", b)
	}
	tp.waitMKA("secured on the first CAK", 15*time.Second, func(a, b *mka.Status) bool {
		return secured(a) && secured(b) && !hasCKN(a, second.CKN.String())
	})
	if out := tp.secwireShow("a", "mka"); strings.Contains(out, "never synchronised") {
		t.Errorf("show mka warns of an unsynchronised clock after synchronisation:\n%s", out)
	}
	if time.Until(start.Add(-ahead)) < 2*time.Second {
		t.Fatalf("the test started too slowly to see the key flip (%s left)", time.Until(start.Add(-ahead)))
	}
	tp.waitMKA("the second CAK starts", 45*time.Second, func(a, b *mka.Status) bool {
		return a != nil && b != nil && hasCKN(a, second.CKN.String()) && hasCKN(b, second.CKN.String())
	})
	flipped := serverNow()
	t.Logf("key chain entry with start %s started at %s by the server's clock", start.UTC().Format(time.RFC3339), flipped.UTC().Format(time.RFC3339Nano))
	if flipped.Before(start.Add(-500*time.Millisecond)) || flipped.After(start.Add(3*time.Second)) {
		t.Fatalf("the entry started at %s by the server's clock, want %s", flipped, start)
	}
	tp.waitMKA("secured on the second CAK", 20*time.Second, func(a, b *mka.Status) bool {
		return secured(a) && secured(b) && a.Latest.CKN == second.CKN.String() && b.Latest.CKN == second.CKN.String()
	})
}

// rsyslogConf writes an rsyslog config that takes UDP on 514, TCP on
// 10514 and TLS on 6514 (certificate from testCA), on every address of
// the NOC namespace, and writes each message RFC 5424-parsed, one file
// per transport: version|severity|facility|app|procid|msgid|msg.
func rsyslogConf(t *testing.T, dir string) string {
	t.Helper()
	conf := filepath.Join(dir, "rsyslog.conf")
	os.MkdirAll(filepath.Join(dir, "rsyslog"), 0o700)
	c := fmt.Sprintf(`global(workDirectory="%[1]s/rsyslog" maxMessageSize="8k"
  defaultNetstreamDriverCAFile="%[1]s/ca.pem"
  defaultNetstreamDriverCertFile="%[1]s/server.pem"
  defaultNetstreamDriverKeyFile="%[1]s/server.key")
module(load="imudp")
module(load="imtcp")
template(name="parsed" type="string" string="%%protocol-version%%|%%syslogseverity-text%%|%%syslogfacility-text%%|%%app-name%%|%%procid%%|%%msgid%%|%%msg%%\n")
ruleset(name="udp") { action(type="omfile" file="%[1]s/udp.log" template="parsed") }
ruleset(name="tcp") { action(type="omfile" file="%[1]s/tcp.log" template="parsed") }
ruleset(name="tls") { action(type="omfile" file="%[1]s/tls.log" template="parsed") }
input(type="imudp" port="514" ruleset="udp")
input(type="imtcp" port="10514" ruleset="tcp")
input(type="imtcp" port="6514" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`, dir)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// startRsyslog runs rsyslogd in the foreground and waits for its TCP
// inputs.
func (n *nocNet) startRsyslog(t *testing.T, conf string) *exec.Cmd {
	t.Helper()
	cmd := n.server(t, "rsyslogd", "-n", "-f", conf, "-i", filepath.Join(n.dir, "rsyslogd.pid"))
	n.waitListening(t, "rsyslogd", "127.0.0.1:10514", "127.0.0.1:6514")
	return cmd
}

// waitListening waits until the server the test started as name accepts
// TCP connections on every address, so that what the daemon does first
// meets a running server.
func (n *nocNet) waitListening(t *testing.T, name string, addrs ...string) {
	t.Helper()
	waitFor(t, name+" listening", 10*time.Second, func() (bool, string) {
		err := n.ns.Do(func() error {
			for _, a := range addrs {
				c, err := net.DialTimeout("tcp", a, time.Second)
				if err != nil {
					return err
				}
				c.Close()
			}
			return nil
		})
		return err == nil, fmt.Sprint(err, "\n", n.out(name))
	})
}

func (n *nocNet) collected(transport string) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, transport+".log"))
	return string(b)
}

func adminUsers(t *testing.T) []config.User {
	t.Helper()
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	return []config.User{{Name: "admin", Role: "admin", Password: hash}}
}

// Debian's rsyslog collects over UDP, TCP and TLS (a certificate made
// here): transitions, datapath choice, logins and faults arrive RFC
// 5424-parsed with their severity, facility and app name; keys never.
func TestNOCSyslogToRsyslog(t *testing.T) {
	needTools(t, "ip", "ping", "rsyslogd")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	n := newNOC(t, tp)
	testCA(t, tp.dir, "10.77.0.4")
	os.Rename(filepath.Join(tp.dir, "ca.pem"), filepath.Join(tp.dir, "syslog-ca.pem"))
	os.Link(filepath.Join(tp.dir, "syslog-ca.pem"), filepath.Join(tp.dir, "ca.pem"))
	n.startRsyslog(t, rsyslogConf(t, tp.dir))

	chain := []config.CAKEntry{cak("syslog", 16, "5a")}
	cakHex := chain[0].CAK
	cfgA := withSystem(t, tp.mkaConfig("a", chain, nil), func(s *config.System) {
		s.Users = adminUsers(t)
		s.Syslog = &config.Syslog{Host: []config.SyslogHost{
			{Address: netip.MustParseAddr("10.77.0.2"), Transport: "udp"},
			{Address: netip.MustParseAddr("10.77.0.3"), Port: 10514, Transport: "tcp"},
			{Address: netip.MustParseAddr("10.77.0.4"), Transport: "tls", CAFile: "syslog-ca.pem", Severity: "info"},
		}}
	})
	tp.startArgs("a", cfgA, "--ssh", "127.0.0.1:2222")
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	pid := tp.daemons["a"].Process.Pid

	// A login, a failed login, and a fault: B goes away.
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, tp.log("a"))
	}
	c.Close()
	if c, err := dialSSH(t, tp.a, "admin", ssh.Password("wrong password")); err == nil {
		c.Close()
		t.Fatal("a wrong password logged in")
	}
	tp.stop("b")

	want := []struct{ severity, facility, msgID, text string }{
		{"info", "daemon", "link", "datapath link=link0 backend=software"},
		{"info", "daemon", "link", "link secured"},
		{"info", "authpriv", "audit", "audit: login (password, role admin)"},
		{"warning", "daemon", "link", "link not secured"},
		{"warning", "daemon", "link", "secure connectivity association lost"},
	}
	for _, tr := range []string{"udp", "tcp", "tls"} {
		waitFor(t, "messages over "+tr, 20*time.Second, func() (bool, string) {
			got := n.collected(tr)
			for _, w := range want {
				line := fmt.Sprintf("1|%s|%s|secwire|%d|%s|", w.severity, w.facility, pid, w.msgID)
				found := false
				for _, l := range strings.Split(got, "\n") {
					found = found || strings.HasPrefix(l, line) && strings.Contains(l, w.text)
				}
				if !found {
					return false, fmt.Sprintf("no %q with %q in:\n%s\nA:\n%s\nsyslog:\n%s", line, w.text, got, tp.log("a"), tp.secwireShow("a", "system", "syslog"))
				}
			}
			return true, ""
		})
		if got := n.collected(tr); strings.Contains(strings.ToLower(got), cakHex) {
			t.Fatalf("the CAK reached the collector over %s", tr)
		}
	}
	out := tp.secwireShow("a", "system", "syslog")
	t.Logf("show system syslog:\n%s", out)
	for _, w := range []string{"10.77.0.2:514/udp", "10.77.0.3:10514/tcp  info      connected", "10.77.0.4:6514/tls"} {
		if !strings.Contains(out, w) {
			t.Errorf("show system syslog lacks %q", w)
		}
	}
}

// loggedBetween lists what the daemon logged at info and above between
// from and to, as the collector receives it: the message, a space and
// the attributes.
func loggedBetween(t *testing.T, log string, from, to time.Time) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(log, "\n") {
		ts, rest, ok := strings.Cut(strings.TrimPrefix(l, "time="), " level=")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		level, rest, _ := strings.Cut(rest, " msg=")
		if level == "DEBUG" {
			continue
		}
		msg := rest
		attrs := ""
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("daemon log line %q: %v", l, err)
			}
			msg, _ = strconv.Unquote(q)
			attrs = strings.TrimPrefix(rest[len(q):], " ")
		} else {
			msg, attrs, _ = strings.Cut(rest, " ")
		}
		if attrs != "" {
			msg += " " + attrs
		}
		out = append(out, msg)
	}
	return out
}

// rsyslog stops for 30 s: every message A logged meanwhile arrives when
// it is back (below A's buffer bound), and B, whose buffer holds 8
// messages, drops the oldest, shows how many, and tells the collector.
func TestNOCSyslogCollectorOutage(t *testing.T) {
	needTools(t, "ip", "ping", "rsyslogd")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	n := newNOC(t, tp)
	testCA(t, tp.dir, "10.77.0.4")
	conf := rsyslogConf(t, tp.dir)
	rs := n.startRsyslog(t, conf)
	chain := []config.CAKEntry{cak("outage", 16, "6b")}
	tp.start("a", withSystem(t, tp.mkaConfig("a", chain, nil), func(s *config.System) {
		s.Syslog = &config.Syslog{Host: []config.SyslogHost{{Address: netip.MustParseAddr("10.77.0.3"), Port: 10514, Transport: "tcp"}}}
	}))
	tp.start("b", withSystem(t, tp.mkaConfig("b", chain, nil), func(s *config.System) {
		s.Syslog = &config.Syslog{Buffer: 8, Host: []config.SyslogHost{{Address: netip.MustParseAddr("10.78.0.2"), Port: 10514, Transport: "tcp"}}}
	}))
	tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	for _, side := range []string{"a", "b"} {
		waitFor(t, side+" connected", 10*time.Second, func() (bool, string) {
			st := tp.nocStatus(side)
			return len(st.Syslog) == 1 && st.Syslog[0].State == "connected", tp.secwireShow(side, "system", "syslog")
		})
	}

	stopProcess(rs)
	down := time.Now()
	waitFor(t, "A notices the collector is gone", 10*time.Second, func() (bool, string) {
		st := tp.nocStatus("a")
		return st.Syslog[0].State != "connected", tp.secwireShow("a", "system", "syslog")
	})
	// Rekeys make both ends log while the collector is down.
	kn := tp.mkaStatus("a").Latest.KN
	for i := 1; i <= 4; i++ {
		if out, err := exec.Command(secwireBinary(t), "request", "mka", "rekey", "link0", "--socket", tp.socket("a")).CombinedOutput(); err != nil {
			t.Fatalf("rekey: %v\n%s", err, out)
		}
		want := kn + uint32(i)
		tp.waitMKA("rekey", 10*time.Second, func(a, b *mka.Status) bool {
			return a != nil && b != nil && a.Latest != nil && b.Latest != nil && a.Latest.KN == want && b.Latest.KN == want && a.Old == nil && b.Old == nil
		})
	}
	time.Sleep(time.Until(down.Add(30 * time.Second)))
	up := time.Now()
	stB := tp.nocStatus("b").Syslog[0]
	t.Logf("after 30 s without the collector: A queued %d, B queued %d dropped %d",
		tp.nocStatus("a").Syslog[0].Queued, stB.Queued, stB.Dropped)
	if stB.Dropped == 0 || stB.Queued != 8 {
		t.Fatalf("B (buffer 8): queued %d, dropped %d: want a full buffer and drops\n%s", stB.Queued, stB.Dropped, tp.log("b"))
	}
	out := tp.secwireShow("b", "system", "syslog")
	if !regexp.MustCompile(fmt.Sprintf(`10\.78\.0\.2:10514/tcp\s+info\s+unreachable\s+.*\s8/8\s+\d+\s+%d\s`, stB.Dropped)).MatchString(out) {
		t.Errorf("show system syslog on B does not show the %d dropped:\n%s", stB.Dropped, out)
	}
	t.Logf("show system syslog on B:\n%s", out)

	n.startRsyslog(t, conf)
	lost := loggedBetween(t, tp.log("a"), down, up)
	if len(lost) < 8 {
		t.Fatalf("A logged only %d messages while the collector was down:\n%s", len(lost), tp.log("a"))
	}
	waitFor(t, "every message A logged during the outage", 30*time.Second, func() (bool, string) {
		got := n.collected("tcp")
		for _, m := range lost {
			if !strings.Contains(got, "|secwire|"+fmt.Sprint(tp.daemons["a"].Process.Pid)+"|") || !strings.Contains(got, "|"+m+"\n") {
				return false, fmt.Sprintf("missing %q\ncollected:\n%s\n%s", m, got, tp.secwireShow("a", "system", "syslog"))
			}
		}
		return true, ""
	})
	if st := tp.nocStatus("a").Syslog[0]; st.Dropped != 0 {
		t.Errorf("A dropped %d messages below its buffer bound", st.Dropped)
	}
	// B told the collector how many it dropped; show says the same.
	waitFor(t, "B's drop notice", 30*time.Second, func() (bool, string) {
		n := tp.nocStatus("b").Syslog[0].Dropped
		got := n2s(n)
		return strings.Contains(nocCollected(tp, "tcp"), "collector=10.78.0.2:10514/tcp dropped="+got+" "), got
	})
	t.Logf("A: %d messages logged during the 30 s outage, all delivered; B dropped %d beyond its buffer of 8", len(lost), tp.nocStatus("b").Syslog[0].Dropped)
}

func n2s(n uint64) string { return strconv.FormatUint(n, 10) }

func nocCollected(tp *topo, transport string) string {
	b, _ := os.ReadFile(filepath.Join(tp.dir, transport+".log"))
	return string(b)
}

// promValue is the single value of a PromQL query, "" when empty.
func promValue(t *testing.T, ns *netns.NS, q string) string {
	t.Helper()
	r, err := promQuery(ns, q)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	for _, v := range r {
		return v
	}
	return ""
}

// Debian's prometheus scrapes A's endpoint every second while a ping
// runs across the link and A rekeys and clears its counters: PromQL
// sees the link secured and OutPktsEncrypted rising, and no counter goes
// back; promtool accepts the exposition.
func TestNOCPrometheusScrapes(t *testing.T) {
	needTools(t, "ip", "ping", "prometheus", "promtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	n := newNOC(t, tp)
	chain := []config.CAKEntry{cak("metrics", 16, "7c")}
	tp.start("a", withSystem(t, tp.mkaConfig("a", chain, nil), func(s *config.System) {
		s.Management = &config.Management{Interface: "mgmt", Address: netip.MustParsePrefix("10.77.0.1/24")}
		s.Metrics = &config.Metrics{Port: 9100}
	}))
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if out := tp.secwireShow("a", "system", "metrics"); !strings.Contains(out, "http://10.77.0.1:9100/metrics") {
		t.Fatalf("show system metrics:\n%s", out)
	}
	promConf := filepath.Join(tp.dir, "prometheus.yml")
	os.WriteFile(promConf, []byte(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: secwire
    static_configs: [{targets: ["10.77.0.1:9100"]}]
`), 0o644)
	n.server(t, "prometheus", "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(tp.dir, "prom"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	waitFor(t, "prometheus scrapes A", 60*time.Second, func() (bool, string) {
		r, err := promQuery(n.ns, `secwire_link_secured{link="link0"} == 1 and on() secwire_mka_secured{link="link0"} == 1`)
		return err == nil && len(r) == 1, fmt.Sprint(r, err, "\n", n.out("prometheus"))
	})
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping across the link")
	}
	done := tp.pingFlow(2500) // 25 s at 100/s
	const encrypted = `secwire_secy_tx_sc_stats_encrypted_pkts_total{link="link0"}`
	waitFor(t, "OutPktsEncrypted rising", 15*time.Second, func() (bool, string) {
		v := promValue(t, n.ns, "rate("+encrypted+"[5s]) > 50")
		return v != "", "rate: " + promValue(t, n.ns, "rate("+encrypted+"[5s])")
	})
	kn := tp.mkaStatus("a").Latest.KN
	for i := 1; i <= 3; i++ {
		if out, err := exec.Command(secwireBinary(t), "request", "mka", "rekey", "link0", "--socket", tp.socket("a")).CombinedOutput(); err != nil {
			t.Fatalf("rekey: %v\n%s", err, out)
		}
		want := kn + uint32(i)
		tp.waitMKA("rekey", 10*time.Second, func(a, b *mka.Status) bool {
			return a != nil && b != nil && a.Latest != nil && a.Latest.KN == want && a.Old == nil && b.Latest != nil && b.Latest.KN == want && b.Old == nil
		})
		time.Sleep(2 * time.Second) // a few scrapes between rekeys
	}
	if out, err := exec.Command(secwireBinary(t), "clear", "counters", "--socket", tp.socket("a")).CombinedOutput(); err != nil {
		t.Fatalf("clear counters: %v\n%s", err, out)
	}
	sent, recv := done()
	time.Sleep(3 * time.Second) // the last scrapes
	t.Logf("ping %d sent, %d received across 3 rekeys and clear counters", sent, recv)
	cleared := counter(tp.linkStatus("a").TxSCCounters, "OutPktsEncrypted")
	total := promValue(t, n.ns, encrypted)
	t.Logf("OutPktsEncrypted: %s in Prometheus, %d in show counters since clear counters", total, cleared)
	if f, _ := strconv.ParseFloat(total, 64); f < float64(recv) || uint64(f) <= cleared {
		t.Errorf("Prometheus has %s encrypted frames for %d pings, show counters %d since clear", total, recv, cleared)
	}
	for _, m := range []string{encrypted, `secwire_secy_rx_sc_stats_ok_pkts_total{link="link0"}`, `secwire_mka_sak_installs_total{link="link0"}`} {
		if v := promValue(t, n.ns, "resets("+m+"[2m])"); v != "0" {
			t.Errorf("resets(%s) = %q: the counter went back", m, v)
		}
	}
	if v := promValue(t, n.ns, `increase(secwire_mka_sak_installs_total{link="link0"}[2m])`); v == "" || v == "0" {
		t.Errorf("the rekeys are not counted: %q", v)
	}
	if v := promValue(t, n.ns, `secwire_link_datapath_info{link="link0",backend="software"}`); v != "1" {
		t.Errorf("datapath in use: %q", v)
	}
	body, err := httpGet(n.ns, "http://10.77.0.1:9100/metrics")
	if err != nil {
		t.Fatal(err)
	}
	counters := 0
	for _, l := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok && strings.HasSuffix(name, " counter") {
			name = strings.TrimSuffix(name, " counter")
			counters++
			if v := promValue(t, n.ns, "sum(resets("+name+"[2m]))"); v != "0" {
				t.Errorf("%s went back %s times in 2 minutes", name, v)
			}
		}
	}
	t.Logf("%d counters, none went back", counters)
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
	if strings.Contains(body, chain[0].CAK) {
		t.Fatal("the CAK is in the exposition")
	}
}

// Bad input: an NTP server that does not answer, a syslog collector that
// refuses, a metrics port another program holds. Each is named in `show`
// (and the port at commit), and the link keeps running.
func TestNOCBadInput(t *testing.T) {
	needTools(t, "ip", "ping")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	newNOC(t, tp)
	// Something else holds B's and then A's metrics port.
	hold := func(ns *netns.NS, addr string) net.Listener {
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	hold(tp.b, "10.78.0.1:9100")
	hold(tp.a, "10.77.0.1:9100")
	first := cak("bad-input", 16, "3d")
	first.Start = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	chain := []config.CAKEntry{first}
	tp.startArgs("a", withSystem(t, tp.mkaConfig("a", chain, nil), func(s *config.System) {
		s.Users = adminUsers(t)
		s.Management = &config.Management{Interface: "mgmt", Address: netip.MustParsePrefix("10.77.0.1/24")}
		s.NTP = &config.NTP{Server: []config.NTPServer{{Address: netip.MustParseAddr("10.77.0.9")}}}
		s.Syslog = &config.Syslog{Host: []config.SyslogHost{{Address: netip.MustParseAddr("10.77.0.5"), Port: 10599, Transport: "tcp"}}}
	}), "--ssh", "127.0.0.1:2222")
	tp.start("b", withSystem(t, tp.mkaConfig("b", chain, nil), func(s *config.System) {
		s.Management = &config.Management{Interface: "mgmt", Address: netip.MustParsePrefix("10.78.0.1/24")}
		s.Metrics = &config.Metrics{Port: 9100}
	}))
	tp.waitMKA("CA secured despite the bad services", 15*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping across the link")
	}

	waitFor(t, "show system time names the silent server", 15*time.Second, func() (bool, string) {
		out := tp.secwireShow("a", "system", "time")
		return strings.Contains(out, "Synchronised: NO") && strings.Contains(out, "10.77.0.9") &&
			strings.Contains(out, "no answer from 10.77.0.9: timed out"), out
	})
	out := tp.secwireShow("a", "mka")
	if !strings.Contains(out, "the clock was never synchronised") || !strings.Contains(tp.log("a"), "rollover times, are unreliable") {
		t.Errorf("a key chain with a start time and no synchronised clock: no warning in show mka or the log:\n%s\n%s", out, tp.log("a"))
	}
	waitFor(t, "show system syslog names the refusing collector", 15*time.Second, func() (bool, string) {
		out := tp.secwireShow("a", "system", "syslog")
		return strings.Contains(out, "10.77.0.5:10599/tcp") && strings.Contains(out, "unreachable") && strings.Contains(out, "connection refused"), out
	})
	if out := tp.secwireShow("b", "system", "metrics"); !strings.Contains(out, "ERROR: 10.78.0.1:9100 is in use by another program") {
		t.Errorf("B started with its metrics port taken:\n%s", out)
	}

	// At commit: the port is refused, nothing changes.
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, tp.log("a"))
	}
	defer c.Close()
	sess, _ := c.NewSession()
	o, _ := sess.CombinedOutput("configure; set system metrics port 9100; commit")
	if !strings.Contains(string(o), "commit failed: system metrics port 9100: 10.77.0.1:9100 is in use by another program; choose another port") {
		t.Fatalf("commit of a metrics port in use:\n%s", o)
	}
	if out := tp.secwireShow("a", "system", "metrics"); !strings.Contains(out, "off") {
		t.Errorf("after the refused commit:\n%s", out)
	}
	sess, _ = c.NewSession()
	o, _ = sess.CombinedOutput("show system time")
	if !strings.Contains(string(o), "Synchronised: NO") {
		t.Errorf("show system time over SSH:\n%s", o)
	}
	if !tp.ping("10.9.0.2", 3) {
		t.Fatal("the link stopped carrying traffic")
	}
}

// NTS: chrony serves NTS (RFC 8915) with a certificate made here. A asks
// it with NTS, checked against the CA on its config partition, and
// synchronises; a server name the certificate does not carry is refused
// with the reason.
func TestNOCTimeNTS(t *testing.T) {
	needTools(t, "ip", "chronyd", "faketime")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	n := newNOC(t, tp)
	testCA(t, tp.dir, "10.77.0.2")
	conf := filepath.Join(tp.dir, "chrony.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("local stratum 2\nallow all\nport 123\ncmdport 0\npidfile %[1]s/chrony.pid\n"+
		"ntsservercert %[1]s/server.pem\nntsserverkey %[1]s/server.key\nntsdumpdir %[1]s\n", tp.dir)), 0o644)
	const ahead = 10 * time.Minute
	n.server(t, "faketime", "-f", fmt.Sprintf("+%d", int(ahead.Seconds())), "chronyd", "-x", "-d", "-u", "root", "-f", conf)
	// Both servers' first NTS key exchange must meet chronyd: a refused
	// one is not retried while the other server answers, and the test
	// wants the certificate's refusal.
	n.waitListening(t, "faketime", "10.77.0.2:4460", "10.77.0.3:4460")
	chain := []config.CAKEntry{cak("nts", 16, "4e")}
	tp.start("a", withSystem(t, tp.mkaConfig("a", chain, nil), func(s *config.System) {
		s.NTP = &config.NTP{Server: []config.NTPServer{
			{Address: netip.MustParseAddr("10.77.0.2"), NTS: true, CAFile: "ca.pem"},
			{Address: netip.MustParseAddr("10.77.0.3"), NTS: true, CAFile: "ca.pem"},
		}}
	}))
	waitFor(t, "A synchronised with NTS", 30*time.Second, func() (bool, string) {
		out := tp.secwireShow("a", "system", "time")
		return strings.Contains(out, "Synchronised: yes, source 10.77.0.2 (NTS), stratum 2") &&
			strings.Contains(out, "certificate is valid for 10.77.0.2, not 10.77.0.3"), out + "\n" + n.out("faketime") + tp.log("a")
	})
	st := tp.nocStatus("a")
	if d := st.Time.Now.Sub(time.Now().Add(ahead)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("A's clock is %s off the NTS server's", d)
	}
	t.Logf("show system time:\n%s", tp.secwireShow("a", "system", "time"))
}
