// Command secwire-qemu boots a secwire image in QEMU with the serial console
// on this terminal: what `make qemu` runs.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/secwire/secwire/image"
	"github.com/secwire/secwire/qemu"
)

func main() {
	dir := flag.String("dir", "build/qemu", "image directory (vmlinuz, initramfs.cpio, disk.img)")
	boot := flag.String("boot", "uefi", "uefi (disk.img under OVMF) or kernel (direct kernel boot)")
	plain := flag.String("plain", "", "QEMU -netdev spec of the plaintext port (default: UDP 127.0.0.1:10001 <-> :10002)")
	line := flag.String("line", "", "QEMU -netdev spec of the line port (default: UDP 127.0.0.1:10003 <-> :10004)")
	mgmt := flag.String("mgmt", "user,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22", "QEMU -netdev spec of the management port (default: SSH on 127.0.0.1:2222 reaches the appliance at 10.0.2.15)")
	nic := flag.String("nic", "virtio-net-pci", "NIC model: virtio-net-pci or e1000e")
	config := flag.String("config", "", "config file to place on the config partition before boot")
	flag.Parse()
	if *plain == "" {
		*plain, _ = qemu.UDPLink(10001, 10002)
	}
	if *line == "" {
		*line, _ = qemu.UDPLink(10003, 10004)
	}
	if err := run(*dir, qemu.Boot(*boot), *plain, *line, *mgmt, *nic, *config); err != nil {
		fmt.Fprintf(os.Stderr, "secwire-qemu: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, boot qemu.Boot, plain, line, mgmt, nic, config string) error {
	disk := filepath.Join(dir, "disk.img")
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
	// The UEFI variable store is writable; keep one per image directory.
	vars, err := qemu.PrivateCopy(qemu.OVMFVars, dir)
	if err != nil && boot == qemu.BootUEFI {
		return fmt.Errorf("OVMF vars (Debian package ovmf): %w", err)
	}
	var args []string
	s := qemu.Spec{ImageDir: dir, Disk: disk, Boot: boot, Plain: plain, Line: line, Mgmt: mgmt, NIC: nic, VarsFile: vars}
	args, err = s.Args()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "secwire-qemu: booting (%s boot, %s NICs); serial console below, Ctrl-A X quits\n", boot, nic)
	fmt.Fprintf(os.Stderr, "secwire-qemu: management port: %s\n", mgmt)
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
