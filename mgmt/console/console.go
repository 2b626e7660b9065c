// Package console is the serial console: a login prompt in front of the
// CLI and, while no administrator exists, the first-boot setup that
// creates one (there is no default password anywhere).
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/cli"
)

// Console runs logins on one serial port.
type Console struct {
	Env      *cli.Env
	Limiter  *access.Limiter
	Sessions *access.Sessions
	// MgmtPort is the board's management port, offered an address at
	// first boot; "" when the board has none.
	MgmtPort string
}

const from = "console"

// Run serves the console until ctx ends. It never returns to a shell of
// the operating system: only the CLI, behind a login.
func (c *Console) Run(ctx context.Context, rw io.ReadWriter) error {
	if c.Limiter == nil {
		c.Limiter = access.NewLimiter()
	}
	if c.Sessions == nil {
		c.Sessions = &access.Sessions{}
	}
	idle := access.NewIdle(rw, 0, nil)
	t := cli.NewTerminal(struct {
		io.Reader
		io.Writer
	}{idle, rw})
	closed := 0
	for ctx.Err() == nil {
		if closed > 3 { // the console is gone (EOF again and again)
			<-ctx.Done()
			break
		}
		m := c.Env.Manager
		sys := m.System()
		if !sys.HasAdmin() {
			if err := c.firstBoot(t); err != nil {
				if errors.Is(err, io.EOF) {
					closed++
				} else {
					fmt.Fprintf(t, "first-boot setup: %v\n\n", err)
				}
			}
			continue
		}
		host := sys.Hostname
		if host == "" {
			host = "secwire"
		}
		name, err := t.AskLine("\n" + host + " login: ")
		if err != nil {
			closed++
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		closed = 0
		if wait, blocked := c.Limiter.Blocked(from); blocked {
			fmt.Fprintf(t, "too many failed logins: try again in %v\n", wait.Round(time.Second))
			time.Sleep(min(wait, 5*time.Second))
			continue
		}
		pw, err := t.AskSecret("Password: ")
		if err != nil {
			continue
		}
		sys = m.System()
		u := access.Authenticate(&sys, name, pw)
		if u == nil {
			c.Limiter.Fail(from)
			c.Env.Audit.Failure(from, commit.Who{User: name, From: from}, "login failed (password)")
			time.Sleep(2 * time.Second) // slows guessing on the console
			fmt.Fprintln(t, "Login incorrect")
			continue
		}
		c.Limiter.Succeed(from)
		c.session(rw, idle, u, sys.IdleTimeout())
	}
	return ctx.Err()
}

// session runs the CLI for one login on a terminal of its own, so the
// next user finds an empty history. A bug in it ends this session only.
func (c *Console) session(rw io.ReadWriter, idle *access.Idle, u *config.User, timeout time.Duration) {
	who := commit.Who{User: u.Name, From: from}
	t := cli.NewTerminal(struct {
		io.Reader
		io.Writer
	}{idle, rw})
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(t, "\ninternal error: the session ended (the links are not affected)")
			c.Env.Audit.Record(who, "console session ended by an internal error")
		}
	}()
	c.Env.Audit.Record(who, "login (password, role "+string(u.Role)+")")
	remove := c.Sessions.Add(u.Name, string(u.Role), "console", "ttyS0", func(reason string) {
		c.Env.Audit.Record(who, "logged out: "+reason)
		fmt.Fprintf(t, "\n%s: logging out\n", reason)
		idle.Interrupt()
	})
	defer remove()
	idle.SetTimeout(timeout, func() {
		fmt.Fprintln(t, "\nidle timeout: logging out")
	})
	defer idle.SetTimeout(0, nil)
	sh := cli.New(c.Env, cli.Session{User: u.Name, Role: u.Role, From: from, Out: t, AskSecret: t.AskSecret, AskLine: t.AskLine,
		CurrentRole: func() (config.Role, bool) {
			sys := c.Env.Manager.System()
			if u := sys.User(u.Name); u != nil {
				return u.Role, true
			}
			return "", false
		}})
	t.Serve(sh)
	c.Env.Audit.Record(who, "logout")
}

// firstBoot creates the administrator and, when the board has a
// management port, its address.
func (c *Console) firstBoot(t *cli.Terminal) error {
	fmt.Fprint(t, "\nsecwire first-boot setup: no administrator is configured.\n"+
		"Create one now; there is no default password.\n\n")
	name, err := t.AskLine("Administrator name [admin]: ")
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "admin"
	}
	pw, err := t.AskSecret("Password (8 to 72 characters): ")
	if err != nil {
		return err
	}
	again, err := t.AskSecret("Retype password: ")
	if err != nil {
		return err
	}
	if pw != again {
		return errors.New("the passwords differ; nothing was changed")
	}
	hash, err := config.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("password %v", err)
	}
	cand := c.Env.Manager.Running()
	cand.System.Users = append(cand.System.Users, config.User{Name: name, Role: config.RoleAdmin, Password: hash})
	changes := []string{"+ set system users " + name + " role admin", "+ set system users " + name + " password <secret>"}
	if c.MgmtPort != "" && cand.System.Management == nil {
		addr, err := t.AskLine("Management address on " + c.MgmtPort + " for SSH (such as 192.0.2.10/24; empty: none): ")
		if err != nil {
			return err
		}
		if addr = strings.TrimSpace(addr); addr != "" {
			pfx, err := netip.ParsePrefix(addr)
			if err != nil {
				return fmt.Errorf("%q: want an address with prefix length, such as 192.0.2.10/24", addr)
			}
			cand.System.Management = &config.Management{Interface: c.MgmtPort, Address: pfx}
			changes = append(changes, "+ set system management interface "+c.MgmtPort, "+ set system management address "+addr)
		}
	}
	if errs := cand.Check(); len(errs) > 0 {
		return errs
	}
	if _, err := c.Env.Manager.Commit(cand, commit.Who{User: name, From: "console first-boot"}, changes, 0); err != nil {
		return err
	}
	fmt.Fprintf(t, "\nAdministrator %s created. Log in to configure the links ('configure', then 'set links ...').\n", name)
	return nil
}
