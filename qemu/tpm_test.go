package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/secwire/secwire/image"
)

// configFiles lists the files on a disk image's config partition.
func configFiles(t *testing.T, disk string) map[string]bool {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(image.ConfigPartNum)
	if err != nil {
		t.Fatalf("%s: config partition: %v", disk, err)
	}
	des, err := fs.ReadDir(".") // go-diskfs takes io/fs paths: "/" is invalid
	if err != nil {
		t.Fatalf("%s: config partition's root directory: %v", disk, err)
	}
	names := map[string]bool{}
	for _, de := range des {
		names[de.Name()] = true
	}
	return names
}

// The device key sealed by a TPM (swtpm): a box with a TPM seals its CAKs
// with a key only its TPM opens; its config partition copied into a
// second box with its own TPM opens nothing and says so; zeroize clears
// the TPM, so the copy taken before opens nothing on the first box
// either.
func TestDeviceKeySealedByTPM(t *testing.T) {
	dir := needQEMU(t)
	tmp := t.TempDir()
	disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteConfig(disk, provisionedConfig(t)); err != nil {
		t.Fatal(err)
	}
	tpmA := filepath.Join(tmp, "tpm-a")
	a := newBox(t, "TPM-A", 24100, disk, BootUEFI, tpmA)
	a.start(t)
	a.expect(t, "lc login: ", promptWait)
	c := a.dial(t)
	sys := run(t, c, "show system")
	if !strings.Contains(sys, "Device key: sealed by the TPM 2.0 (seal.key.tpm)") {
		t.Fatalf("show system:\n%s", sys)
	}
	cak := strings.Repeat("c0de", 8)
	out := run(t, c, "configure; delete links l0; set links l1 plain eth0; set links l1 line eth1; set links l1 datapath software; "+
		"set links l1 mka key-chain 0a0b cak "+cak+"; commit")
	if !strings.Contains(out, "commit complete") {
		t.Fatalf("commit:\n%s", out)
	}
	// The snapshot: the config partition as someone would copy it.
	snapDir := t.TempDir()
	snap, err := PrivateCopy(disk, snapDir)
	if err != nil {
		t.Fatal(err)
	}
	files := configFiles(t, snap)
	stored, _ := image.ReadConfig(snap)
	if !files["seal.key.tpm"] || files["seal.key"] || !strings.Contains(string(stored), `"cak": "sealed:`) || strings.Contains(string(stored), cak) {
		t.Fatalf("config partition: files %v, config:\n%s", files, stored)
	}

	// Zeroize clears the TPM too.
	interactiveYes(t, c, "request system zeroize")
	c.Close()
	a.expect(t, "secwire: booting", promptWait)
	a.expect(t, "no administrator is configured", promptWait)
	a.stop()

	// The copy in a second box with its own TPM.
	copyB, err := PrivateCopy(snap, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := newBox(t, "TPM-B", 24110, copyB, BootUEFI, filepath.Join(tmp, "tpm-b"))
	b.start(t)
	msg := b.expect(t, `ERROR: the device key \(seal.key.tpm\) was sealed by another box's TPM[^\n]*`, promptWait)
	t.Logf("second box: %s", msg)
	// The stored config does not load (its CAK does not open): the box
	// comes up manageable on the console, without the copied link.
	if _, err := b.vm.Expect(consoleReady, promptWait); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(b.vm.Output(), "\n") {
		if strings.Contains(l, "ERROR") {
			t.Logf("second box: %s", strings.TrimSpace(l))
		}
	}
	if strings.Contains(b.vm.Output(), "lc login: ") {
		t.Fatal("the second box loaded the copied config (its hostname's login prompt)")
	}
	b.stop()

	// The copy back in the first box, whose TPM zeroize cleared.
	if err := os.Rename(snap, disk); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	msg = a.expect(t, `ERROR: the device key \(seal.key.tpm\) was sealed by another box's TPM, or before this TPM was cleared[^\n]*`, promptWait)
	t.Logf("first box after zeroize, with the old copy: %s", msg)
	if _, err := a.vm.Expect(consoleReady, promptWait); err != nil {
		t.Fatal(err)
	}
}
