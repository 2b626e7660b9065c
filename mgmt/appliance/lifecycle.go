package appliance

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/secwire/secwire/firmware/boot"
	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/slots"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/firmware/tpmkey"
)

// The software lifecycle on the box (firmware/slots): the boot slots on
// the EFI system partition, the release keys, the health check that
// keeps a trial boot or rolls it back.
const (
	ImageTrustFile   = "/etc/secwire/release-keys.json"
	ConsoleTrustFile = boot.ConfigMount + "/release-keys.json"
	SoftwareHistory  = StateDir + "/software.json"
	// DefaultHealthTimeout is how long a trial boot has to become
	// healthy before it reboots (and so uses up one of its tries); the
	// kernel command line's secwire.health_timeout= overrides it.
	DefaultHealthTimeout = 300 * time.Second
)

// newSoftware finds the boot slots and the running slot.
func newSoftware(board, version string, log *slog.Logger) *slots.Manager {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	sw := &slots.Manager{Board: board, Version: version, Log: log,
		Running: slots.RunningSlot(string(cmdline)), History: &slots.History{Path: SoftwareHistory}}
	if _, writable, err := boot.MountBootPartition(5 * time.Second); err != nil {
		log.Warn("boot partition: updates are not possible", "err", err)
	} else {
		sw.ESP = &slots.ESP{Dir: boot.BootMount, Writable: writable, Trust: loadTrust(log)}
	}
	return sw
}

// loadTrust is the release keys built into the image and those added on
// the serial console.
func loadTrust(log *slog.Logger) bundle.Trust {
	t, err := bundle.LoadTrust(ImageTrustFile, "built into the image")
	if err != nil {
		log.Error("release keys: the image has none; no update will be accepted", "err", err)
	}
	if c, err := bundle.LoadTrust(ConsoleTrustFile, "added on the console"); err == nil {
		t = append(t, c...)
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Error("release keys added on the console", "err", err)
	}
	return t
}

// trustKey adds a release key given on the serial console.
func trustKey(sw *slots.Manager, name, b64 string) (string, error) {
	if sw.ESP == nil {
		return "", errors.New("no boot partition: updates are not possible on this box")
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", errors.New("not base64: give the base64 of the key's DER (the PEM PUBLIC KEY's body on one line)")
	}
	pub, err := bundle.ParsePublicKey(der)
	if err != nil {
		return "", err
	}
	added, _ := bundle.LoadTrust(ConsoleTrustFile, "added on the console")
	k := bundle.Key{Name: name, ID: bundle.KeyID(pub), Public: pub, Source: "added on the console"}
	if _, dup := sw.ESP.Trust.ByID(k.ID); dup {
		return k.ID, nil
	}
	if err := store.WriteAtomic(ConsoleTrustFile, bundle.MarshalTrust(append(added, k)), 0o600); err != nil {
		return "", err
	}
	sw.ESP.Trust = append(sw.ESP.Trust, k)
	return k.ID, nil
}

// openConfigFile opens a file on the config partition by name.
func openConfigFile(name string) (io.ReadCloser, error) {
	p := filepath.Join(boot.ConfigMount, filepath.Clean("/"+name))
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("no file %s on the config partition", strings.TrimPrefix(p, boot.ConfigMount+"/"))
	}
	return f, nil
}

// healthTimeout is secwire.health_timeout= from the kernel command line.
func healthTimeout() time.Duration {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "secwire.health_timeout="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return DefaultHealthTimeout
}

// bootHealth says what keeps the box from being healthy: the config loaded,
// every configured link started on its backend, the management plane
// answering. Nothing missing is healthy.
type bootHealth struct {
	m      *commit.Manager
	cfgErr error
}

func (h *bootHealth) missing() []string {
	var out []string
	if h.cfgErr != nil {
		out = append(out, "config not loaded: "+h.cfgErr.Error())
	}
	running := h.m.Running()
	started := map[string]bool{}
	for _, l := range h.m.RawStatus().Links {
		if l.Backend != "" {
			started[l.Name] = true
		}
	}
	for _, l := range running.Links {
		if !started[l.Name] {
			out = append(out, "link "+l.Name+" not started on its datapath")
		}
	}
	if mg := running.System.Management; mg != nil {
		addr := net.JoinHostPort(mg.Address.Addr().String(), strconv.Itoa(running.System.SSHPort()))
		if err := sshAnswers(addr); err != nil {
			out = append(out, "management plane (SSH on "+addr+") does not answer: "+err.Error())
		}
	}
	return out
}

