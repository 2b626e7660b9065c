// Package store keeps the appliance's configuration file on the config
// partition. Writes are atomic: a torn write leaves the previous file.
package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteAtomic replaces path with data: temp file, fsync, rename, then fsync
// of the directory, so that after a power loss the file is either the old
// or the new one, never a mix.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil && !os.IsPermission(err) {
		// vfat ignores modes; anything else is a real error.
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// vfat (the config partition) makes the renamed directory entry with
	// size 0 and fills it in only when the file's inode is written back:
	// sync the file again after the rename, or a power cut in the next
	// half minute leaves an empty file.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync after rename: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
