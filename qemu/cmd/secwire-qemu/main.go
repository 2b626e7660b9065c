// Command secwire-qemu boots a secwire image in QEMU with the serial console
// on this terminal: what `make qemu` runs.
//
// The image directory (make image) holds the freshly built artefacts and
// is never booted itself. Each VM has its own directory beside them
// (build/qemu/vm-a, vm-b) with its own disk.img and UEFI variables. When
// that disk exists, a new build rewrites only its boot partition, as a
// firmware update does on a real box: users, links, CAKs and the SSH host
// key on the config partition are kept. -fresh starts from a blank disk.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/secwire/secwire/image"
	"github.com/secwire/secwire/qemu"
)

func main() {
	dir := flag.String("dir", "build/qemu", "image directory (vmlinuz, initramfs.cpio, cmdline, disk.img from make image)")
	vm := flag.String("vm", "a", "which VM: a, or b for a second appliance whose line port is wired to a's")
	fresh := flag.Bool("fresh", false, "start from a blank disk (first-boot setup again); default: keep the VM's config partition")
	boot := flag.String("boot", "uefi", "uefi (disk.img under OVMF) or kernel (direct kernel boot)")
	plain := flag.String("plain", "", "QEMU -netdev spec of the plaintext port (default: see -vm)")
	line := flag.String("line", "", "QEMU -netdev spec of the line port (default: see -vm)")
	mgmt := flag.String("mgmt", "", "QEMU -netdev spec of the management port (default: SSH on 127.0.0.1:2222 (a) or :2223 (b) reaches the appliance at 10.0.2.15)")
	nic := flag.String("nic", "virtio-net-pci", "NIC model: virtio-net-pci or e1000e")
	config := flag.String("config", "", "config file to place on the config partition before boot")
	flag.Parse()
	w, err := wiring(*vm)
	if err != nil {
		fmt.Fprintf(os.Stderr, "secwire-qemu: %v\n", err)
		os.Exit(2)
	}
	for _, o := range []struct{ set, def *string }{{plain, &w.plain}, {line, &w.line}, {mgmt, &w.mgmt}} {
		if *o.set != "" {
			*o.def = *o.set
		}
	}
	if err := run(*dir, *vm, *fresh, qemu.Boot(*boot), w, *nic, *config); err != nil {
		fmt.Fprintf(os.Stderr, "secwire-qemu: %v\n", err)
		os.Exit(1)
	}
}

// vmWiring is how one VM's ports reach the host.
type vmWiring struct {
	plain, line, mgmt string
	macPrefix         string
}

// wiring gives VM a and VM b ports that fit together: their line ports
// are the two ends of one wire (a's 10003->10004 is b's 10004->10003),
// each plaintext port has its own pair for a host to attach to, and each
// VM its own SSH port and MAC addresses (two SCIs on one wire must differ).
func wiring(vm string) (vmWiring, error) {
	switch vm {
	case "a":
		plain, _ := qemu.UDPLink(10001, 10002)
		line, _ := qemu.UDPLink(10003, 10004)
		return vmWiring{plain: plain, line: line, mgmt: sshForward(2222), macPrefix: "52:54:00:5e:0a"}, nil
	case "b":
		plain, _ := qemu.UDPLink(10005, 10006)
		_, line := qemu.UDPLink(10003, 10004)
		return vmWiring{plain: plain, line: line, mgmt: sshForward(2223), macPrefix: "52:54:00:5e:0b"}, nil
	}
	return vmWiring{}, fmt.Errorf("-vm %q: want a or b (b is a second appliance on the other end of a's line)", vm)
}

func sshForward(port int) string {
	return fmt.Sprintf("user,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", port)
}

