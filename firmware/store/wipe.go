package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WipeFile overwrites a file with zeros, syncs, and deletes it, so that
// its blocks hold nothing when they are freed. A missing file is fine.
func WipeFile(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("wipe %s: %w", p, err)
		}
		_, werr := f.Write(make([]byte, fi.Size()))
		serr := f.Sync()
		f.Close()
		if err := errors.Join(werr, serr); err != nil {
			return fmt.Errorf("wipe %s: %w", p, err)
		}
	}
	return os.Remove(p)
}

// WipeTree wipes every file under dir, then removes dir.
func WipeTree(dir string) error {
	var errs []error
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			errs = append(errs, WipeFile(p))
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ScrubFree fills the free space of the filesystem that holds dir with
// zeros and frees it again, so that nothing a file once held (an old
// version replaced by WriteAtomic, a rotated log) survives in free
// blocks. It is for a small dedicated partition (the config partition),
// never a host's root filesystem.
func ScrubFree(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	p := filepath.Join(dir, ".scrub")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dir, err)
	}
	defer os.Remove(p)
	zero := make([]byte, 1<<20)
	var written int64
	for written <= free { // bounded: the filesystem fills up before
		n, err := f.Write(zero)
		written += int64(n)
		if err != nil {
			break // ENOSPC: every free block is zero now
		}
	}
	f.Sync()
	return f.Close()
}
