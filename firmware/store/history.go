package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Keep is how many earlier commits a History keeps for rollback.
const Keep = 10

// History is a config file and its earlier versions, Junos style: the
// active file at Path, the previous commit at Path.1, the one before at
// Path.2, up to Path.Keep. Every file is written atomically, so a writer
// killed at any point leaves the active file whole (old or new); at worst
// one rollback copy is missing or doubled.
type History struct {
	Path string
}

// Open returns the history of the config at path and removes temporary
// files a killed writer left behind.
func Open(path string) *History {
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"*.tmp*"))
	for _, f := range left {
		os.Remove(f)
	}
	return &History{Path: path}
}

// Active is the active config, nil without error when there is none.
func (h *History) Active() ([]byte, error) {
	b, err := os.ReadFile(h.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save makes data the active config, committed at the time at, and the
// old active one rollback 1. Each file's modification time is the time
// its version was committed (the rollback copy keeps the active file's),
// so List shows commit times, not when a version was superseded.
func (h *History) Save(data []byte, at time.Time) error {
	old, err := h.Active()
	if err != nil {
		return err
	}
	if old != nil {
		committed := time.Now()
		if fi, err := os.Stat(h.Path); err == nil {
			committed = fi.ModTime()
		}
		for n := Keep - 1; n >= 1; n-- {
			if err := os.Rename(h.version(n), h.version(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rotate rollback %d: %w", n, err)
			}
		}
		if err := WriteAtomic(h.version(1), old, 0o600); err != nil {
			return err
		}
		os.Chtimes(h.version(1), committed, committed) // only a display time
	}
	if err := WriteAtomic(h.Path, data, 0o600); err != nil {
		return err
	}
	os.Chtimes(h.Path, at, at)
	return nil
}

// Version is rollback n: 0 is the active config, 1 the previous commit.
func (h *History) Version(n int) ([]byte, error) {
	if n < 0 || n > Keep {
		return nil, fmt.Errorf("rollback %d: want 0..%d", n, Keep)
	}
	p := h.Path
	if n > 0 {
		p = h.version(n)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("rollback %d: no such commit (%d kept)", n, len(h.List()))
	}
	return b, err
}

// Entry is one stored version.
type Entry struct {
	N    int
	Time time.Time
}

// List is every stored version, newest first.
func (h *History) List() []Entry {
	var e []Entry
	for n := 0; n <= Keep; n++ {
		p := h.Path
		if n > 0 {
			p = h.version(n)
		}
		if fi, err := os.Stat(p); err == nil {
			e = append(e, Entry{n, fi.ModTime()})
		}
	}
	return e
}

// Wipe overwrites and deletes the active config, every rollback copy
// and any temporary file a killed writer left.
func (h *History) Wipe() error {
	var errs []error
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(h.Path), "."+filepath.Base(h.Path)+"*.tmp*"))
	for n := 0; n <= Keep; n++ {
		p := h.Path
		if n > 0 {
			p = h.version(n)
		}
		left = append(left, p)
	}
	for _, p := range left {
		errs = append(errs, WipeFile(p))
	}
	return errors.Join(errs...)
}

func (h *History) version(n int) string { return fmt.Sprintf("%s.%d", h.Path, n) }
