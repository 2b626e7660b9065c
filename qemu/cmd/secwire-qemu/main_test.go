package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/image"
)

func TestWiringOfTwoVMs(t *testing.T) {
	a, err := wiring("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := wiring("b")
	if err != nil {
		t.Fatal(err)
	}
	// The line ports are one wire: b's ends are a's swapped.
	if !strings.Contains(a.line, "local.port=10003,") || !strings.Contains(a.line, "remote.port=10004") ||
		!strings.Contains(b.line, "local.port=10004,") || !strings.Contains(b.line, "remote.port=10003") {
		t.Errorf("line ports do not meet:\na: %s\nb: %s", a.line, b.line)
	}
	if a.plain == b.plain || a.mgmt == b.mgmt || a.macPrefix == b.macPrefix {
		t.Errorf("the VMs share a plaintext port, SSH port or MACs:\n%+v\n%+v", a, b)
	}
	if !strings.Contains(a.mgmt, "127.0.0.1:2222-:22") || !strings.Contains(b.mgmt, "127.0.0.1:2223-:22") {
		t.Errorf("SSH forwards: %s, %s", a.mgmt, b.mgmt)
	}
	if _, err := wiring("c"); err == nil || !strings.Contains(err.Error(), "want a or b") {
		t.Errorf("VM c: %v", err)
	}
}

// readBoot reads a file from a disk image's boot partition.
func readBoot(t *testing.T, img, name string) string {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile(name, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// A rebuild rewrites only the VM's boot partition; its config partition
// survives, an unchanged build touches nothing, and fresh starts blank.
func TestPrepareDiskKeepsTheConfigPartition(t *testing.T) {
	if _, err := os.Stat(image.SystemdBoot); err != nil {
		t.Skip(image.SystemdBoot + " missing: `make test` installs it (Debian package systemd-boot-efi)")
	}
	img := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(img, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// build is what make image does: the artefacts and a blank disk.img.
	build := func(initramfs string) {
		var buf bytes.Buffer
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		if err := bundle.Write(&buf, bundle.Manifest{Board: "qemu", Version: "1.0.0", Cmdline: "console=ttyS0"},
			[]bundle.NamedFile{{Name: bundle.Kernel, Data: []byte("kernel")}, {Name: bundle.Initramfs, Data: []byte(initramfs)}}, key, "test"); err != nil {
			t.Fatal(err)
		}
		write(image.BundleName, buf.String())
		if err := image.BuildDisk(image.DiskSpec{Out: filepath.Join(img, "disk.img"), Bundle: filepath.Join(img, image.BundleName)}); err != nil {
			t.Fatal(err)
		}
	}
	build("initramfs v1")
	vmDir := filepath.Join(img, "vm-a")
	disk, note, err := prepareDisk(img, vmDir, false)
	if err != nil || !strings.Contains(note, "first-boot setup") {
		t.Fatalf("first start: %v, %q", err, note)
	}
	if err := image.WriteConfig(disk, []byte(`{"system": {"hostname": "kept"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, note, err = prepareDisk(img, vmDir, false); err != nil || !strings.Contains(note, "up to date") {
		t.Fatalf("unchanged build: %v, %q", err, note)
	}

	build("initramfs v2")
	if _, note, err = prepareDisk(img, vmDir, false); err != nil || !strings.Contains(note, "firmware updated") {
		t.Fatalf("rebuild: %v, %q", err, note)
	}
	if got := readBoot(t, disk, "/secwire/a/initramfs.img"); got != "initramfs v2" {
		t.Errorf("boot partition has initramfs %q after the update", got)
	}
	if cfg, err := image.ReadConfig(disk); err != nil || !strings.Contains(string(cfg), "kept") {
		t.Fatalf("config after the update: %v %q", err, cfg)
	}
	if _, err := os.Stat(filepath.Join(img, "vm-b")); err == nil {
		t.Fatal("VM a's start made vm-b")
	}

	if _, note, err = prepareDisk(img, vmDir, true); err != nil || !strings.Contains(note, "FRESH") {
		t.Fatalf("fresh: %v, %q", err, note)
	}
	if _, err := image.ReadConfig(disk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a fresh disk still has a config (%v)", err)
	}
	if got := readBoot(t, disk, "/secwire/a/initramfs.img"); got != "initramfs v2" {
		t.Errorf("fresh disk boots initramfs %q", got)
	}
}
