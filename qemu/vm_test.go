package qemu

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// These tests boot the real image (Debian kernel, u-root, secwire uinit) in
// QEMU under software emulation.

const promptWait = 4 * time.Minute // generous: TCG on a loaded 2-core CI machine

func needQEMU(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 missing: `make test` installs it (Debian package qemu-system-x86)")
	}
	dir, err := Image()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// boot starts one appliance on a private copy of disk.img.
func boot(t testing.TB, mode Boot, nic string, port int) (*VM, string) {
	t.Helper()
	dir := needQEMU(t)
	tmp := t.TempDir()
	disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), tmp)
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{ImageDir: dir, Disk: disk, Boot: mode, NIC: nic}
	s.Plain, _ = UDPLink(port, port+1)
	s.Line, _ = UDPLink(port+2, port+3)
	if mode == BootUEFI {
		if s.VarsFile, err = PrivateCopy(OVMFVars, tmp); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	logf, _ := os.Create(filepath.Join(tmp, "console.log"))
	vm, err := Start(ctx, t.Name(), s, logf)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop(); cancel(); logf.Close() })
	return vm, disk
}

// consoleReady is the console asking for input: the first-boot setup on
// a box with no administrator, else the login prompt.
var consoleReady = regexp.MustCompile(`Administrator name \[admin\]: |login: `)

func expectInventory(t *testing.T, vm *VM, driver string) {
	t.Helper()
	for _, role := range []string{"plaintext", "line", "management"} {
		re := regexp.MustCompile(role + ` +eth[012] +driver=` + driver + ` pci=0000:00:0[0-9a-f]\.0 mac=52:54:00`)
		if _, err := vm.Expect(re, promptWait); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := vm.Expect(consoleReady, promptWait); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(vm.Output(), "ERROR") {
		t.Fatalf("boot reported errors:\n%s", vm.Output())
	}
}

func TestBootDirectKernelVirtio(t *testing.T) {
	vm, _ := boot(t, BootKernel, "virtio-net-pci", 21000)
	expectInventory(t, vm, "virtio_net")
	if !strings.Contains(vm.Output(), "watchdog /dev/watchdog armed") {
		t.Fatal("watchdog not armed")
	}
}

func TestBootUEFIDisk(t *testing.T) {
	vm, _ := boot(t, BootUEFI, "virtio-net-pci", 21010)
	expectInventory(t, vm, "virtio_net")
}

func TestBootE1000e(t *testing.T) {
	vm, _ := boot(t, BootKernel, "e1000e", 21020)
	expectInventory(t, vm, "e1000e")
}

// BenchmarkBoot measures QEMU start to the management prompt (direct kernel
// boot, software emulation) and reports the median.
func BenchmarkBoot(b *testing.B) {
	var d []float64
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		vm, _ := boot(b, BootKernel, "virtio-net-pci", 21100+4*(i%20))
		if _, err := vm.Expect(consoleReady, promptWait); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start).Seconds())
		vm.Stop()
	}
	sort.Float64s(d)
	b.ReportMetric(d[len(d)/2], "median-s-to-prompt")
}
