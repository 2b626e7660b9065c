// Package sshd is the appliance's SSH server (golang.org/x/crypto/ssh):
// password and public-key logins for the configured users, an ed25519
// host key made on first use and kept on the config partition, a limit on
// failed logins per source address, an idle timeout, and the audit log.
// Sessions run the same CLI as the serial console; `ssh box show mka`
// runs one command.
//
// Limits before login (docs/config.md, "SSH limits"): a login must be
// done within LoginGrace; at most 32 connections may be logging in (8
// per address), and when all slots are taken a newcomer from a better
// address (one that logged in within a day, or has fewer failures) takes
// the slot of the worst one; password checks run one at a time, use at
// most 5% of one CPU and are served best address first; an address with
// 5 unsuccessful logins in a minute is refused for a minute, and its
// connections are held silent for TarpitTime before they are closed.
// After login: at most MaxConns connections and MaxSessions sessions per
// connection.
package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/cli"
)

// Limits of the server.
const (
	LoginGrace  = 20 * time.Second // from connect to logged in
	MaxConns    = 64               // logged-in connections
	MaxSessions = 10               // sessions (shells, commands) per connection
	// A refused connection is held open, silent, for TarpitTime before it
	// is closed (at most MaxTarpit at once; beyond, closed at once): a
	// client waiting for the server's greeting then waits, instead of
	// reconnecting thousands of times a second.
	TarpitTime = 10 * time.Second
	MaxTarpit  = 256
)

// Server serves SSH logins.
type Server struct {
	Env       *cli.Env // the shell's environment; Env.Manager holds the users
	HostKey   string   // path of the host key (PEM, OpenSSH format)
	Limiter   *access.Limiter
	Sessions  *access.Sessions
	Gate      *access.Gate      // password checks; nil: a default Gate
	Admission *access.Admission // connections logging in; nil: the defaults
	Log       *slog.Logger

	init   sync.Once
	panics atomic.Int64
	tarpit chan struct{}
}

func (s *Server) defaults() {
	s.init.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		if s.Limiter == nil {
			s.Limiter = access.NewLimiter()
		}
		if s.Sessions == nil {
			s.Sessions = &access.Sessions{}
		}
		if s.Gate == nil {
			s.Gate = &access.Gate{}
		}
		if s.Admission == nil {
			s.Admission = &access.Admission{}
		}
		if s.Admission.Score == nil {
			s.Admission.Score = s.Limiter.Rank
		}
		s.tarpit = make(chan struct{}, MaxTarpit)
	})
}

// Panics is how many sessions or connections a bug ended (recovered);
// tests and fuzzing expect 0.
func (s *Server) Panics() int64 { return s.panics.Load() }

// LoadHostKey reads the host key at path, generating an ed25519 key there
// when there is none.
func LoadHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, "secwire host key")
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(blk)
		if err := store.WriteAtomic(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return ssh.ParsePrivateKey(b)
}

func (s *Server) config(signer ssh.Signer) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries:     6,
		ServerVersion:    "SSH-2.0-secwire",
		PasswordCallback: s.password,
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if _, blocked := s.Limiter.Blocked(host(c.RemoteAddr())); blocked {
				return nil, errors.New("too many failed logins")
			}
			sys := s.Env.Manager.System()
			u := sys.User(c.User())
			if u == nil {
				return nil, errors.New("no such key")
			}
			for _, line := range u.SSHKeys {
				k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
				if err == nil && bytes.Equal(k.Marshal(), key.Marshal()) {
					return &ssh.Permissions{Extensions: map[string]string{"role": string(u.Role), "method": "publickey " + ssh.FingerprintSHA256(key)}}, nil
				}
			}
			return nil, errors.New("no such key")
		},
	}
	cfg.AddHostKey(signer)
	return cfg
}

// password checks a password login: the source's limit first, then the
// check itself through the Gate.
func (s *Server) password(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	src := host(c.RemoteAddr())
	who := commit.Who{User: c.User(), From: "ssh " + c.RemoteAddr().String()}
	done, wait, blocked := s.Limiter.Begin(src)
	if blocked {
		s.Env.Audit.Failure(src, who, "login refused: too many failed logins from this address (retry in "+wait.Round(time.Second).String()+")")
		return nil, errors.New("too many failed logins")
	}
	sys := s.Env.Manager.System()
	var role string
	ok, err := s.Gate.Do(s.Limiter.Score(src)-1, func() bool {
		u := access.Authenticate(&sys, c.User(), string(pw))
		if u != nil {
			role = string(u.Role)
		}
		return u != nil
	})
	done(ok)
	switch {
	case err != nil:
		s.Env.Audit.Failure(src, who, "login refused: "+err.Error())
		return nil, err
	case !ok:
		s.Env.Audit.Failure(src, who, "login failed (password)")
		return nil, errors.New("wrong user or password")
	}
	return &ssh.Permissions{Extensions: map[string]string{"role": role, "method": "password"}}, nil
}

