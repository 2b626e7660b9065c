package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	bp := filepath.Join(dir, BundleName)
	writeTestBundle(t, bp, "kernel v1", "initramfs v1")
	img := filepath.Join(dir, "disk.img")
	var said []string
	spec := DiskSpec{Out: img, Bundle: bp, Config: []byte(`{"system":{"hostname":"edge1"}}`),
		Logf: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	if err := BuildDisk(spec); err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(said, "\n"); !strings.Contains(all, "slot A kernel") || !strings.Contains(all, "/secwire/a/vmlinuz") || !strings.Contains(all, "slot B: empty") {
		t.Fatalf("make image does not say which slot each file went to:\n%s", all)
	}
	writeTestBundle(t, bp, "kernel v2, longer than before", "initramfs v2")
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
	f, err := fs.OpenFile("/secwire/a/vmlinuz", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	n, _ := f.Read(got)
	if string(got[:n]) != "kernel v2, longer than before" {
		t.Fatalf("boot partition kernel %q", got[:n])
	}
	for _, p := range []string{"/EFI/BOOT/BOOTX64.EFI", "/loader/entries/secwire-1-a.conf", "/secwire/a/bundle.head", "/secwire/a/initramfs.img"} {
		if _, err := fs.OpenFile(p, os.O_RDONLY); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}
