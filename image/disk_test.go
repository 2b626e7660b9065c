package image

import (
	"os"
	"path/filepath"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// A firmware update rewrites the boot partition; the config partition and
// its file must come through untouched.
func TestConfigSurvivesBootReflash(t *testing.T) {
	if _, err := os.Stat(SystemdBoot); err != nil {
		t.Skip("systemd-boot-efi not installed: `make test` installs it")
	}
	dir := t.TempDir()
	k, i := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(k, []byte("kernel v1"), 0o644)
	os.WriteFile(i, []byte("initramfs v1"), 0o644)
	img := filepath.Join(dir, "disk.img")
	spec := DiskSpec{Out: img, Vmlinuz: k, Initramfs: i, Cmdline: "console=ttyS0", Config: []byte(`{"system":{"hostname":"edge1"}}`)}
	if err := BuildDisk(spec); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(k, []byte("kernel v2, longer than before"), 0o644)
	if err := UpdateBoot(spec); err != nil {
		t.Fatal(err)
	}
	b, err := ReadConfig(img)
	if err != nil || string(b) != `{"system":{"hostname":"edge1"}}` {
		t.Fatalf("config after re-flash: %q, %v", b, err)
	}
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tbl, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	parts := tbl.(*gpt.Table).Partitions
	if parts[0].Type != gpt.EFISystemPartition || parts[1].Name != ConfigPartName {
		t.Fatalf("partitions %+v %+v", parts[0], parts[1])
	}
	fs, err := d.GetFilesystem(1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/secwire/vmlinuz", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	n, _ := f.Read(got)
	if string(got[:n]) != "kernel v2, longer than before" {
		t.Fatalf("boot partition kernel %q", got[:n])
	}
	for _, p := range []string{"/EFI/BOOT/BOOTX64.EFI", "/loader/entries/secwire.conf"} {
		if _, err := fs.OpenFile(p, os.O_RDONLY); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}
