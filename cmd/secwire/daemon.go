package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/health"
	"github.com/secwire/secwire/firmware/logring"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/firmware/timesync"
	"github.com/secwire/secwire/firmware/watchdog"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/audit"
	"github.com/secwire/secwire/mgmt/cli"
	"github.com/secwire/secwire/mgmt/noc"
	"github.com/secwire/secwire/mgmt/show"
	"github.com/secwire/secwire/mgmt/sshd"
)

const daemonUsage = `usage: secwire daemon --config FILE [--socket PATH] [--state DIR] [--log-level debug|info|warn|error]
                      [--ssh ADDR] [--host-key FILE] [--watchdog DURATION] [--test-hooks]

Runs the links of FILE (the format is docs/config.md) until SIGTERM or
SIGINT, logging to standard error; 'secwire show' reads its status from
the management socket (default ` + ctl.DefaultSocket + `).

--ssh ADDR (such as 127.0.0.1:2222) serves the management CLI over SSH to
the users of FILE; a commit there rewrites FILE (earlier versions are kept
as FILE.1 ... FILE.10, secrets sealed with seal.key beside it). The host
key (default ssh_host_ed25519_key beside FILE) is made on first start.

--watchdog DURATION (such as 60s) ends the daemon with an error when its
links, their key agreement or its management plane make no progress for
that long, as the appliance's hardware watchdog resets the box: run it
under a service manager that restarts it. GET /health on the socket says
what is wedged either way.

--test-hooks serves fault injection on the socket (a KaY that hangs, for
watchdog tests) and goroutine stacks; never on a production host`

// daemonCmd runs the host daemon.
func daemonCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("config", "", "config file")
	sock := fs.String("socket", ctl.DefaultSocket, "management socket")
	level := fs.String("log-level", "info", "log level")
	state := fs.String("state", "/var/lib/secwire", "state directory (transmit PN ceilings)")
	sshAddr := fs.String("ssh", "", "SSH listen address")
	hostKey := fs.String("host-key", "", "SSH host key file")
	wd := fs.Duration("watchdog", 0, "end the daemon when it makes no progress for this long")
	testHooks := fs.Bool("test-hooks", false, "fault injection on the management socket")
	if err := parseFlags(fs, args, daemonUsage); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("give the config file: --config FILE\n" + shortUsage(daemonUsage))
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected %q\n%s", fs.Arg(0), shortUsage(daemonUsage))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	// The socket first: a second daemon must not touch any port.
	ctlLn, err := ctl.Listen(*sock)
	if err != nil {
		return err
	}
	defer ctlLn.Close()
	dir := filepath.Dir(*file)
	audit := &audit.Log{Path: filepath.Join(dir, "audit.log")}
	// The NOC services: the daemon keeps its own clock view (it never sets
	// the host's clock), sends its log to syslog collectors, and serves
	// metrics. They start before the links, so that the links' first log
	// lines reach the collectors and key chains start on the NTP clock.
	services := noc.New(noc.Options{ConfigDir: dir, HostSynced: timesync.KernelSynced, Audit: audit, Version: version})
	// The log goes to standard error, to syslog collectors, and, for
	// 'show log' over SSH, to a ring.
	ring := &logring.Ring{Max: 1000}
	log := slog.New(services.Syslog.Handler(slog.NewTextHandler(io.MultiWriter(os.Stderr, ring), &slog.HandlerOptions{Level: lv})))
	audit.Log = log
	services.SetLog(log)
	services.Apply(cfg)
	if cfg.System.NTP != nil {
		// Key chain start/end times need the clock: a first answer
		// before the links start, if it comes soon.
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		services.Time.Sync(sctx)
		cancel()
	}
	svcCtx, stopServices := context.WithCancel(ctx)
	svcDone := make(chan struct{})
	go func() { services.Run(svcCtx); close(svcDone) }()
	defer func() { stopServices(); <-svcDone }()
	sessions := &access.Sessions{}
	m, err := commit.Open(ctx, commit.Options{ConfigPath: *file, StateDir: *state, Log: log, Audit: audit,
		Clock: services.Time.Now, ClockSynced: services.Time.Synced, Check: services.Check,
		OnChange: func(c *config.Config) {
			sessions.Reconcile(&c.System)
			services.Apply(c)
		}})
	if err != nil {
		if m != nil {
			m.Stop()
		}
		return err
	}
	defer m.Stop()
	services.SetLinks(m.RawStatus)
	errc := make(chan error, 3)
	// The management plane's proof of progress: a silent operator session.
	beat := &health.Beat{}
	beat.Mark(time.Now())
	go cli.Heartbeat(ctx, &cli.Env{Manager: m, Audit: audit}, beat, time.Second)
	mon := &health.Monitor{}
	mon.Add("links", m.Health)
	mon.Add("management", func(now time.Time) error {
		return health.Stale("the CLI (show mka)", beat.Last(), now, health.StaleAfter)
	})
	h := ctl.Handlers{Status: m.Status, Rekey: m.Rekey, ClearCounters: m.ClearCounters, Health: mon.Check,
		Get: map[string]func() any{"noc": func() any { return services.Status() }}}
	if *testHooks {
		log.Warn("test hooks enabled: fault injection is reachable on the management socket")
		h.StallMKA = m.StallMKA
	}
	go func() { errc <- ctl.Serve(ctx, ctlLn, h) }()
	if *wd > 0 {
		soft := &watchdog.Soft{Timeout: *wd}
		go watchdog.Feed(ctx, soft, mon, time.Second, log)
		go func() {
			if err := soft.Run(ctx); err != nil {
				errc <- fmt.Errorf("%w: the links, MKA or management plane stopped making progress (see the log); exiting for the service manager to restart the daemon", err)
			}
		}()
	}
	if *sshAddr != "" {
		ln, err := net.Listen("tcp", *sshAddr)
		if err != nil {
			return fmt.Errorf("--ssh: %w", err)
		}
		if *hostKey == "" {
			*hostKey = filepath.Join(dir, "ssh_host_ed25519_key")
		}
		env := &cli.Env{Manager: m, Audit: audit, Sessions: sessions.List, NOC: services.Status, Log: ring.Tail, FileDir: filepath.Join(dir, "files"),
			StallMKA: h.StallMKA}
		srv := &sshd.Server{Env: env, HostKey: *hostKey, Sessions: sessions, Log: log}
		go func() { errc <- srv.Serve(ctx, ln) }()
	}
	log.Info("secwire daemon running", "config", *file, "links", len(m.Running().Links), "socket", *sock, "ssh", *sshAddr, "version", version)
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return nil
	case err := <-errc:
		return err
	}
}

