package qemu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/image"
	"github.com/secwire/secwire/internal/modroot"
)

// box is one appliance VM that is stopped and started again on the same
// disk, UEFI variables and (optionally) TPM state, as a box is power
// cycled: booted under OVMF from its disk, as in the field.
type box struct {
	name        string
	disk, vars  string
	tpmDir      string // "" without a TPM
	boot        Boot
	base        int
	sshPort     int
	plain, line *udpPort
	vm          *VM
	log         *os.File
}

func newBox(t *testing.T, name string, base int, disk string, boot Boot, tpmDir string) *box {
	t.Helper()
	b := &box{name: name, disk: disk, boot: boot, base: base, sshPort: base + 4, tpmDir: tpmDir}
	var err error
	if boot == BootUEFI {
		if b.vars, err = PrivateCopy(OVMFVars, filepath.Dir(disk)); err != nil {
			t.Fatal(err)
		}
	}
	b.plain = listenUDP(t, base+1, base)
	b.line = listenUDP(t, base+3, base+2)
	if b.log, err = os.Create(filepath.Join(filepath.Dir(disk), "console.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.stop(); b.log.Close() })
	return b
}

// start powers the box on.
func (b *box) start(t *testing.T) {
	t.Helper()
	dir := needQEMU(t)
	s := Spec{ImageDir: dir, Disk: b.disk, Boot: b.boot, VarsFile: b.vars, MACPrefix: fmt.Sprintf("52:54:00:%02x:00", b.base%256)}
	s.Plain, _ = UDPLink(b.base, b.base+1)
	s.Line, _ = UDPLink(b.base+2, b.base+3)
	s.Mgmt = fmt.Sprintf("user,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", b.sshPort)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	if b.tpmDir != "" {
		tpm, err := StartSWTPM(ctx, b.tpmDir, b.log)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		s.TPMSocket = tpm.Socket
	}
	fmt.Fprintf(b.log, "\n===== power on %s =====\n", time.Now().Format(time.TimeOnly))
	vm, err := Start(ctx, b.name, s, b.log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { <-vm.done; cancel() }()
	b.vm = vm
}

// stop pulls the plug.
func (b *box) stop() {
	if b.vm != nil {
		b.vm.Stop()
		b.vm = nil
	}
}

func (b *box) expect(t *testing.T, re string, within time.Duration) string {
	t.Helper()
	m, err := b.vm.Expect(regexp.MustCompile(re), within)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (b *box) dial(t *testing.T) *ssh.Client {
	t.Helper()
	return dialSSH(t, b.vm, b.sshPort, ssh.InsecureIgnoreHostKey())
}

// runIn runs a command over SSH with data on its standard input.
func runIn(t *testing.T, c *ssh.Client, cmd string, in []byte) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Stdin = bytes.NewReader(in)
	out, _ := s.CombinedOutput(cmd)
	return string(out)
}

// interactive runs one line in a terminal session and answers yes.
func interactiveYes(t *testing.T, c *ssh.Client, line string) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.RequestPty("vt100", 24, 80, ssh.TerminalModes{})
	in, _ := s.StdinPipe()
	s.Stdout = io.Discard
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, line+"\r")
	time.Sleep(2 * time.Second)
	io.WriteString(in, "yes\r")
}

// provisionedConfig is a box with an administrator, SSH on the management
// port and a static-key link (its datapath starts without a peer).
func provisionedConfig(t *testing.T) []byte {
	t.Helper()
	hash, err := config.HashPassword(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	sak := strings.Repeat("d1ce", 8)
	cfg := config.Config{
		System: config.System{Hostname: "lc", Users: []config.User{{Name: "admin", Role: "admin", Password: hash}},
			Management: &config.Management{Interface: "eth2", Address: netip.MustParsePrefix("10.0.2.15/24")}},
		Links: []config.Link{{Name: "l0", Plain: "eth0", Line: "eth1", Datapath: "software",
			Static: &config.StaticKeys{TX: config.SA{AN: 0, Key: sak},
				RX: []config.RxSC{{SCI: 0x525400aa00010001, SAs: []config.SA{{AN: 0, Key: sak}}}}}}},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return b
}

// buildRelease builds a bundle of this source tree at version: the
// firmware binary rebuilt (with build tags) and laid over the image's
// u-root initramfs, signed with the development key make image used.
func buildRelease(t *testing.T, version, tags, cmdlineExtra, signingKey string) []byte {
	t.Helper()
	root, err := modroot.Dir()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "secwire")
	build := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-X main.version="+version, "-o", bin, "./cmd/secwire")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", version, err, out)
	}
	out := filepath.Join(tmp, "secwire.bundle")
	args := []string{"run", "./image/cmd/mkimage", "-release", "-initramfs-from", filepath.Join(root, "build", "qemu", "initramfs.cpio"),
		"-secwire", bin, "-version", version, "-bundle", out}
	if cmdlineExtra != "" {
		args = append(args, "-cmdline-extra", cmdlineExtra)
	}
	if signingKey != "" {
		args = append(args, "-signing-key", signingKey)
	}
	mk := exec.Command("go", args...)
	mk.Dir = root
	if o, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkimage -release %s: %v\n%s", version, err, o)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bootPartitionHash is the SHA-256 of the disk's EFI system partition.
func bootPartitionHash(t *testing.T, disk string) [32]byte {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	table, err := d.GetPartitionTable()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := table.GetPartitions()[0]
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, p.GetStart(), p.GetSize())); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// frameClock sends a marked frame into the plaintext port every period
// and records when the protected frames leave the line port: the gaps
// show how long the datapath went without the CPU.
type frameClock struct {
	mu    sync.Mutex
	times []time.Time
	clear bool
	stop  chan struct{}
	once  sync.Once
	done  sync.WaitGroup
}