func host(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// Serve accepts connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.defaults()
	signer, err := LoadHostKey(s.HostKey)
	if err != nil {
		return err
	}
	s.Log.Info("ssh listening", "addr", ln.Addr(), "host key", ssh.FingerprintSHA256(signer.PublicKey()))
	cfg := s.config(signer)
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				time.Sleep(50 * time.Millisecond) // out of file descriptors: let connections end
				continue
			}
			return err
		}
		go s.conn(c, cfg)
	}
}

// conn serves one connection: the limits, the login, then its sessions.
func (s *Server) conn(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	src := host(nc.RemoteAddr())
	who := commit.Who{From: "ssh " + nc.RemoteAddr().String()}
	defer s.recoverPanic(&who, "connection")
	if wait, blocked := s.Limiter.Blocked(src); blocked {
		s.Env.Audit.Failure(src, who, "connection refused: too many failed logins from this address (retry in "+wait.Round(time.Second).String()+")")
		s.hold(nc)
		return
	}
	admitted, ok := s.Admission.Admit(src, func() { nc.Close() })
	if !ok {
		s.Limiter.Fail(src) // a source that keeps knocking ends up blocked
		s.Env.Audit.Failure(src, who, "connection refused: too many logins in progress")
		s.hold(nc)
		return
	}
	nc.SetDeadline(time.Now().Add(LoginGrace))
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	admitted()
	if err != nil {
		return
	}
	defer sc.Close()
	nc.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	s.Limiter.Succeed(src)
	who.User = sc.User()
	role := sc.Permissions.Extensions["role"]
	if s.Sessions.Len() >= MaxConns {
		s.Env.Audit.Failure(src, who, fmt.Sprintf("login refused: %d connections are logged in already", MaxConns))
		return
	}
	s.Env.Audit.Record(who, "login ("+sc.Permissions.Extensions["method"]+", role "+role+")")
	defer s.Env.Audit.Record(who, "logout")
	c := &connection{sc: sc, chans: map[ssh.Channel]bool{}}
	remove := s.Sessions.Add(sc.User(), role, "ssh", src, func(reason string) {
		s.Env.Audit.Record(who, "logged out: "+reason)
		c.end(reason)
	})
	defer remove()
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		if c.count() >= MaxSessions {
			nch.Reject(ssh.ResourceShortage, fmt.Sprintf("at most %d sessions per connection", MaxSessions))
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		c.add(ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.remove(ch)
			s.session(ch, creqs, who, role)
		}()
	}
}

// hold keeps a refused connection open and silent for TarpitTime (or
// until the client goes), when a tarpit slot is free.
func (s *Server) hold(nc net.Conn) {
	select {
	case s.tarpit <- struct{}{}:
		defer func() { <-s.tarpit }()
	default:
		return
	}
	nc.SetReadDeadline(time.Now().Add(TarpitTime))
	io.Copy(io.Discard, io.LimitReader(nc, 4096))
}

// connection is a logged-in connection and its open sessions.
type connection struct {
	sc    *ssh.ServerConn
	mu    sync.Mutex
	chans map[ssh.Channel]bool
}

func (c *connection) add(ch ssh.Channel)    { c.mu.Lock(); c.chans[ch] = true; c.mu.Unlock() }
func (c *connection) remove(ch ssh.Channel) { c.mu.Lock(); delete(c.chans, ch); c.mu.Unlock() }
func (c *connection) count() int            { c.mu.Lock(); defer c.mu.Unlock(); return len(c.chans) }

// end tells every session why, then closes the connection. It does not
// block: a client that reads nothing is cut off after a second.
func (c *connection) end(reason string) {
	c.mu.Lock()
	var open []ssh.Channel
	for ch := range c.chans {
		open = append(open, ch)
	}
	c.mu.Unlock()
	t := time.AfterFunc(time.Second, func() { c.sc.Close() })
	go func() {
		for _, ch := range open {
			io.WriteString(ch, "\r\n"+reason+": logging out\r\n")
		}
		c.sc.Close()
		t.Stop()
	}()
}

// The session requests of RFC 4254 section 6, decoded with ssh.Unmarshal.
type (
	ptyRequest struct {
		Term                         string
		Columns, Rows, Width, Height uint32
		Modes                        string
	}
	windowChange struct{ Columns, Rows, Width, Height uint32 }
	execRequest  struct{ Command string }
	envRequest   struct{ Name, Value string }
	exitStatus   struct{ Status uint32 }
)

// termSize keeps a window size sane for the line editor.
func termSize(cols, rows uint32) (int, int) {
	return int(min(max(cols, 20), 1000)), int(min(max(rows, 2), 1000))
}

