package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/firmware/slots"
)

// Disk layout: a GPT disk with an EFI system partition (systemd-boot and
// the two boot slots, A and B: see firmware/slots) and a config partition
// that re-flashing the boot partition leaves alone.
const (
	sector        = 512
	espStart      = 2048 // 1 MiB
	espSectors    = 192 * 1024 * 1024 / sector
	cfgSectors    = 32 * 1024 * 1024 / sector
	diskSize      = (espStart + espSectors + cfgSectors + 2048) * sector
	ConfigPartNum = 2
	// BootPartName is the EFI system partition's GPT name; the firmware
	// mounts it to update the boot slots.
	BootPartName = "secwire-boot"
	// ConfigPartName is the config partition's GPT name; the firmware
	// mounts the partition it finds by this name.
	ConfigPartName = "secwire-config"
	// ConfigFileName is the config file's name on that partition.
	ConfigFileName = "secwire.json"
	// SystemdBoot is Debian's systemd-boot EFI binary (package systemd-boot-efi).
	SystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// DiskSpec is what goes onto the disk.
type DiskSpec struct {
	Out    string // disk.img
	Bundle string // the release bundle that goes into slot A
	Config []byte // initial config file; nil leaves the partition empty
	// Logf is told which slot each file went to (nil: nothing said).
	Logf func(string, ...any)
}

// BuildDisk writes a fresh disk image.
func BuildDisk(s DiskSpec) error {
	if _, err := os.Stat(SystemdBoot); err != nil {
		return fmt.Errorf("%s missing: install Debian's systemd-boot-efi package", SystemdBoot)
	}
	os.Remove(s.Out)
	d, err := diskfs.Create(s.Out, diskSize, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("create %s: %w", s.Out, err)
	}
	defer d.Close()
	table := &gpt.Table{
		ProtectiveMBR:      true,
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		Partitions: []*gpt.Partition{
			{Index: 1, Start: espStart, End: espStart + espSectors - 1, Type: gpt.EFISystemPartition, Name: BootPartName},
			{Index: 2, Start: espStart + espSectors, End: espStart + espSectors + cfgSectors - 1, Type: gpt.LinuxFilesystem, Name: ConfigPartName},
		},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("partition %s: %w", s.Out, err)
	}
	if err := writeBootPartition(d, s); err != nil {
		return err
	}
	cfs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: ConfigPartNum, FSType: filesystem.TypeFat32, VolumeLabel: "SECWIRE-CFG"})
	if err != nil {
		return fmt.Errorf("config partition: %w", err)
	}
	if s.Config != nil {
		return writeFile(cfs, "/"+ConfigFileName, s.Config)
	}
	return nil
}

// UpdateBoot rewrites only the boot partition of an existing disk image:
// what flashing a new firmware does. The config partition is untouched.
func UpdateBoot(s DiskSpec) error {
	d, err := diskfs.Open(s.Out, diskfs.WithOpenMode(diskfs.ReadWrite))
	if err != nil {
		return err
	}
	defer d.Close()
	return writeBootPartition(d, s)
}

// writeBootPartition formats the EFI system partition with systemd-boot,
// the bundle in slot A (known good: the first boot needs no trial) and
// slot B empty.
func writeBootPartition(d *disk.Disk, s DiskSpec) error {
	logf := s.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	raw, err := os.ReadFile(s.Bundle)
	if err != nil {
		return fmt.Errorf("release bundle: %w", err)
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.Options{Unsigned: true})
	if err != nil {
		return fmt.Errorf("%s: %w", s.Bundle, err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "SECWIRE"})
	if err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	sdboot, err := os.ReadFile(SystemdBoot)
	if err != nil {
		return err
	}
	entry := slots.Entry{Gen: 1, Slot: "a", TriesLeft: -1}
	files := []struct {
		path string
		data []byte
		what string
	}{
		{"/EFI/BOOT/BOOTX64.EFI", sdboot, "systemd-boot"},
		{"/" + slots.LoaderConfFile, []byte(slots.LoaderConf), "boot loader settings"},
		{"/" + slots.SlotFile("a", bundle.Kernel), b.Files[bundle.Kernel], "slot A kernel"},
		{"/" + slots.SlotFile("a", bundle.Initramfs), b.Files[bundle.Initramfs], "slot A initramfs"},
		{"/" + slots.SlotFile("a", slots.HeadFile), b.Head, "slot A signed manifest"},
		{"/" + slots.EntriesDir + "/" + entry.File(), slots.EntryContent("a", b.Manifest), "slot A boot entry (good)"},
	}
	for _, f := range files {
		if err := writeFile(fs, f.path, f.data); err != nil {
			return err
		}
		logf("  %-26s %-40s %8d bytes", f.what, f.path, len(f.data))
	}
	if err := fs.Mkdir("/" + slots.SlotsDir + "/b"); err != nil {
		return err
	}
	logf("  slot A: secwire %s for board %s, signed by key %s; slot B: empty (the first update goes there)", b.Manifest.Version, b.Manifest.Board, b.Key.ID)
	return nil
}

func writeFile(fs filesystem.FileSystem, p string, data []byte) error {
	if err := fs.Mkdir(path.Dir(p)); err != nil {
		return fmt.Errorf("mkdir %s: %w", path.Dir(p), err)
	}
	f, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// WriteConfig puts a config file onto the disk image's config partition,
// the way `make qemu CONFIG=...` preloads one.
func WriteConfig(img string, data []byte) error {
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadWrite))
	if err != nil {
		return err
	}
	defer d.Close()
	fs, err := d.GetFilesystem(ConfigPartNum)
	if err != nil {
		return fmt.Errorf("%s: config partition: %w", img, err)
	}
	return writeFile(fs, "/"+ConfigFileName, data)
}

// ReadConfig reads the config file from the disk image's config partition.
func ReadConfig(img string) ([]byte, error) {
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fs, err := d.GetFilesystem(ConfigPartNum)
	if err != nil {
		return nil, err
	}
	f, err := fs.OpenFile("/"+ConfigFileName, os.O_RDONLY)
	if err != nil {
		return nil, errors.Join(os.ErrNotExist, err)
	}
	defer f.Close()
	return io.ReadAll(f)
}