func startFrameClock(b *box, period time.Duration, limit time.Duration) *frameClock {
	fc := &frameClock{stop: make(chan struct{})}
	frame := append([]byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x88, 0xb5}, []byte("SECWIRE-CLOCK")...)
	frame = append(frame, make([]byte, 50)...)
	end := time.Now().Add(limit)
	fc.done.Add(2)
	go func() {
		defer fc.done.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for time.Now().Before(end) {
			b.plain.send(frame)
			select {
			case <-fc.stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer fc.done.Done()
		buf := make([]byte, 65536)
		for time.Now().Before(end) {
			b.line.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, _, err := b.line.c.ReadFromUDP(buf)
			select {
			case <-fc.stop:
				return
			default:
			}
			if err != nil || n < 14 {
				continue
			}
			fc.mu.Lock()
			if bytes.Contains(buf[:n], []byte("SECWIRE-CLOCK")) {
				fc.clear = true
			}
			if binary.BigEndian.Uint16(buf[12:]) == 0x88e5 {
				fc.times = append(fc.times, time.Now())
			}
			fc.mu.Unlock()
		}
	}()
	return fc
}

// maxGap stops the clock and returns the longest time without a
// protected frame between from and to, and the frame count.
func (fc *frameClock) maxGap(from, to time.Time) (time.Duration, int, bool) {
	fc.once.Do(func() { close(fc.stop) })
	fc.done.Wait()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var gap time.Duration
	n := 0
	prev := from
	for _, at := range fc.times {
		if at.Before(from) || at.After(to) {
			continue
		}
		n++
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev)), n, fc.clear
}