func run(dir, vm string, fresh bool, boot qemu.Boot, w vmWiring, nic, config string) error {
	vmDir := filepath.Join(dir, "vm-"+vm)
	disk, note, err := prepareDisk(dir, vmDir, fresh)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "secwire-qemu: VM %s in %s: %s\n", vm, vmDir, note)
	if config != "" {
		b, err := os.ReadFile(config)
		if err != nil {
			return err
		}
		if err := image.WriteConfig(disk, b); err != nil {
			return fmt.Errorf("preload config: %w", err)
		}
		fmt.Fprintf(os.Stderr, "secwire-qemu: %s placed on the config partition\n", config)
	}
	var vars string
	if boot == qemu.BootUEFI {
		// The UEFI variable store is writable: one per VM, kept with its disk.
		vars = filepath.Join(vmDir, filepath.Base(qemu.OVMFVars))
		if _, err := os.Stat(vars); err != nil {
			if vars, err = qemu.PrivateCopy(qemu.OVMFVars, vmDir); err != nil {
				return fmt.Errorf("OVMF vars (Debian package ovmf): %w", err)
			}
		}
	}
	s := qemu.Spec{ImageDir: dir, Disk: disk, Boot: boot, Plain: w.plain, Line: w.line, Mgmt: w.mgmt,
		NIC: nic, VarsFile: vars, MACPrefix: w.macPrefix}
	args, err := s.Args()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "secwire-qemu: booting (%s boot, %s NICs); serial console below, Ctrl-A X quits\n", boot, nic)
	fmt.Fprintf(os.Stderr, "secwire-qemu: plaintext port: %s\nsecwire-qemu: line port: %s\nsecwire-qemu: management port: %s\n", w.plain, w.line, w.mgmt)
	cmd := exec.Command("qemu-system-x86_64", args...)
	var lock lockWatch
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, io.MultiWriter(os.Stderr, &lock)
	err = cmd.Run()
	if err != nil && lock.seen() {
		return fmt.Errorf("VM %s is already running (its disk %s is in use); quit it, or start a second appliance with make qemu VM=b", vm, disk)
	}
	return err
}

// prepareDisk gives the VM its disk: a copy of the built disk.img the
// first time (or with fresh), else the VM's own disk with its boot
// partition rewritten when the build changed (the new build in slot A,
// slot B empty: a re-flash, not an A/B update). It says what it did.
func prepareDisk(imageDir, vmDir string, fresh bool) (disk, note string, err error) {
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return "", "", err
	}
	disk = filepath.Join(vmDir, "disk.img")
	stampFile := filepath.Join(vmDir, "boot.sha256")
	stamp, err := bootStamp(imageDir)
	if err != nil {
		return "", "", fmt.Errorf("%w (run make image)", err)
	}
	_, statErr := os.Stat(disk)
	switch {
	case fresh || errors.Is(statErr, os.ErrNotExist):
		os.Remove(filepath.Join(vmDir, filepath.Base(qemu.OVMFVars)))
		if _, err := qemu.PrivateCopy(filepath.Join(imageDir, "disk.img"), vmDir); err != nil {
			return "", "", fmt.Errorf("copy the built disk.img: %w (run make image)", err)
		}
		note = "blank disk: the console runs the first-boot setup"
		if fresh {
			note = "FRESH: blank disk, the previous configuration is gone; the console runs the first-boot setup"
		}
	case statErr != nil:
		return "", "", statErr
	default:
		if old, _ := os.ReadFile(stampFile); string(old) == stamp {
			return disk, "firmware up to date; configuration kept (make qemu FRESH=1 starts blank)", nil
		}
		if err := image.UpdateBoot(image.DiskSpec{Out: disk, Bundle: filepath.Join(imageDir, image.BundleName)}); err != nil {
			return "", "", fmt.Errorf("firmware update of %s: %w", disk, err)
		}
		note = "firmware updated (boot partition rewritten); users, links, keys and the SSH host key kept (make qemu FRESH=1 starts blank)"
	}
	return disk, note, os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// bootStamp identifies a build's boot partition content.
func bootStamp(imageDir string) (string, error) {
	h := sha256.New()
	for _, f := range []string{image.BundleName} {
		b, err := os.ReadFile(filepath.Join(imageDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)) + "\n", nil
}

// lockWatch notices QEMU refusing a disk another QEMU holds.
type lockWatch struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 64<<10 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *lockWatch) seen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Contains(l.buf.Bytes(), []byte(`Failed to get "write" lock`))
}
