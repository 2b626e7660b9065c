package boot

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The EFI system partition with the boot slots (firmware/slots).
const (
	BootPartName = "secwire-boot"
	BootMount    = "/boot"
)

// MountBootPartition mounts the EFI system partition read-only at
// BootMount and returns how to make it writable for a while: updates,
// rollbacks and marking a trial boot good are the only writers.
func MountBootPartition(wait time.Duration) (dev string, writable func(rw bool) error, err error) {
	deadline := time.Now().Add(wait)
	for dev = findPartition(BootPartName); dev == ""; dev = findPartition(BootPartName) {
		if time.Now().After(deadline) {
			return "", nil, fmt.Errorf("no partition named %q found", BootPartName)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := os.MkdirAll(BootMount, 0o700); err != nil {
		return "", nil, err
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	const opts = "umask=077,flush"
	if err := unix.Mount(dev, BootMount, "vfat", flags|unix.MS_RDONLY, opts); err != nil {
		return "", nil, fmt.Errorf("mount %s on %s: %w", dev, BootMount, err)
	}
	writable = func(rw bool) error {
		f := uintptr(flags | unix.MS_REMOUNT)
		if !rw {
			unix.Sync()
			f |= unix.MS_RDONLY
		}
		if err := unix.Mount(dev, BootMount, "vfat", f, opts); err != nil {
			return fmt.Errorf("remount %s %s: %w", BootMount, map[bool]string{true: "read-write", false: "read-only"}[rw], err)
		}
		return nil
	}
	return dev, writable, nil
}