// The software lifecycle on one box booted under OVMF from its disk:
// refused bundles (bad signature, other board, truncated) write nothing;
// an update killed halfway leaves the box on its old slot, able to update
// again; v1 -> v2 over SSH and a reboot into v2 on trial, marked good
// once healthy, the link running and the config unchanged; v3 that never
// becomes healthy uses up its tries and the box comes back on v2 by
// itself, reporting the failed trial.
func TestSoftwareUpdateAndRollback(t *testing.T) {
	dir := needQEMU(t)
	root, _ := modroot.Dir()
	buildStart := time.Now()
	v2 := buildRelease(t, "999.2.0", "", "", "")
	v3 := buildRelease(t, "999.3.0", "secwire_never_healthy", "secwire.health_timeout=30", "")
	t.Logf("two release bundles built in %v; bundle size %.1f MB", time.Since(buildStart).Round(time.Second), float64(len(v2))/1e6)

	// The bad bundles: signed by a key the box does not trust, for
	// another board (signed by the trusted key), truncated.
	strangerKey := filepath.Join(t.TempDir(), "stranger.pem")
	if _, err := bundle.GenerateSigningKey(strangerKey); err != nil {
		t.Fatal(err)
	}
	devKey, err := bundle.LoadSigningKey(filepath.Join(root, image.DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var otherBoard bytes.Buffer
	if err := bundle.Write(&otherBoard, bundle.Manifest{Board: "nvidia-cx7-2port", Version: "999.2.0", Cmdline: "console=ttyS0"},
		[]bundle.NamedFile{{Name: bundle.Kernel, Data: []byte("k")}, {Name: bundle.Initramfs, Data: []byte("i")}}, devKey, "development key generated by make"); err != nil {
		t.Fatal(err)
	}
	var stranger bytes.Buffer
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	bundle.Write(&stranger, bundle.Manifest{Board: "qemu", Version: "999.2.0", Cmdline: "console=ttyS0"},
		[]bundle.NamedFile{{Name: bundle.Kernel, Data: []byte("k")}, {Name: bundle.Initramfs, Data: []byte("i")}}, sk, "someone")

	disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteConfig(disk, provisionedConfig(t)); err != nil {
		t.Fatal(err)
	}
	b := newBox(t, "LC", 24000, disk, BootUEFI, "")
	b.start(t)
	b.expect(t, "lc login: ", promptWait)
	c := b.dial(t)
	sw := run(t, c, "show system software")
	if !strings.Contains(sw, "slot A") || !strings.Contains(sw, "good, running") || !strings.Contains(sw, "B     -") {
		t.Fatalf("v1 show system software:\n%s", sw)
	}
	v1 := regexp.MustCompile(`Running: secwire (\S+), slot A`).FindStringSubmatch(sw)
	if v1 == nil {
		t.Fatalf("v1 show system software names no running version:\n%s", sw)
	}
	confBefore := run(t, c, "show configuration")
	if sys := run(t, c, "show system"); !strings.Contains(sys, "Device key: seal.key in clear on the config partition (no TPM 2.0 in this box)") ||
		!strings.Contains(sys, "Boot: slot A") {
		t.Errorf("show system on a box without a TPM:\n%s", sys)
	}

	// 1. Refused bundles; the boot partition is byte for byte the same.
	before := bootPartitionHash(t, disk)
	for _, bad := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"bad signature", stranger.Bytes(), "which this box does not trust"},
		{"other board", otherBoard.Bytes(), `bundle is for board "nvidia-cx7-2port", this box is board "qemu"`},
		{"truncated", v2[:2<<20], "bundle truncated: vmlinuz has"},
	} {
		out := runIn(t, c, "request system software add -", bad.raw)
		if !strings.Contains(out, bad.want) || !strings.Contains(out, "nothing was written") {
			t.Errorf("%s: want %q and 'nothing was written', got:\n%s", bad.name, bad.want, out)
		}
		t.Logf("%s refused: %s", bad.name, strings.TrimSpace(out[strings.LastIndex(out, "error:"):]))
	}
	if bootPartitionHash(t, disk) != before {
		t.Fatal("a refused bundle changed the boot partition")
	}

	// 2. Pull the plug halfway through writing slot B.
	s, _ := c.NewSession()
	s.Stdin = bytes.NewReader(v2)
	pr, pw := io.Pipe()
	s.Stdout, s.Stderr = pw, pw
	cutStart := time.Now()
	s.Start("request system software add -")
	go func() { s.Wait(); pw.Close() }()
	killed := make(chan string, 1)
	go func() {
		var seen bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			seen.Write(buf[:n])
			if n > 0 {
				t.Logf("%5.1fs: %s", time.Since(cutStart).Seconds(), strings.TrimSpace(string(buf[:n])))
			}
			// Halfway: the kernel is written, the initramfs partly.
			if regexp.MustCompile(`writing slot B: +[5-8][0-9]%`).Match(seen.Bytes()) {
				b.stop()
				killed <- seen.String()
				return
			}
			if err != nil {
				killed <- "the add ended without writing:\n" + seen.String()
				return
			}
		}
	}()
	var progress string
	select {
	case progress = <-killed:
	case <-time.After(20 * time.Minute):
		t.Fatal("the add never reached the write")
	}
	if !strings.Contains(progress, "writing slot B") {
		t.Fatal(progress)
	}
	pw.Close()
	c.Close()
	t.Logf("power cut during the write; progress seen:\n%s", progress)
	b.start(t)
	b.expect(t, "lc login: ", promptWait)
	c = b.dial(t)
	sw = run(t, c, "show system software")
	if !strings.Contains(sw, "good, running") || !regexp.MustCompile(`B +.*not bootable`).MatchString(sw) && !strings.Contains(sw, "B     -") {
		t.Fatalf("after the power cut the box is not on slot A with B unbootable:\n%s", sw)
	}
	t.Logf("after the power cut:\n%s", sw)

	// 3. v1 -> v2, with frames crossing the link meanwhile.
	fc := startFrameClock(b, 20*time.Millisecond, 10*time.Minute)
	time.Sleep(3 * time.Second)
	addStart := time.Now()
	out := runIn(t, c, "request system software add -", v2)
	addEnd := time.Now()
	time.Sleep(3 * time.Second)
	gap, frames, clearSeen := fc.maxGap(addStart.Add(-3*time.Second), addEnd)
	idleGap, _, _ := fc.maxGap(addStart.Add(-3*time.Second), addStart)
	if clearSeen {
		t.Fatal("a plaintext frame left the line port")
	}
	if !strings.Contains(out, "slot B armed for a trial boot") {
		t.Fatalf("add v2:\n%s", out)
	}
	t.Logf("software add of v2 over SSH took %v:\n%s", addEnd.Sub(addStart).Round(100*time.Millisecond), out)
	t.Logf("datapath during the add: %d protected frames, longest gap %v (before the add: %v)", frames, gap.Round(time.Millisecond), idleGap.Round(time.Millisecond))
	rebootAt := time.Now()
	interactiveYes(t, c, "request system reboot")
	c.Close()
	b.expect(t, `healthy \d+ s after boot: the trial of slot B \(secwire 999.2.0\) passed`, promptWait)
	t.Logf("reboot into v2 to healthy and marked good: %v", time.Since(rebootAt).Round(time.Second))
	c = b.dial(t)
	sw = run(t, c, "show system software")
	if !strings.Contains(sw, "Running: secwire 999.2.0, slot B") || !regexp.MustCompile(`B +999.2.0 .* good, running`).MatchString(sw) {
		t.Fatalf("v2 show system software:\n%s", sw)
	}
	if got := run(t, c, "show configuration"); got != confBefore {
		t.Fatalf("the configuration changed across the update:\nbefore:\n%s\nafter:\n%s", confBefore, got)
	}
	if mac := run(t, c, "show macsec"); !strings.Contains(mac, "l0") {
		t.Fatalf("the link does not run on v2:\n%s", mac)
	}
	fc = startFrameClock(b, 50*time.Millisecond, time.Minute)
	time.Sleep(3 * time.Second)
	if _, n, clr := fc.maxGap(time.Now().Add(-3*time.Second), time.Now()); n == 0 || clr {
		t.Fatalf("v2: %d protected frames on the line, plaintext seen %v", n, clr)
	}

	// request system software rollback: back to v1 on slot A, and from
	// there forward again to v2 on slot B, each a reboot.
	for _, to := range []struct{ slot, version string }{{"A", v1[1]}, {"B", "999.2.0"}} {
		out := run(t, c, "request system software rollback")
		if !strings.Contains(out, fmt.Sprintf("the next boot runs slot %s (secwire %s)", to.slot, to.version)) {
			t.Fatalf("rollback to slot %s:\n%s", to.slot, out)
		}
		interactiveYes(t, c, "request system reboot")
		c.Close()
		b.expect(t, "lc login: ", promptWait)
		c = b.dial(t)
		sw = run(t, c, "show system software")
		if !strings.Contains(sw, fmt.Sprintf("Running: secwire %s, slot %s", to.version, to.slot)) {
			t.Fatalf("after the rollback to slot %s:\n%s", to.slot, sw)
		}
		if got := run(t, c, "show configuration"); got != confBefore {
			t.Fatalf("the configuration changed across the rollback to slot %s:\n%s", to.slot, got)
		}
	}

	// 4. v3 never becomes healthy: after its 2 tries the box is back on v2.
	out = runIn(t, c, "request system software add - tries 2", v3)
	if !strings.Contains(out, "slot A armed for a trial boot: 2 tries") {
		t.Fatalf("add v3:\n%s", out)
	}
	rollStart := time.Now()
	interactiveYes(t, c, "request system reboot")
	c.Close()
	for i := 1; i <= 2; i++ {
		b.expect(t, `trial boot of slot A \(secwire 999.3.0\) not healthy 30 s after boot: .*management plane`, promptWait+time.Minute)
		t.Logf("v3 trial boot %d failed after %v", i, time.Since(rollStart).Round(time.Second))
	}
	b.expect(t, `WARNING: the trial of slot A \(secwire 999.3.0\) failed: 2 boots without becoming healthy`, promptWait)
	b.expect(t, "lc login: ", promptWait)
	t.Logf("time to roll back (reboot into v3 to v2 back at the login prompt): %v", time.Since(rollStart).Round(time.Second))
	c = b.dial(t)
	defer c.Close()
	sw = run(t, c, "show system software")
	t.Logf("after the failed trial:\n%s", sw)
	for _, want := range []string{"Running: secwire 999.2.0, slot B", "Last failed trial:", "the trial of slot A (secwire 999.3.0) failed: 2 boots without becoming healthy (last: not healthy 30 s after boot"} {
		if !strings.Contains(sw, want) {
			t.Errorf("show system software lacks %q", want)
		}
	}
	if !regexp.MustCompile(`A +999.3.0 .* failed`).MatchString(sw) {
		t.Error("slot A is not shown as failed")
	}
	if mac := run(t, c, "show macsec"); !strings.Contains(mac, "l0") {
		t.Fatalf("the link does not run after the rollback:\n%s", mac)
	}
	if out := run(t, c, "request system software rollback"); !strings.Contains(out, "there is no other good firmware to roll back to") {
		t.Errorf("rollback to the failed slot A:\n%s", out)
	}
	if log := run(t, c, "show log"); !strings.Contains(log, "trial of slot A (secwire 999.3.0) failed") {
		t.Errorf("the failed trial is not in the log:\n%s", log)
	}
	fc = startFrameClock(b, 50*time.Millisecond, time.Minute)
	time.Sleep(3 * time.Second)
	if _, n, clr := fc.maxGap(time.Now().Add(-3*time.Second), time.Now()); n == 0 || clr {
		t.Fatalf("after the rollback: %d protected frames, plaintext seen %v", n, clr)
	}
}
