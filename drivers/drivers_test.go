package drivers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClosureDependencyOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"modules.dep": "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz\n" +
			"kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n" +
			"kernel/net/core/failover.ko.xz:\n" +
			"kernel/drivers/net/macsec.ko.xz:\n" +
			"kernel/arch/x86/crypto/aesni-intel.ko.xz:\n",
		"modules.alias": "alias virtio:d00000001v* virtio_net\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n",
	})
	ix, err := OpenModuleIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Closure("virtio_net", "macsec", "aesni_intel", "failover")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"failover", "net_failover", "virtio_net", "macsec", "aesni_intel"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if _, err := ix.Closure("mlx5_core"); err == nil || !strings.Contains(err.Error(), "mlx5_core") {
		t.Fatalf("missing module: %v", err)
	}
	if m := ix.Match("virtio:d00000001v00001AF4"); !slices.Equal(m, []string{"virtio_net"}) {
		t.Fatalf("virtio match %v", m)
	}
	if m := ix.Match("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00"); len(m) != 0 {
		t.Fatalf("e1000e is not in this index but matched: %v", m)
	}
}

func fakeNIC(t *testing.T, sys, name, pci, drv, mac string) {
	t.Helper()
	dev := filepath.Join(sys, "devices", "pci0000:00", pci)
	writeFiles(t, sys, map[string]string{
		filepath.Join("class", "net", name, "type"):          "1\n",
		filepath.Join("class", "net", name, "address"):       mac + "\n",
		filepath.Join("class", "net", name, "carrier"):       "1\n",
		filepath.Join("class", "net", name, "speed"):         "10000\n",
		filepath.Join("bus", "pci", "drivers", drv, ".keep"): "",
	})
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink(dev, filepath.Join(sys, "class", "net", name, "device"))
	os.Symlink(filepath.Join(sys, "bus", "pci", "drivers", drv), filepath.Join(dev, "driver"))
}

func TestInventoryAndBoard(t *testing.T) {
	sys := t.TempDir()
	fakeNIC(t, sys, "eth1", "0000:01:00.1", "mlx5_core", "0c:42:a1:00:00:02")
	fakeNIC(t, sys, "eth0", "0000:01:00.0", "mlx5_core", "0c:42:a1:00:00:01")
	writeFiles(t, sys, map[string]string{"class/net/lo/type": "772\n"})
	ports, err := Inventory(sys)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 || ports[0].Name != "eth0" || ports[0].PCI != "0000:01:00.0" || ports[0].Driver != "mlx5_core" || !ports[0].Link || ports[0].SpeedMb != 10000 {
		t.Fatalf("inventory %+v", ports)
	}
	if ports[0].Offload == nil || !ports[0].Offload.XPN {
		t.Fatal("mlx5 offload capability missing")
	}
	b, err := LoadBoard("../board/nvidia-cx7-2port.json")
	if err != nil {
		t.Fatal(err)
	}
	got, missing := b.Assign(slices.Clone(ports))
	if len(missing) != 0 || got[0].Role != "plaintext" || got[1].Role != "line" {
		t.Fatalf("roles %v, missing %v", got, missing)
	}
	if !strings.Contains(got[1].String(), "line") || !strings.Contains(got[1].String(), "driver=mlx5_core") {
		t.Fatalf("inventory line %q", got[1])
	}
	b2, _ := LoadBoard("../board/intel-igb-ixgbe.json")
	_, missing = b2.Assign(slices.Clone(ports))
	if len(missing) != 2 || !strings.Contains(missing[0], "board intel-igb-ixgbe: plaintext port: igb port number 0 not found") {
		t.Fatalf("missing %q", missing)
	}
}

func TestShippedBoardsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../board/*.json")
	if len(files) < 3 {
		t.Fatalf("want qemu and two hardware boards, found %v", files)
	}
	for _, f := range files {
		if _, err := LoadBoard(f); err != nil {
			t.Error(err)
		}
	}
	bad := &Board{Name: "x", Ports: []BoardPort{{Role: "line", PCI: "a", MAC: "b"}}}
	if err := bad.Check(); err == nil {
		t.Fatal("port with two selectors accepted")
	}
}

// Only a driver that marks the frames its offload validated (mlx5's
// rx_uses_md_dst in Linux 6.12) may run an offloaded SecY: for every other
// one the kernel passes clear line frames to the macsec link. The VM test
// in firmware/supervisor shows it on netdevsim.
func TestOffloadClearFramesSafe(t *testing.T) {
	for name, o := range offloadTable {
		err := o.ClearFramesSafe()
		if (name == "mlx5_core") != (err == nil) {
			t.Errorf("%s: ClearFramesSafe() = %v", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %q does not name the driver", name, err)
		}
	}
	sys := t.TempDir()
	fakeNIC(t, sys, "eth0", "0000:01:00.0", "atlantic", "00:17:b6:00:00:01")
	p, err := Lookup(sys, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if s := p.OffloadSummary(); !strings.Contains(s, "driver supports mac offload") {
		t.Errorf("summary %q", s)
	}
	p.HWOffload = true
	if s := p.OffloadSummary(); !strings.Contains(s, "unused: would pass clear line frames") {
		t.Errorf("summary %q does not say why the offload is unused", s)
	}
}