const configUsage = `usage: secwire config check FILE

Checks a config file and prints every problem with its field path`

func configCmd(args []string, w io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return errors.New(configUsage)
	}
	if _, err := config.Load(args[1]); err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return fmt.Errorf("%s: %d problem(s):\n%w", args[1], len(errs), err)
		}
		return err
	}
	fmt.Fprintf(w, "%s: ok\n", args[1])
	return nil
}

const showUsage = `usage: secwire show interfaces|macsec|mka|counters [--socket PATH] [--json]
       secwire show system time|syslog|metrics [--socket PATH] [--json]`

func showCmd(args []string, w io.Writer) error {
	if len(args) == 0 {
		return errors.New(showUsage)
	}
	if args[0] == "system" {
		return showSystemCmd(args[1:], w)
	}
	views := map[string]func(io.Writer, supervisor.Status){
		"interfaces": show.Interfaces, "macsec": show.MACsec, "counters": show.Counters, "mka": show.MKA,
	}
	view, ok := views[args[0]]
	if !ok {
		// Unique prefixes, as on the appliance's CLI.
		for name, v := range views {
			if len(args[0]) > 0 && len(name) >= len(args[0]) && name[:len(args[0])] == args[0] {
				if view != nil {
					return fmt.Errorf("show %q is ambiguous\n%s", args[0], showUsage)
				}
				view = v
			}
		}
		if view == nil {
			return fmt.Errorf("show %q: unknown; want interfaces, macsec, mka, counters or system\n%s", args[0], showUsage)
		}
	}
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", ctl.DefaultSocket, "management socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args[1:], showUsage); err != nil {
		return err
	}
	st, err := ctl.Status(*sock)
	if err != nil {
		return err
	}
	if *asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(st)
	}
	view(w, st)
	return nil
}

const requestUsage = `usage: secwire request mka rekey LINK [--socket PATH]

asks LINK's key server for a new SAK; run it on the end that is the key
server (see 'secwire show mka')`

// requestCmd runs operational requests against the daemon.
func requestCmd(args []string) error {
	if len(args) < 3 || args[0] != "mka" || args[1] != "rekey" {
		return errors.New(requestUsage)
	}
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", ctl.DefaultSocket, "management socket")
	if err := parseFlags(fs, args[3:], requestUsage); err != nil {
		return err
	}
	if err := ctl.Rekey(*sock, args[2]); err != nil {
		return err
	}
	fmt.Printf("link %s: rekey requested; the key server distributes a new SAK ('secwire show mka' shows its KN)\n", args[2])
	return nil
}

// showSystemCmd shows the NOC services of the daemon.
func showSystemCmd(args []string, w io.Writer) error {
	views := map[string]func(io.Writer, noc.Status){
		"time":    func(w io.Writer, st noc.Status) { noc.ShowTime(w, st) },
		"syslog":  func(w io.Writer, st noc.Status) { noc.ShowSyslog(w, st, time.Now()) },
		"metrics": noc.ShowMetrics,
	}
	if len(args) == 0 || views[args[0]] == nil {
		return errors.New(showUsage)
	}
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", ctl.DefaultSocket, "management socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%v\n%s", err, showUsage)
	}
	var st noc.Status
	if err := ctl.Get(*sock, "noc", &st); err != nil {
		return err
	}
	if *asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(st)
	}
	views[args[0]](w, st)
	return nil
}

const clearUsage = `usage: secwire clear counters [--socket PATH]

makes 'secwire show counters' count from now; the metrics endpoint's
counters go on (they never go back)`

func clearCmd(args []string) error {
	if len(args) == 0 || args[0] != "counters" {
		return errors.New(clearUsage)
	}
	fs := flag.NewFlagSet("clear", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", ctl.DefaultSocket, "management socket")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%v\n%s", err, clearUsage)
	}
	return ctl.ClearCounters(*sock)
}
