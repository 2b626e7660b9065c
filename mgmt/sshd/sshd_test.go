package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Malformed session requests of every type are refused, never a crash:
// the pty-req whose TERM length wrapped the old size arithmetic
// (n >= 0xFFFFFFF4) is among them. The connection and the server go on.
func TestMalformedRequestsAreRefused(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(t, "olga")
	wrap := binary.BigEndian.AppendUint32(nil, 0xFFFFFFF4)
	for _, r := range []struct {
		typ     string
		payload []byte
	}{
		{"pty-req", append(wrap, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)},
		{"pty-req", wrap},
		{"pty-req", []byte{0, 0, 0}},
		{"pty-req", nil},
		{"window-change", []byte{1, 2}},
		{"env", binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)},
		{"exec", binary.BigEndian.AppendUint32(nil, 0x7FFFFFFF)},
		{"exec", nil},
		{"subsystem", []byte("sftp")},
		{"x11-req", nil},
		{"no-such-request@example.com", []byte{0xff}},
	} {
		ch, reqs, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		ok, err := ch.SendRequest(r.typ, true, r.payload)
		if err != nil || ok {
			t.Errorf("%s with payload %x: accepted %v, err %v; want refused", r.typ, r.payload, ok, err)
		}
		ch.Close()
	}
	// The same connection and a new one still work.
	if out := run(t, c, "show users"); !strings.Contains(out, "olga") {
		t.Fatalf("show users after malformed requests:\n%s", out)
	}
	if out := run(t, ts.login(t, "admin"), "show users"); !strings.Contains(out, "admin") {
		t.Fatalf("a new login after malformed requests:\n%s", out)
	}
}

// A well-formed pty-req with a window change is served as a terminal.
func TestPtyAndWindowChange(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(t, "olga")
	in, scr, s := shell(t, c)
	defer s.Close()
	scr.WaitFor(t, "olga@secwire> ")
	if err := s.WindowChange(50, 200); err != nil {
		t.Fatal(err)
	}
	if err := s.WindowChange(0, 0xFFFFFFFF); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("show users\r"))
	scr.WaitFor(t, "ssh")
	in.Write([]byte("exit\r"))
	if err := s.Wait(); err != nil {
		t.Fatalf("shell exit: %v", err)
	}
}

// 1000 exec sessions, half with a pty, over public-key logins (as a
// monitoring script would poll) leave the goroutine count where it was.
func TestSessionsLeaveNoGoroutines(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	ts := startServerWith(t, nil, true, []string{string(ssh.MarshalAuthorizedKey(signer.PublicKey()))})
	auth := []ssh.AuthMethod{ssh.PublicKeys(signer)}
	// Warm up: the first login starts what stays (the gate, timers).
	c, err := ts.dial("admin", auth, "")
	if err != nil {
		t.Fatal(err)
	}
	run(t, c, "show users")
	c.Close()
	// settle waits (bounded) until no session is open and the count is
	// at most want.
	settle := func(want int) int {
		n := runtime.NumGoroutine()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if n = runtime.NumGoroutine(); ts.Sessions.Len() == 0 && n <= want {
				break
			}
		}
		return n
	}
	time.Sleep(200 * time.Millisecond)
	baseline := settle(0)
	const conns, perConn = 100, 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	sem := make(chan struct{}, 8) // at most Admission.PerSource logging in at once
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := ts.dial("admin", auth, "")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range perConn {
				s, err := c.NewSession()
				if err != nil {
					errs <- err
					return
				}
				if (i+j)%2 == 0 {
					if err := s.RequestPty("vt100", 24, 80, ssh.TerminalModes{}); err != nil {
						errs <- err
						return
					}
				}
				out, err := s.CombinedOutput("show users")
				s.Close()
				if err != nil || !strings.Contains(string(out), "admin") {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("exec session: %v", err)
	}
	after := settle(baseline)
	t.Logf("goroutines: %d before, %d after %d exec sessions", baseline, after, conns*perConn)
	if after > baseline+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after %d sessions, %d before:\n%s", after, conns*perConn, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// A commit that demotes bob and deletes olga ends both their SSH
// sessions at once (each with the reason); bob's next login is an
// operator's, and olga cannot log in.
func TestDeletedOrDemotedUserIsLoggedOut(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.login(t, "admin")
	bin, bscr, bs := shell(t, ts.login(t, "bob"))
	bscr.WaitFor(t, "bob@secwire> ")
	bin.Write([]byte("configure\r"))
	bscr.WaitFor(t, "bob@secwire# ")
	_, oscr, olga := shell(t, ts.login(t, "olga"))
	oscr.WaitFor(t, "olga@secwire> ")

	out := run(t, admin, "configure; set system users bob role operator; delete system users olga; commit")
	if !strings.Contains(out, "commit complete") {
		t.Fatalf("commit:\n%s", out)
	}
	bscr.WaitFor(t, "user bob is now operator (was admin): log in again: logging out")
	oscr.WaitFor(t, "user olga was deleted by a commit: logging out")
	for name, s := range map[string]*ssh.Session{"bob": bs, "olga": olga} {
		done := make(chan error, 1)
		go func() { done <- s.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's session is still open after the commit", name)
		}
	}
	if out := run(t, ts.login(t, "bob"), "configure"); !strings.Contains(out, "permission denied: bob is an operator") {
		t.Fatalf("bob after his demotion: configure:\n%s", out)
	}
	if _, err := ts.dial("olga", []ssh.AuthMethod{ssh.Password(testPassword)}, ""); err == nil {
		t.Fatal("olga logged in after she was deleted")
	}
	b, _ := os.ReadFile(ts.audit.Path)
	for _, want := range []string{"user=bob from=ssh 127.0.0.1:", " logged out: user bob is now operator (was admin)", "logged out: user olga was deleted by a commit"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %q:\n%s", want, b)
		}
	}
}

// Without the session list (a daemon that does not reconcile), the
// shell still checks the role before every command: a demoted admin's
// next configuration command is refused and the candidate dropped, a
// deleted user is logged out at their next command.
func TestDemotedUserNextCommandRefused(t *testing.T) {
	ts := startServerWith(t, nil, false, nil)
	admin := ts.login(t, "admin")
	bin, bscr, bs := shell(t, ts.login(t, "bob"))
	bscr.WaitFor(t, "bob@secwire> ")
	bin.Write([]byte("configure\rset system hostname bobs-box\r"))
	bscr.WaitFor(t, "bob@secwire# ")
	if out := run(t, admin, "configure; set system users bob role operator; commit"); !strings.Contains(out, "commit complete") {
		t.Fatalf("demote bob:\n%s", out)
	}
	bin.Write([]byte("commit\r"))
	bscr.WaitFor(t, "error: permission denied: bob is now operator (was admin); configuration mode left, the candidate discarded")
	bscr.WaitFor(t, "bob@secwire> ")
	if h := ts.m.System().Hostname; h != "" {
		t.Fatalf("bob's candidate was committed after his demotion: hostname %q", h)
	}
	if out := run(t, admin, "configure; delete system users bob; commit"); !strings.Contains(out, "commit complete") {
		t.Fatalf("delete bob:\n%s", out)
	}
	bin.Write([]byte("show users\r"))
	bscr.WaitFor(t, "error: user bob was deleted: logging out")
	done := make(chan error, 1)
	go func() { done <- bs.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("bob's session is still open after his next command")
	}
}
