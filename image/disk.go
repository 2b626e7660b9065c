package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Disk layout: a GPT disk with an EFI system partition (systemd-boot, the
// kernel and the initramfs) and a config partition that re-flashing the
// boot partition leaves alone.
const (
	sector        = 512
	espStart      = 2048 // 1 MiB
	espSectors    = 192 * 1024 * 1024 / sector
	cfgSectors    = 32 * 1024 * 1024 / sector
	diskSize      = (espStart + espSectors + cfgSectors + 2048) * sector
	ConfigPartNum = 2
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
	Out       string // disk.img
	Vmlinuz   string
	Initramfs string
	Cmdline   string
	Config    []byte // initial config file; nil leaves the partition empty
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
			{Index: 1, Start: espStart, End: espStart + espSectors - 1, Type: gpt.EFISystemPartition, Name: "secwire-boot"},
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

func writeBootPartition(d *disk.Disk, s DiskSpec) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "SECWIRE"})
	if err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	loader := "default secwire.conf\ntimeout 0\neditor no\nconsole-mode keep\n"
	entry := fmt.Sprintf("title secwire\nlinux /secwire/vmlinuz\ninitrd /secwire/initramfs.cpio\noptions %s\n", s.Cmdline)
	for _, f := range []struct{ dst, src string }{
		{"/EFI/BOOT/BOOTX64.EFI", SystemdBoot},
		{"/secwire/vmlinuz", s.Vmlinuz},
		{"/secwire/initramfs.cpio", s.Initramfs},
	} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := writeFile(fs, f.dst, b); err != nil {
			return err
		}
	}
	if err := writeFile(fs, "/loader/loader.conf", []byte(loader)); err != nil {
		return err
	}
	return writeFile(fs, "/loader/entries/secwire.conf", []byte(entry))
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
