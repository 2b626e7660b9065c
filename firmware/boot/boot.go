// Package boot is the appliance's uinit: after u-root's init has mounted
// /proc, /sys, /dev and /tmp it loads the board's modules, coldplugs the
// NICs, arms the watchdog, mounts the config partition, prints the port
// inventory, starts the links of the stored config and hands the serial
// console to the login prompt. The watchdog is fed only while the
// firmware makes progress (package watchdog).
package boot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/health"
	"github.com/secwire/secwire/firmware/timesync"
	"github.com/secwire/secwire/firmware/watchdog"
	"github.com/secwire/secwire/internal/ifquiet"
)

// Paths inside the appliance image.
const (
	BoardFile   = "/etc/secwire/board.json"
	ConfigMount = "/config"
	ConfigFile  = "/config/secwire.json"
	// ConfigPartName is the GPT partition name of the config partition.
	ConfigPartName = "secwire-config"
	// RTCDevice is the real-time clock the boot sets the clock from.
	RTCDevice = "/dev/rtc0"
)

// Options tune the boot.
type Options struct {
	PortWait time.Duration // how long to wait for the board's ports
	// Manage runs the appliance once booted (mgmt/appliance): the links,
	// the management plane and the console. It keeps boot free of
	// terminals and SSH.
	Manage func(ctx context.Context, console io.ReadWriter, b Booted) error
}

// Booted is what the boot found.
type Booted struct {
	Board    *drivers.Board
	MgmtPort string // the board's management port, "" if none
	Start    time.Time
	// Health gates the watchdog: Manage adds the checks of what it runs
	// (links, key agreement, management plane), and the watchdog is fed
	// only while every one passes.
	Health *health.Monitor
	// TestHooks is set by secwire.testhooks=1 on the kernel command line:
	// fault injection for VM tests, never on a production box.
	TestHooks bool
}

// TestHooksParam on the kernel command line enables the test hooks.
const TestHooksParam = "secwire.testhooks=1"

// Run boots the appliance and runs the console until ctx ends. Failures of
// single steps are reported on the console and the appliance stays
// manageable; it never drops to an unauthenticated shell.
func Run(ctx context.Context, console io.ReadWriter, opt Options) error {
	if opt.PortWait == 0 {
		opt.PortWait = 15 * time.Second
	}
	start := time.Now()
	out := console
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))

	say("secwire: booting")
	board, err := drivers.LoadBoard(BoardFile)
	if err != nil {
		say("secwire: ERROR: board definition: %v", err)
		board = &drivers.Board{Name: "unknown"}
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	if ix, err := drivers.OpenModuleIndex(filepath.Join("/lib/modules", release)); err != nil {
		say("secwire: ERROR: %v", err)
	} else {
		ld := drivers.NewLoader(ix)
		for _, m := range board.Modules {
			if err := ld.Load(m); err != nil {
				say("secwire: ERROR: board %s module: %v", board.Name, err)
			}
		}
		if err := ld.Coldplug("/sys"); err != nil {
			log.Warn("coldplug", "err", err)
		}
	}
	// The clock starts from the RTC; NTP corrects it once the management
	// plane is up (firmware/timesync).
	if t, err := timesync.SetFromRTC(timesync.DeviceRTC{Path: RTCDevice}, timesync.System{}, time.Now()); err != nil {
		say("secwire: WARNING: %v", err)
	} else {
		say("secwire: clock set from the RTC: %s", t.UTC().Format(time.RFC3339))
	}
	mon := &health.Monitor{}
	if w := board.Watchdog; w != nil {
		if dev, err := watchdog.OpenHardware(w.Device, time.Duration(w.TimeoutS)*time.Second); err != nil {
			say("secwire: ERROR: watchdog: %v", err)
		} else {
			// Fed while every check passes: the boot steps have none, the
			// links and management plane add theirs once they run.
			go watchdog.Feed(ctx, dev, mon, time.Second, log)
			say("secwire: watchdog %s armed (%s), fed while the links, MKA and management make progress", w.Device, dev.Timeout)
		}
	}
	testHooks := false
	if b, err := os.ReadFile("/proc/cmdline"); err == nil && slices.Contains(strings.Fields(string(b)), TestHooksParam) {
		testHooks = true
		say("secwire: WARNING: test hooks enabled (%s): fault injection is reachable from the CLI", TestHooksParam)
	}
	if err := mountConfig(opt.PortWait); err != nil {
		say("secwire: WARNING: config partition: %v; configuration will not survive a reboot", err)
		_ = os.MkdirAll(ConfigMount, 0o700)
	}

	// Interfaces made from now on (the kernel datapath's macsec link and
	// bridge) start without IPv6, and so do the data ports: the box's
	// own stack must never send a frame (neighbour discovery, MLD) on
	// the line port, where it would leave in clear.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0o644)
	ports, missing := waitPorts(board, opt.PortWait)
	for _, p := range ports {
		if p.Role == "plaintext" || p.Role == "line" {
			if err := ifquiet.Quiet(p.Name); err != nil {
				say("secwire: ERROR: %v", err)
				continue // left down: better no link than a chatty line port
			}
		}
		if p.Role != "" {
			_ = setUp(p.Name)
		}
	}
	say("secwire: board %s, %d ports:", board.Name, len(ports))
	for _, p := range ports {
		say("  %s", p)
	}
	for _, m := range missing {
		say("secwire: ERROR: %s (check the board file and the NIC); the appliance stays manageable", m)
	}
	mgmtPort := ""
	for _, p := range ports {
		if p.Role == "management" {
			mgmtPort = p.Name
		}
	}
	say("secwire: boot took %v", time.Since(start).Round(time.Millisecond))
	if opt.Manage == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return opt.Manage(ctx, console, Booted{Board: board, MgmtPort: mgmtPort, Start: start, Health: mon, TestHooks: testHooks})
}

// waitPorts polls the inventory until every board port is found or the
// wait is over.
func waitPorts(board *drivers.Board, wait time.Duration) ([]drivers.Port, []string) {
	deadline := time.Now().Add(wait)
	for {
		inv, _ := drivers.Inventory("/sys")
		ports, missing := board.Assign(inv)
		if len(missing) == 0 || time.Now().After(deadline) {
			return ports, missing
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// setUp brings an interface administratively up so that link is visible.
func setUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// mountConfig finds the partition named secwire-config and mounts it.
func mountConfig(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		dev := findPartition(ConfigPartName)
		if dev != "" {
			if err := os.MkdirAll(ConfigMount, 0o700); err != nil {
				return err
			}
			if err := unix.Mount(dev, ConfigMount, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=077,flush"); err != nil {
				return fmt.Errorf("mount %s on %s: %w", dev, ConfigMount, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no partition named %q found", ConfigPartName)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func findPartition(name string) string {
	ue, _ := filepath.Glob("/sys/class/block/*/uevent")
	for _, p := range ue {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var dev string
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				dev = "/dev/" + v
			}
			if l == "PARTNAME="+name {
				found = true
			}
		}
		if found && dev != "" {
			return dev
		}
	}
	return ""
}