// session serves one session channel: a shell or one command, with or
// without a pty. Its requests are read here until the client closes the
// channel, so nothing is left waiting on them.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request, who commit.Who, role string) {
	defer ch.Close()
	defer s.recoverPanic(&who, "session")
	w, h := 80, 24
	pty := false
	var term *cli.Terminal
	var idle *access.Idle
	done := make(chan uint32, 1)
	started := false
	for {
		select {
		case status := <-done:
			if idle != nil {
				idle.Close()
			}
			ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{status}))
			ch.Close()
			for req := range reqs {
				if req.WantReply {
					req.Reply(false, nil)
				}
			}
			return
		case req, ok := <-reqs:
			if !ok {
				ch.Close() // the client went: a running command sees EOF or write errors
				if started {
					<-done
				}
				if idle != nil {
					idle.Close()
				}
				return
			}
			reply := false
			switch req.Type {
			case "pty-req":
				var p ptyRequest
				if !started && ssh.Unmarshal(req.Payload, &p) == nil {
					pty, reply = true, true
					w, h = termSize(p.Columns, p.Rows)
				}
			case "window-change":
				var p windowChange
				if ssh.Unmarshal(req.Payload, &p) == nil {
					w, h = termSize(p.Columns, p.Rows)
					if term != nil {
						term.SetSize(w, h)
					}
				}
			case "env":
				var p envRequest
				reply = ssh.Unmarshal(req.Payload, &p) == nil // accepted and ignored (LANG and the like)
			case "shell", "exec":
				var cmd string
				if req.Type == "exec" {
					var p execRequest
					if ssh.Unmarshal(req.Payload, &p) != nil || strings.TrimSpace(p.Command) == "" {
						break
					}
					cmd = p.Command
				}
				if started {
					break
				}
				started, reply = true, true
				if pty {
					sys := s.Env.Manager.System()
					idle = access.NewIdle(ch, sys.IdleTimeout(), func() {
						io.WriteString(ch, "\r\nidle timeout: logging out\r\n")
						ch.CloseWrite()
						ch.Close()
					})
					term = cli.NewTerminal(struct {
						io.Reader
						io.Writer
					}{idle, ch})
					term.SetSize(w, h)
				}
				go func() {
					status := uint32(1)
					defer func() { done <- status }()
					defer s.recoverPanic(&who, "session")
					status = s.run(ch, term, who, role, cmd)
				}()
			}
			// subsystem (no sftp here), x11-req, signal, break,
			// auth-agent and unknown types are refused.
			if req.WantReply {
				req.Reply(reply, nil)
			}
		}
	}
}

// run runs the shell (cmd == "") or one command line (commands
// separated by ';'), on term when there is a pty, and returns the exit
// status.
func (s *Server) run(ch ssh.Channel, term *cli.Terminal, who commit.Who, role, cmd string) uint32 {
	sess := cli.Session{User: who.User, Role: config.Role(role), From: who.From, CurrentRole: s.currentRole(who.User)}
	if term == nil {
		// No terminal: plain output, no prompts; standard input is data
		// (request system software add - < secwire.bundle).
		out := &crlfless{w: ch}
		sess.Out, sess.In = out, ch
		sh := cli.New(s.Env, sess)
		for _, line := range strings.Split(cmd, ";") {
			if sh.Done() {
				break
			}
			sh.Exec(strings.TrimSpace(line))
		}
		if out.err {
			return 1
		}
		return 0
	}
	sess.Out, sess.AskSecret, sess.AskLine = term, term.AskSecret, term.AskLine
	sh := cli.New(s.Env, sess)
	if cmd != "" {
		for _, line := range strings.Split(cmd, ";") {
			if sh.Done() {
				break
			}
			sh.Exec(strings.TrimSpace(line))
		}
		return 0
	}
	if err := term.Serve(sh); err != nil {
		s.Log.Debug("ssh session", "user", who.User, "err", err)
	}
	return 0
}

// currentRole looks the user up in the running config at every command,
// so a commit that deletes or demotes them takes effect at once.
func (s *Server) currentRole(user string) func() (config.Role, bool) {
	return func() (config.Role, bool) {
		sys := s.Env.Manager.System()
		u := sys.User(user)
		if u == nil {
			return "", false
		}
		return u.Role, true
	}
}

// recoverPanic ends a session or connection that hit a bug, instead of
// the whole firmware, and says where; the panic's value is not logged
// (it might hold what the user typed).
func (s *Server) recoverPanic(who *commit.Who, what string) {
	r := recover()
	if r == nil {
		return
	}
	s.panics.Add(1)
	detail := fmt.Sprintf("%T", r)
	if re, ok := r.(runtime.Error); ok {
		detail = re.Error()
	}
	s.Log.Error("ssh "+what+" ended by an internal error; other sessions go on", "user", who.User, "from", who.From, "panic", detail, "at", panicSite())
	s.Env.Audit.Record(*who, "ssh "+what+" ended by an internal error")
}

// panicSite is the first frame outside the runtime: where it panicked.
func panicSite() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

// crlfless passes output through and notes whether an error was printed.
type crlfless struct {
	w   io.Writer
	err bool
}

func (c *crlfless) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("error: ")) {
		c.err = true
	}
	return c.w.Write(p)
}
