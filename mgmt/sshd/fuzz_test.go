package sshd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fuzzTypes are the request types a fuzz script picks from: every type a
// session serves, the ones it refuses, and names nobody defined.
var fuzzTypes = []string{"pty-req", "window-change", "env", "exec", "subsystem", "shell",
	"signal", "break", "x11-req", "auth-agent-req@openssh.com", "exit-status", "keepalive@openssh.com", "", "x\x00y"}

// fuzzScript encodes steps for FuzzSessionRequests: per step a type
// index, flags (1: want a reply, 2: send the payload as input instead,
// 4: close the input after), the payload's length and the payload.
func fuzzScript(steps ...any) []byte {
	var b []byte
	for i := 0; i+2 < len(steps); i += 3 {
		typ, flags, payload := steps[i].(string), steps[i+1].(int), steps[i+2].([]byte)
		idx := 0
		for j, t := range fuzzTypes {
			if t == typ {
				idx = j
			}
		}
		b = append(b, byte(idx), byte(flags), byte(len(payload)))
		b = append(b, payload...)
	}
	return b
}

// FuzzSessionRequests feeds arbitrary channel requests and input to a
// session of one logged-in connection: pty-req, window-change, env,
// exec, subsystem, shell and unknown types, with arbitrary payloads, in
// any order. No session may panic (the server counts recovered panics),
// and after every script another session on the same connection still
// runs a command. The user is an operator, so no script can change the
// config or send traffic.
func FuzzSessionRequests(f *testing.F) {
	pty := ssh.Marshal(ptyRequest{Term: "xterm", Columns: 80, Rows: 24})
	f.Add(fuzzScript("pty-req", 1, pty, "shell", 1, []byte{}, "", 2, []byte("show users\r"), "window-change", 0, ssh.Marshal(windowChange{Columns: 120, Rows: 40})))
	f.Add(fuzzScript("exec", 1, ssh.Marshal(execRequest{"show log audit; show configuration"})))
	f.Add(fuzzScript("pty-req", 1, pty, "exec", 1, ssh.Marshal(execRequest{"show system"})))
	f.Add(fuzzScript("pty-req", 1, append([]byte{0xff, 0xff, 0xff, 0xf4}, make([]byte, 12)...), "shell", 1, []byte{}))
	f.Add(fuzzScript("env", 1, ssh.Marshal(envRequest{"LANG", "C"}), "subsystem", 1, ssh.Marshal(execRequest{"sftp"}), "shell", 0, []byte{}, "", 6, []byte("configure\r?\t\x1b[A\x03exit\r")))
	f.Add(fuzzScript("pty-req", 1, pty, "shell", 1, []byte{}, "shell", 1, []byte{}, "exec", 1, ssh.Marshal(execRequest{"show users"}), "signal", 1, []byte("INT")))
	ts := startServer(f, nil)
	c := ts.login(f, "olga")
	f.Fuzz(func(t *testing.T, script []byte) {
		ch, reqs := openSession(t, c)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for r := range reqs {
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
		}()
		go func() { // what the session prints is read and dropped
			b := make([]byte, 4096)
			for {
				if _, err := ch.Read(b); err != nil {
					return
				}
			}
		}()
		for i := 0; i+3 <= len(script); {
			typ, flags, n := fuzzTypes[int(script[i])%len(fuzzTypes)], script[i+1], int(script[i+2])
			payload := script[i+3 : min(i+3+n, len(script))]
			i += 3 + n
			var err error
			if flags&2 != 0 {
				_, err = ch.Write(payload)
			} else {
				_, err = ch.SendRequest(typ, flags&1 != 0, payload)
			}
			if flags&4 != 0 {
				ch.CloseWrite()
			}
			if err != nil {
				break // the session ended (exit, exec done): fine
			}
		}
		ch.Close()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not close the session within 10 s of the client")
		}
		if n := ts.Panics(); n > 0 {
			t.Fatalf("%d sessions panicked (recovered)", n)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatalf("no new session on the connection after the script: %v", err)
		}
		out, err := s.CombinedOutput("show users")
		s.Close()
		if err != nil || !strings.Contains(string(out), "olga") {
			t.Fatalf("the server stopped serving: %v\n%s", err, out)
		}
	})
}

// openSession opens a session channel, waiting (bounded) while the
// connection is at MaxSessions: the server frees a closed session's slot
// just after the client sees the close.
func openSession(t *testing.T, c *ssh.Client) (ssh.Channel, <-chan *ssh.Request) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ch, reqs, err := c.OpenChannel("session", nil)
		var oce *ssh.OpenChannelError
		if err == nil {
			return ch, reqs
		}
		if !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage || time.Now().After(end) {
			t.Fatalf("open a session: %v", err)
		}
	}
}
