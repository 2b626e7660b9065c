// Package qemu boots secwire images in QEMU: the `make qemu` launcher and
// the harness every VM test uses (build once, boot appliances and peers
// wired by socket netdevs, drive the serial console, tear down).
package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OVMF firmware from Debian's ovmf package.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Boot selects how the VM starts.
type Boot string

const (
	// BootKernel is QEMU direct kernel boot of vmlinuz and initramfs.cpio;
	// disk.img is still attached for its config partition.
	BootKernel Boot = "kernel"
	// BootUEFI boots disk.img under OVMF, as a real box boots the flashed disk.
	BootUEFI Boot = "uefi"
)

// Spec describes one appliance VM.
type Spec struct {
	ImageDir string // vmlinuz, initramfs.cpio
	// Kernel and Initramfs override ImageDir's files for BootKernel.
	Kernel, Initramfs string
	// NoPorts leaves out the appliance's two ports and watchdog: a test
	// or peer VM that brings its own devices in Extra.
	NoPorts bool
	Disk    string // disk image to attach (a private copy for tests)
	Boot    Boot
	// Plain and Line are QEMU -netdev specs without the id (any netdev
	// type: dgram, socket, user, tap ...).
	Plain, Line string
	// Mgmt is the management port's -netdev spec; "" is QEMU user
	// networking restricted to the host (add hostfwd for SSH).
	Mgmt string
	NIC  string // NIC model: virtio-net-pci (default) or e1000e
	// MACPrefix, five octets such as 52:54:00:0a:00, gives the ports the
	// MACs prefix:00, :01, :02; "" leaves QEMU's defaults, which are the
	// same in every VM (two appliances on one wire need their own).
	MACPrefix string
	MemoryMB  int
	Cmdline   string // kernel command line for BootKernel; "" reads ImageDir/cmdline
	VarsFile  string // writable OVMF variable store for BootUEFI
	// Accel is the QEMU accelerator. "" means $SECWIRE_QEMU_ACCEL, else
	// tcg: on the build machines /dev/kvm exists but QEMU aborts at vCPU
	// start, and -accel kvm -accel tcg does not fall back from that.
	Accel string
	// TPMSocket is the control socket of a running swtpm (StartSWTPM):
	// the VM gets a TPM 2.0 (tpm-tis) backed by it.
	TPMSocket string
	// SerialArgs overrides how the serial console is wired; the default is
	// the process's stdio with the QEMU monitor muxed in (Ctrl-A X quits).
	SerialArgs []string
	Extra      []string
}

// UDPLink returns the two ends of a point-to-point link between two VMs
// over UDP datagrams on loopback: no root, no TAP.
func UDPLink(portA, portB int) (a, b string) {
	f := "dgram,local.type=inet,local.host=127.0.0.1,local.port=%d,remote.type=inet,remote.host=127.0.0.1,remote.port=%d"
	return fmt.Sprintf(f, portA, portB), fmt.Sprintf(f, portB, portA)
}

// Args builds the qemu-system-x86_64 command line.
func (s Spec) Args() ([]string, error) {
	nic := s.NIC
	if nic == "" {
		nic = "virtio-net-pci"
	}
	mem := s.MemoryMB
	if mem == 0 {
		mem = 1024
	}
	accel := s.Accel
	if accel == "" {
		accel = os.Getenv("SECWIRE_QEMU_ACCEL")
	}
	if accel == "" {
		accel = "tcg"
	}
	args := append([]string{"-machine", "q35", "-cpu", "max", "-m", fmt.Sprint(mem), "-smp", "1",
		"-display", "none", "-vga", "none", "-nodefaults"}, "-accel", accel)
	if s.SerialArgs != nil {
		args = append(args, s.SerialArgs...)
	} else {
		args = append(args, "-serial", "mon:stdio")
	}
	switch s.Boot {
	case BootKernel, "":
		cmdline := s.Cmdline
		if cmdline == "" {
			b, err := os.ReadFile(filepath.Join(s.ImageDir, "cmdline"))
			if err != nil {
				return nil, fmt.Errorf("kernel command line: %w (run make image)", err)
			}
			cmdline = strings.TrimSpace(string(b))
		}
		kernel, initrd := s.Kernel, s.Initramfs
		if kernel == "" {
			kernel = filepath.Join(s.ImageDir, "vmlinuz")
		}
		if initrd == "" {
			initrd = filepath.Join(s.ImageDir, "initramfs.cpio")
		}
		args = append(args, "-kernel", kernel, "-initrd", initrd, "-append", cmdline)
	case BootUEFI:
		if _, err := os.Stat(OVMFCode); err != nil {
			return nil, fmt.Errorf("%s missing: install Debian's ovmf package", OVMFCode)
		}
		if s.VarsFile == "" || s.Disk == "" {
			return nil, fmt.Errorf("UEFI boot needs a disk and a writable OVMF vars file")
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+s.VarsFile)
	default:
		return nil, fmt.Errorf("unknown boot mode %q: want kernel or uefi", s.Boot)
	}
	if s.Disk != "" {
		args = append(args, "-drive", "file="+s.Disk+",format=raw,if=virtio")
	}
	if s.TPMSocket != "" {
		args = append(args, "-chardev", "socket,id=chrtpm,path="+s.TPMSocket,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0")
	}
	if s.NoPorts {
		return append(args, s.Extra...), nil
	}
	mgmt := s.Mgmt
	if mgmt == "" {
		mgmt = "user,restrict=on"
	}
	for i, p := range []struct{ id, netdev string }{{"plain", s.Plain}, {"line", s.Line}, {"mgmt", mgmt}} {
		if p.netdev == "" {
			return nil, fmt.Errorf("no -netdev for the %s port", p.id)
		}
		nd := p.netdev
		if !strings.Contains(nd, "id=") {
			typ, rest, _ := strings.Cut(nd, ",")
			nd = typ + ",id=" + p.id
			if rest != "" {
				nd += "," + rest
			}
		}
		dev := nic + ",netdev=" + p.id
		if s.MACPrefix != "" {
			dev += fmt.Sprintf(",mac=%s:%02x", s.MACPrefix, i)
		}
		args = append(args, "-netdev", nd, "-device", dev)
	}
	args = append(args, "-device", "i6300esb")
	return append(args, s.Extra...), nil
}
