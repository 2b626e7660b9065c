// Package appliance assembles the management plane on the booted box: the
// commit manager over the stored config (which starts the links), the
// management address and SSH, and the login on the serial console.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/boot"
	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/health"
	"github.com/secwire/secwire/firmware/logring"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/firmware/timesync"
	"github.com/secwire/secwire/firmware/tpmkey"
	"github.com/secwire/secwire/mgmt/access"
	"github.com/secwire/secwire/mgmt/audit"
	"github.com/secwire/secwire/mgmt/cli"
	"github.com/secwire/secwire/mgmt/console"
	"github.com/secwire/secwire/mgmt/noc"
	"github.com/secwire/secwire/mgmt/plane"
	"github.com/secwire/secwire/mgmt/sshd"
)

// Files on the config partition besides the config.
const (
	HostKeyFile = boot.ConfigMount + "/ssh_host_ed25519_key"
	AuditFile   = boot.ConfigMount + "/audit.log"
	StateDir    = boot.ConfigMount + "/state"
)

// Version is the firmware version, set by main.
var Version = "dev"

// Run starts the links of the stored config, the management plane and
// the login on the console, and runs until ctx ends: boot's Manage.
func Run(ctx context.Context, con io.ReadWriter, b boot.Booted) error {
	board, mgmtPort, booted := b.Board, b.MgmtPort, b.Start
	rawConsole(os.Stdin) // the console is the uinit's stdio
	ring := &logring.Ring{Max: 1000}
	audit := &audit.Log{Path: AuditFile}
	// Clock sync, remote syslog and metrics (mgmt/noc): the system log
	// goes to the collectors as well as to `show log`.
	services := noc.New(noc.Options{ConfigDir: boot.ConfigMount, Setter: timesync.System{},
		RTC: timesync.DeviceRTC{Path: boot.RTCDevice}, Audit: audit, Version: Version,
		Slot: runningSlotLabel})
	log := slog.New(services.Syslog.Handler(slog.NewTextHandler(ring, &slog.HandlerOptions{Level: slog.LevelInfo})))
	audit.Log = log
	services.SetLog(log)
	sessions := &access.Sessions{}
	pl := &plane.Plane{Log: log}
	os.MkdirAll(StateDir, 0o700)
	var sealKey func(string) (string, error)
	if tpmkey.Present() {
		sealKey = sealKeyWithTPM
	}
	m, err := commit.Open(ctx, commit.Options{
		SealKey:    sealKey,
		ConfigPath: boot.ConfigFile, StateDir: StateDir, Log: log, Audit: audit,
		Clock: services.Time.Now, ClockSynced: services.Time.Synced, Check: services.Check,
		OnChange: func(c *config.Config) {
			pl.Apply(c)
			services.Apply(c)             // after the plane: metrics listen on its address
			sessions.Reconcile(&c.System) // deleted or re-roled users are logged out
		},
	})
	if m == nil {
		return fmt.Errorf("config store: %w", err)
	}
	if err != nil {
		fmt.Fprintf(con, "secwire: ERROR: %v\n", err)
	}
	defer m.Stop()
	sw := newSoftware(board.Name, Version, log)
	if msg := sw.Booted(); msg != "" {
		fmt.Fprintf(con, "secwire: WARNING: %s\n", msg)
	}
	services.SetLinks(m.RawStatus)
	svcDone := make(chan struct{})
	defer func() { <-svcDone }()
	env := &cli.Env{
		Manager:  m,
		Audit:    audit,
		Log:      ring.Tail,
		Sessions: sessions.List,
		NOC:      services.Status,
		Info: func() []string {
			var uts unix.Utsname
			unix.Uname(&uts)
			return []string{
				"Version: secwire " + Version,
				"Board: " + board.Name + " (" + board.Description + ")",
				"Kernel: " + unix.ByteSliceToString(uts.Release[:]),
				"Boot: " + bootLine(sw) + "; config partition " + boot.ConfigPartName,
				deviceKeyLine(),
				"Booted: " + booted.Format(time.DateTime),
				runtimeLine(),
			}
		},
		Ports: func() []drivers.Port {
			inv, _ := drivers.Inventory("/sys")
			p, _ := board.Assign(inv)
			return p
		},
		Reboot:         func() error { return reboot(log) },
		Software:       sw,
		OpenConfigFile: openConfigFile,
		TrustKey:       func(name, key string) (string, error) { return trustKey(sw, name, key) },
		Zeroize: func() error {
			if err := errors.Join(Zeroize(m, audit, boot.ConfigMount, HostKeyFile), clearTPM()); err != nil {
				log.Error("zeroize", "err", err)
			}
			return reboot(log)
		},
	}
	if b.TestHooks {
		env.StallMKA = m.StallMKA
	}
	// The watchdog is fed only while the links, their key agreement and
	// the management plane (a silent operator session) make progress.
	beat := &health.Beat{}
	beat.Mark(time.Now())
	go cli.Heartbeat(ctx, env, beat, time.Second)
	if b.Health != nil {
		b.Health.Add("links", m.Health)
		b.Health.Add("management", func(now time.Time) error {
			return health.Stale("the CLI (show mka)", beat.Last(), now, health.StaleAfter)
		})
	}
	limiter := access.NewLimiter()
	pl.SSH = &sshd.Server{Env: env, HostKey: HostKeyFile, Limiter: limiter, Sessions: sessions, Log: log}
	if testNeverHealthy {
		log.Error("test build secwire_never_healthy: the management plane is not started")
	} else {
		pl.Start(ctx, m.Running())
	}
	services.Apply(m.Running()) // after the plane: metrics listen on its address
	say := func(f string, a ...any) { fmt.Fprintf(con, f+"\n", a...) }
	go watchHealth(ctx, sw, &bootHealth{m: m, cfgErr: err}, booted, healthTimeout(), say, log, func() error { return reboot(log) })
	go func() { services.Run(ctx); close(svcDone) }()
	c := &console.Console{Env: env, Limiter: limiter, Sessions: sessions, MgmtPort: mgmtPort}
	return c.Run(ctx, con)
}

// Zeroize erases the config partition mounted at dir: the config and
// its rollback copies, the device key, the PN state, the audit log and
// the extra files (the SSH host key), each overwritten before it is
// deleted; then it fills the partition's free space with zeros, so no
// earlier version of any of them survives in freed blocks.
func Zeroize(m *commit.Manager, a *audit.Log, dir string, extra ...string) error {
	return errors.Join(m.Zeroize(extra...), a.Erase(), store.ScrubFree(dir))
}

// rawConsole puts a terminal console into raw mode, so the line editor
// sees every key (Tab, '?', arrows) and echoes for itself.
func rawConsole(f *os.File) {
	if term.IsTerminal(int(f.Fd())) {
		term.MakeRaw(int(f.Fd()))
	}
}

// runtimeLine is the firmware's resource use for show system.
func runtimeLine() string {
	r := health.ReadRuntime()
	return fmt.Sprintf("Firmware: RSS %.1f MiB, %d goroutines, %d threads", float64(r.RSSBytes)/(1<<20), r.Goroutines, r.Threads)
}

func reboot(log *slog.Logger) error {
	log.Warn("rebooting")
	unix.Sync()
	unix.Unmount(boot.ConfigMount, 0)
	time.Sleep(100 * time.Millisecond)
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
