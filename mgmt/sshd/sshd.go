// Package sshd is the appliance's SSH server (golang.org/x/crypto/ssh):
// password and public-key logins for the configured users, an ed25519
// host key made on first use and kept on the config partition, a limit on
// failed logins per source address, an idle timeout, and the audit log.
// Sessions run the same CLI as the serial console; `ssh box show mka`
// runs one command.
package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/cli"
)

// Server serves SSH logins.
type Server struct {
	Env      *cli.Env // the shell's environment; Env.Manager holds the users
	HostKey  string   // path of the host key (PEM, OpenSSH format)
	Limiter  *access.Limiter
	Sessions *access.Sessions
	Log      *slog.Logger
}

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
		MaxAuthTries:  6,
		ServerVersion: "SSH-2.0-secwire",
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			src := host(c.RemoteAddr())
			if wait, blocked := s.Limiter.Blocked(src); blocked {
				s.audit(c, "login refused: too many failed logins from this address (retry in "+wait.Round(time.Second).String()+")")
				return nil, errors.New("too many failed logins")
			}
			u := access.Authenticate(s.Env.Manager.Running(), c.User(), string(pw))
			if u == nil {
				s.Limiter.Fail(src)
				s.audit(c, "login failed (password)")
				return nil, errors.New("wrong user or password")
			}
			return &ssh.Permissions{Extensions: map[string]string{"role": u.Role, "method": "password"}}, nil
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if _, blocked := s.Limiter.Blocked(host(c.RemoteAddr())); blocked {
				return nil, errors.New("too many failed logins")
			}
			u := s.Env.Manager.Running().System.User(c.User())
			if u == nil {
				return nil, errors.New("no such key")
			}
			for _, line := range u.SSHKeys {
				k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
				if err == nil && bytes.Equal(k.Marshal(), key.Marshal()) {
					return &ssh.Permissions{Extensions: map[string]string{"role": u.Role, "method": "publickey " + ssh.FingerprintSHA256(key)}}, nil
				}
			}
			return nil, errors.New("no such key")
		},
	}
	cfg.AddHostKey(signer)
	return cfg
}

func host(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func (s *Server) audit(c ssh.ConnMetadata, event string) {
	s.Env.Audit.Record(commit.Who{User: c.User(), From: "ssh " + c.RemoteAddr().String()}, event)
}

// Serve accepts connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	signer, err := LoadHostKey(s.HostKey)
	if err != nil {
		return err
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Limiter == nil {
		s.Limiter = access.NewLimiter()
	}
	if s.Sessions == nil {
		s.Sessions = &access.Sessions{}
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
			return err
		}
		go s.conn(ctx, c, cfg)
	}
}

func (s *Server) conn(ctx context.Context, nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake and login
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	defer sc.Close()
	s.Limiter.Succeed(host(sc.RemoteAddr()))
	who := commit.Who{User: sc.User(), From: "ssh " + sc.RemoteAddr().String()}
	role := sc.Permissions.Extensions["role"]
	s.Env.Audit.Record(who, "login ("+sc.Permissions.Extensions["method"]+", role "+role+")")
	defer s.Env.Audit.Record(who, "logout")
	end := s.Sessions.Add(sc.User(), role, "ssh", host(sc.RemoteAddr()))
	defer end()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go s.session(ctx, sc, ch, creqs, who, role)
	}
}

// session serves one session channel: a pty and shell, or one command.
func (s *Server) session(ctx context.Context, sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request, who commit.Who, role string) {
	defer ch.Close()
	var w, h uint32 = 80, 24
	pty := false
	idle := s.Env.Manager.Running().System.IdleTimeout()
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			pty = true
			w, h = ptySize(req.Payload)
			req.Reply(true, nil)
		case "env":
			req.Reply(true, nil)
		case "shell", "exec":
			req.Reply(true, nil)
			var cmd string
			if req.Type == "exec" && len(req.Payload) >= 4 {
				cmd = string(req.Payload[4:])
			}
			go func() {
				// Later requests (window-change) are not needed: the CLI
				// does not lay out by width.
				for r := range reqs {
					if r.WantReply {
						r.Reply(false, nil)
					}
				}
			}()
			status := s.run(ch, who, role, cmd, pty, int(w), int(h), idle)
			ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// run runs the shell (cmd == "") or one command, and returns its exit status.
func (s *Server) run(ch ssh.Channel, who commit.Who, role, cmd string, pty bool, w, h int, idle time.Duration) uint32 {
	in := access.NewIdle(ch, idle, func() {
		io.WriteString(ch, "\r\nidle timeout: logging out\r\n")
		ch.CloseWrite()
		ch.Close()
	})
	defer in.Close()
	rw := struct {
		io.Reader
		io.Writer
	}{in, ch}
	if cmd != "" && !pty {
		// One command, no terminal: plain output, and no prompts.
		out := &crlfless{w: ch}
		sh := cli.New(s.Env, cli.Session{User: who.User, Role: role, From: who.From, Out: out})
		for _, line := range strings.Split(cmd, ";") {
			sh.Exec(strings.TrimSpace(line))
		}
		if out.err {
			return 1
		}
		return 0
	}
	t := cli.NewTerminal(rw)
	t.SetSize(w, h)
	sh := cli.New(s.Env, cli.Session{User: who.User, Role: role, From: who.From, Out: t, AskSecret: t.AskSecret, AskLine: t.AskLine})
	if cmd != "" {
		for _, line := range strings.Split(cmd, ";") {
			sh.Exec(strings.TrimSpace(line))
		}
		return 0
	}
	if err := t.Serve(sh); err != nil {
		s.Log.Debug("ssh session", "user", who.User, "err", err)
	}
	return 0
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

func ptySize(p []byte) (uint32, uint32) {
	// string TERM, uint32 width, uint32 height, ...
	if len(p) < 4 {
		return 80, 24
	}
	n := binary.BigEndian.Uint32(p)
	if uint32(len(p)) < 4+n+8 {
		return 80, 24
	}
	return binary.BigEndian.Uint32(p[4+n:]), binary.BigEndian.Uint32(p[8+n:])
}
