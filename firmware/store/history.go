package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Meta is who made a commit, when, from where, and why.
type Meta struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user,omitempty"`
	From    string    `json:"from,omitempty"`
	Comment string    `json:"comment,omitempty"`
	Hash    string    `json:"sha256"` // of the stored version
}

// logKeep is how many commits the commit log remembers.
const logKeep = 4 * Keep

// Save makes data the active config, committed as m says, and the old
// active one rollback 1. Each file's modification time is the time its
// version was committed (the rollback copy keeps the active file's), and
// the commit log beside the config (Path.log) records who made it, from
// where and why.
func (h *History) Save(data []byte, m Meta) error {
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
	os.Chtimes(h.Path, m.Time, m.Time)
	m.Hash = hashOf(data)
	log := append(h.log(), m)
	if len(log) > logKeep {
		log = log[len(log)-logKeep:]
	}
	var b bytes.Buffer
	for _, e := range log {
		json.NewEncoder(&b).Encode(e)
	}
	return WriteAtomic(h.Path+".log", b.Bytes(), 0o600)
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// log is the commit log, oldest first; lines a killed writer tore are
// skipped.
func (h *History) log() []Meta {
	b, _ := os.ReadFile(h.Path + ".log")
	var out []Meta
	for _, l := range bytes.Split(b, []byte("\n")) {
		var m Meta
		if json.Unmarshal(l, &m) == nil && m.Hash != "" {
			out = append(out, m)
		}
	}
	return out
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

// Entry is one stored version: when it was committed, and by whom and
// why when the commit log knows (User is "" for a version written by
// hand).
type Entry struct {
	N int
	Meta
}

// List is every stored version, newest first.
func (h *History) List() []Entry {
	log := h.log()
	next := len(log) - 1 // versions are newer than the log entries left of their match
	var e []Entry
	for n := 0; n <= Keep; n++ {
		p := h.Path
		if n > 0 {
			p = h.version(n)
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		en := Entry{N: n, Meta: Meta{Time: fi.ModTime()}}
		if b, err := os.ReadFile(p); err == nil {
			sum := hashOf(b)
			for i := next; i >= 0; i-- {
				if log[i].Hash == sum {
					en.Meta, next = log[i], i-1
					break
				}
			}
		}
		e = append(e, en)
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
	if err := os.Remove(h.Path + ".log"); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (h *History) version(n int) string { return fmt.Sprintf("%s.%d", h.Path, n) }