// sshAnswers checks that an SSH server greets on addr.
func sshAnswers(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("SSH-2.0-secwire-health-check\r\n"))
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 8)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "SSH-2.0-") {
		return fmt.Errorf("greets with %q, not SSH", buf[:n])
	}
	return nil
}

// watchHealth waits for the box to become healthy and then marks the
// running slot good. A trial boot that is not healthy within timeout is
// recorded and rebooted: it uses up one try, and when none are left
// systemd-boot boots the other slot.
func watchHealth(ctx context.Context, sw *slots.Manager, h *bootHealth, booted time.Time, timeout time.Duration,
	say func(string, ...any), log *slog.Logger, reboot func() error) {
	trial := sw.Trial()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		missing := h.missing()
		if len(missing) == 0 {
			after := time.Since(booted)
			blessed, err := sw.MarkGood(after)
			switch {
			case err != nil:
				log.Error("software: cannot mark the trial slot good; it will use up its tries", "err", err)
				say("secwire: ERROR: healthy, but slot %s cannot be marked good: %v", slots.Label(sw.Running), err)
			case blessed:
				log.Warn("software: trial boot healthy, slot marked good", "slot", slots.Label(sw.Running), "version", sw.Version, "after", after.Round(time.Second))
				say("secwire: healthy %.0f s after boot: the trial of slot %s (secwire %s) passed; slot %s is marked good", after.Seconds(), slots.Label(sw.Running), sw.Version, slots.Label(sw.Running))
			default:
				log.Info("healthy", "after", after.Round(time.Second))
			}
			return
		}
		if time.Since(booted) > timeout {
			reason := fmt.Sprintf("not healthy %.0f s after boot: %s", timeout.Seconds(), strings.Join(missing, "; "))
			sw.Unhealthy(reason)
			if !trial {
				log.Error("software: "+reason, "slot", slots.Label(sw.Running))
				say("secwire: ERROR: %s", reason)
				return
			}
			log.Error("software: trial boot failed; rebooting (the slot uses up a try)", "slot", slots.Label(sw.Running), "reason", reason)
			say("secwire: ERROR: trial boot of slot %s (secwire %s) %s; rebooting", slots.Label(sw.Running), sw.Version, reason)
			if err := reboot(); err != nil {
				log.Error("reboot", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bootLine is show system's line about the boot slots.
func bootLine(sw *slots.Manager) string {
	if sw.Running == "" {
		return "direct kernel boot (no boot slot)"
	}
	s := "slot " + slots.Label(sw.Running)
	if sw.Trial() {
		s += " (trial)"
	}
	if st, err := sw.Status(); err == nil && st.Next != "" && st.Next != sw.Running {
		s += ", next boot slot " + slots.Label(st.Next)
	}
	return s + " ('show system software')"
}

// sealKeyWithTPM is commit.Options.SealKey on a box with a TPM 2.0.
func sealKeyWithTPM(keyPath string) (string, error) {
	t, err := tpmkey.Open()
	if err != nil {
		return "", err
	}
	defer t.Close()
	return config.SealKeyInTPM(keyPath, t)
}

// deviceKeyLine is show system's line about the key that seals CAKs.
func deviceKeyLine() string {
	if tpmkey.Present() {
		return "Device key: sealed by the TPM 2.0 (" + config.SealKeyTPMName + "): a copy of the config partition opens no CAK on another box"
	}
	return "Device key: " + config.SealKeyName + " in clear on the config partition (no TPM 2.0 in this box): whoever holds the partition can open its CAKs"
}

// clearTPM clears the TPM at zeroize: no copy of the sealed device key
// opens again.
func clearTPM() error {
	if !tpmkey.Present() {
		return nil
	}
	t, err := tpmkey.Open()
	if err != nil {
		return err
	}
	defer t.Close()
	return t.Clear()
}

// runningSlotLabel is the boot slot for the metrics' software info: A,
// B, or "none" after a direct kernel boot.
func runningSlotLabel() string {
	b, _ := os.ReadFile("/proc/cmdline")
	if s := slots.RunningSlot(string(b)); s != "" {
		return slots.Label(s)
	}
	return "none"
}
