package sshd

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/internal/termtest"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/audit"
	"github.com/secwire/secwire/mgmt/cli"
)

const testPassword = "ssh test secret"

// testServer is a Server on a loopback port with its own config
// directory, users admin (admin), olga (operator) and bob (admin).
type testServer struct {
	*Server
	addr  string
	dir   string
	audit *audit.Log
	m     *commit.Manager
	clock atomic.Int64 // the audit log's clock in Unix nanoseconds; 0: time.Now
}

var hashOnce = sync.OnceValues(func() (string, error) { return config.HashPassword(testPassword) })

func startServer(t testing.TB, tune func(*Server)) *testServer {
	t.Helper()
	return startServerWith(t, tune, true, nil)
}

// startServerWith: reconcile wires commits to Sessions.Reconcile (as the
// appliance does); keys are authorized for admin.
func startServerWith(t testing.TB, tune func(*Server), reconcile bool, keys []string) *testServer {
	t.Helper()
	hash, err := hashOnce()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := config.Config{System: config.System{Users: []config.User{
		{Name: "admin", Role: "admin", Password: hash, SSHKeys: keys},
		{Name: "olga", Role: "operator", Password: hash},
		{Name: "bob", Role: "admin", Password: hash},
	}}}
	b, _ := json.Marshal(c)
	cfg := filepath.Join(dir, "secwire.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sessions := &access.Sessions{}
	ts := &testServer{dir: dir}
	a := &audit.Log{Path: filepath.Join(dir, "audit.log"), Now: func() time.Time {
		if v := ts.clock.Load(); v != 0 {
			return time.Unix(0, v)
		}
		return time.Now()
	}}
	onChange := func(c *config.Config) { sessions.Reconcile(&c.System) }
	if !reconcile {
		onChange = nil
	}
	m, err := commit.Open(ctx, commit.Options{ConfigPath: cfg, StateDir: filepath.Join(dir, "state"), Audit: a, OnChange: onChange})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &Server{Env: &cli.Env{Manager: m, Audit: a, Sessions: sessions.List}, HostKey: filepath.Join(dir, "host_key"), Sessions: sessions}
	if tune != nil {
		tune(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Stop()
		if n := s.Panics(); n > 0 {
			t.Errorf("%d sessions ended by a recovered panic", n)
		}
	})
	ts.Server, ts.addr, ts.audit, ts.m = s, ln.Addr().String(), a, m
	return ts
}

// dial logs in from the local address from ("" : any).
func (ts *testServer) dial(user string, auth []ssh.AuthMethod, from string) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(nc, ts.addr, &ssh.ClientConfig{
		User: user, Auth: auth,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the test made the server moments ago
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

func (ts *testServer) login(t testing.TB, user string) *ssh.Client {
	t.Helper()
	c, err := ts.dial(user, []ssh.AuthMethod{ssh.Password(testPassword)}, "")
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs one command line without a pty and returns its output.
func run(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := s.CombinedOutput(cmd)
	return string(out)
}

// screen collects what an interactive session shows.
type screen = termtest.Screen

// shell opens an interactive session with a pty.
func shell(t testing.TB, c *ssh.Client) (in interface{ Write([]byte) (int, error) }, scr *screen, s *ssh.Session) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 24, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	w, _ := s.StdinPipe()
	scr = &screen{}
	s.Stdout = scr
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	return w, scr, s
}
