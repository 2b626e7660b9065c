// Package slots keeps the two boot slots, A and B, on the EFI system
// partition, and chooses between them with systemd-boot's automatic boot
// assessment (https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/):
//
//	/EFI/BOOT/BOOTX64.EFI               systemd-boot
//	/loader/loader.conf                 default secwire-*
//	/loader/entries/secwire-7-a.conf    slot A, known good
//	/loader/entries/secwire-8-b+3.conf  slot B on trial: 3 tries left
//	/secwire/a/{vmlinuz,initramfs.img,bundle.head}
//	/secwire/b/{...}
//
// systemd-boot sorts entries with no tries left last and the others by
// descending id, and boots the first entry the default pattern matches:
// the highest generation that has not failed. Before it boots an entry
// with tries it renames it (+3 -> +2-1); the firmware, once healthy,
// renames it to no counter at all (what systemd-bless-boot does). An
// entry whose tries run out sorts last, and the box boots the other slot.
package slots

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/secwire/secwire/firmware/bundle"
)

// Layout of the EFI system partition.
const (
	LoaderConfFile = "loader/loader.conf"
	EntriesDir     = "loader/entries"
	SlotsDir       = "secwire"
	HeadFile       = "bundle.head"
	// LoaderConf makes systemd-boot boot the first secwire entry in its
	// order at once, with no menu and no editor.
	LoaderConf = "default secwire-*\ntimeout 0\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n"
	// DefaultTries is how many boots a new slot gets to become healthy.
	DefaultTries = 3
	// CmdlineSlot is the kernel command line parameter that names the
	// slot an entry boots.
	CmdlineSlot = "secwire.slot="
)

// Names are the slots.
var Names = []string{"a", "b"}

// Label is a slot's name as the CLI shows it.
func Label(slot string) string { return strings.ToUpper(slot) }

// Entry is a loader entry file name: secwire-GEN-SLOT[+LEFT[-DONE]].conf.
type Entry struct {
	Gen       int
	Slot      string
	TriesLeft int // -1: no boot counting (known good)
	TriesDone int
}

var entryName = regexp.MustCompile(`^secwire-([0-9]+)-([ab])(?:\+([0-9]+)(?:-([0-9]+))?)?\.conf$`)

// ParseEntry reads an entry file name.
func ParseEntry(name string) (Entry, bool) {
	m := entryName.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{Slot: m[2], TriesLeft: -1}
	e.Gen, _ = strconv.Atoi(m[1])
	if m[3] != "" {
		e.TriesLeft, _ = strconv.Atoi(m[3])
		e.TriesDone, _ = strconv.Atoi(m[4])
	}
	return e, true
}

// File is the entry's file name.
func (e Entry) File() string {
	s := fmt.Sprintf("secwire-%d-%s", e.Gen, e.Slot)
	if e.TriesLeft >= 0 {
		s += "+" + strconv.Itoa(e.TriesLeft)
		if e.TriesDone > 0 {
			s += "-" + strconv.Itoa(e.TriesDone)
		}
	}
	return s + ".conf"
}

// Good: booted healthy (no counter). Failed: out of tries.
func (e Entry) Good() bool   { return e.TriesLeft < 0 }
func (e Entry) Failed() bool { return e.TriesLeft == 0 }

// EntryContent is a slot's loader entry.
func EntryContent(slot string, m bundle.Manifest) []byte {
	dir := "/" + SlotsDir + "/" + slot + "/"
	return []byte(fmt.Sprintf("title secwire %s (slot %s)\nversion %s\nlinux %s%s\ninitrd %s%s\noptions %s %s%s\n",
		m.Version, Label(slot), m.Version, dir, bundle.Kernel, dir, bundle.Initramfs, m.Cmdline, CmdlineSlot, slot))
}

// SlotFile is a slot file's path on the partition.
func SlotFile(slot, name string) string { return SlotsDir + "/" + slot + "/" + name }

// RunningSlot is the slot named on a kernel command line, "" if none
// (a direct kernel boot).
func RunningSlot(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineSlot); ok && (v == "a" || v == "b") {
			return v
		}
	}
	return ""
}

// Slot is what one slot holds.
type Slot struct {
	Name     string
	Entry    *Entry // nil: not bootable
	Manifest bundle.Manifest
	Signer   bundle.Key
	HeadErr  error // the slot's head is missing or does not verify
}

// Empty is a slot with nothing in it.
func (s Slot) Empty() bool { return s.Entry == nil && s.Manifest.Version == "" }

// State is the slot's state in words.
func (s Slot) State() string {
	switch {
	case s.Entry == nil && s.Manifest.Version == "" && s.HeadErr == nil:
		return "empty"
	case s.Entry == nil:
		return "not bootable (incomplete: an interrupted write)"
	case s.Entry.Good():
		return "good"
	case s.Entry.Failed():
		return fmt.Sprintf("failed (trial: %d boots without becoming healthy)", s.Entry.TriesDone)
	case s.Entry.TriesDone == 0:
		return fmt.Sprintf("trial (armed: %d tries)", s.Entry.TriesLeft)
	}
	return fmt.Sprintf("trial (boot %d, %d tries left)", s.Entry.TriesDone, s.Entry.TriesLeft)
}

// Status is both slots and what boots next.
type Status struct {
	Slots []Slot
	Next  string // the slot systemd-boot boots next, "" if none
}

// Slot finds a slot by name.
func (st Status) Slot(name string) Slot {
	for _, s := range st.Slots {
		if s.Name == name {
			return s
		}
	}
	return Slot{Name: name}
}

// ESP is a mounted EFI system partition.
type ESP struct {
	Dir string
	// Writable remounts the partition read-write (true) and read-only
	// again (false); nil when it is always writable.
	Writable func(rw bool) error
	Trust    bundle.Trust
}

// entries lists the secwire loader entries.
func (e *ESP) entries() ([]Entry, error) {
	des, err := os.ReadDir(filepath.Join(e.Dir, EntriesDir))
	if err != nil {
		return nil, fmt.Errorf("boot partition: %w", err)
	}
	var out []Entry
	for _, d := range des {
		if en, ok := ParseEntry(d.Name()); ok {
			out = append(out, en)
		}
	}
	return out, nil
}

// bootOrder sorts entries as systemd-boot does for ours: failed ones
// last, then by descending generation (the id's number).
func bootOrder(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Failed() != es[j].Failed() {
			return !es[i].Failed()
		}
		if es[i].Gen != es[j].Gen {
			return es[i].Gen > es[j].Gen
		}
		return es[i].Slot > es[j].Slot
	})
}

// Status reads both slots.
func (e *ESP) Status() (Status, error) {
	es, err := e.entries()
	if err != nil {
		return Status{}, err
	}
	bootOrder(es)
	var st Status
	if len(es) > 0 {
		st.Next = es[0].Slot
	}
	for _, name := range Names {
		s := Slot{Name: name}
		for i := range es {
			if es[i].Slot == name && s.Entry == nil {
				s.Entry = &es[i]
			}
		}
		head, err := os.ReadFile(filepath.Join(e.Dir, SlotFile(name, HeadFile)))
		switch {
		case err == nil:
			s.Manifest, s.Signer, s.HeadErr = bundle.ReadHead(head, e.Trust)
		case !errors.Is(err, os.ErrNotExist) || s.Entry != nil:
			s.HeadErr = fmt.Errorf("no %s: %w", HeadFile, err)
		default:
			if des, _ := os.ReadDir(filepath.Join(e.Dir, SlotsDir, name)); len(des) > 0 {
				s.HeadErr = errors.New("files without a bundle head (an interrupted write)")
			}
		}
		st.Slots = append(st.Slots, s)
	}
	return st, nil
}

func (e *ESP) writable(rw bool) error {
	if e.Writable == nil {
		return nil
	}
	return e.Writable(rw)
}

// Progress reports what a write does: pct is how much of the payload is
// written, -1 for a message about a step.
type Progress func(pct int, msg string)

// Install writes a verified bundle into slot and arms a trial boot of it
// with tries boots to become healthy. The order makes an interruption at
// any point harmless: the slot's entry goes first (the slot is then not
// bootable), the files are written and synced, and the new entry, which
// makes the slot bootable, comes last, written under a temporary name and
// renamed.
func (e *ESP) Install(b *bundle.Bundle, slot string, tries int, progress Progress) error {
	if slot != "a" && slot != "b" {
		return fmt.Errorf("no slot %q", slot)
	}
	if tries < 1 || tries > 9 {
		return fmt.Errorf("tries %d: want 1 to 9", tries)
	}
	if err := e.writable(true); err != nil {
		return fmt.Errorf("boot partition read-write: %w", err)
	}
	defer e.writable(false)
	es, err := e.entries()
	if err != nil {
		return err
	}
	gen := 0
	entries := filepath.Join(e.Dir, EntriesDir)
	for _, en := range es {
		gen = max(gen, en.Gen)
		if en.Slot == slot {
			if err := os.Remove(filepath.Join(entries, en.File())); err != nil {
				return fmt.Errorf("remove slot %s's boot entry: %w", Label(slot), err)
			}
		}
	}
	removeTemps(entries)
	if err := syncDir(entries); err != nil {
		return err
	}
	dir := filepath.Join(e.Dir, SlotsDir, slot)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear slot %s: %w", Label(slot), err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	total, done := b.Size(), int64(0)
	for _, f := range b.Manifest.Files {
		n, err := writeSynced(filepath.Join(dir, f.Name), b.Files[f.Name], func(n int64) {
			if progress != nil {
				pct := int((done + n) * 100 / max(total, 1))
				progress(pct, fmt.Sprintf("writing slot %s: %3d%% (%s)", Label(slot), pct, f.Name))
			}
		})
		if err != nil {
			return fmt.Errorf("write slot %s %s: %w", Label(slot), f.Name, err)
		}
		done += n
	}
	if _, err := writeSynced(filepath.Join(dir, HeadFile), b.Head, nil); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	en := Entry{Gen: gen + 1, Slot: slot, TriesLeft: tries}
	if err := writeEntry(entries, en.File(), EntryContent(slot, b.Manifest)); err != nil {
		return fmt.Errorf("arm slot %s: %w", Label(slot), err)
	}
	if progress != nil {
		progress(-1, fmt.Sprintf("slot %s armed for a trial boot: %d tries to become healthy (%s)", Label(slot), tries, en.File()))
	}
	return nil
}

// MarkGood removes the running slot's boot counter: it booted healthy.
// It reports whether there was a counter to remove.
func (e *ESP) MarkGood(slot string) (bool, error) {
	es, err := e.entries()
	if err != nil {
		return false, err
	}
	for _, en := range es {
		if en.Slot != slot || en.Good() {
			continue
		}
		if err := e.writable(true); err != nil {
			return false, err
		}
		defer e.writable(false)
		good := en
		good.TriesLeft, good.TriesDone = -1, 0
		entries := filepath.Join(e.Dir, EntriesDir)
		if err := os.Rename(filepath.Join(entries, en.File()), filepath.Join(entries, good.File())); err != nil {
			return false, fmt.Errorf("mark slot %s good: %w", Label(slot), err)
		}
		return true, syncDir(entries)
	}
	return false, nil
}

// Prefer makes a good slot the one that boots next: its entry gets the
// highest generation.
func (e *ESP) Prefer(slot string) error {
	es, err := e.entries()
	if err != nil {
		return err
	}
	gen := 0
	var mine *Entry
	for i, en := range es {
		gen = max(gen, en.Gen)
		if en.Slot == slot {
			mine = &es[i]
		}
	}
	if mine == nil || !mine.Good() {
		return fmt.Errorf("slot %s holds no good firmware", Label(slot))
	}
	if err := e.writable(true); err != nil {
		return err
	}
	defer e.writable(false)
	next := *mine
	next.Gen = gen + 1
	entries := filepath.Join(e.Dir, EntriesDir)
	if err := os.Rename(filepath.Join(entries, mine.File()), filepath.Join(entries, next.File())); err != nil {
		return err
	}
	return syncDir(entries)
}

func writeEntry(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if _, err := writeSynced(tmp, data, nil); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func removeTemps(dir string) {
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	for _, f := range left {
		os.Remove(f)
	}
}

// writeSynced writes data in 1 MiB chunks (telling done after each, so
// the datapath's goroutines get the CPU between them) and syncs it.
func writeSynced(path string, data []byte, done func(int64)) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	var n int64
	for n < int64(len(data)) {
		k, err := f.Write(data[n:min(int64(len(data)), n+1<<20)])
		n += int64(k)
		if err != nil {
			f.Close()
			return n, err
		}
		if done != nil {
			done(n)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return n, err
	}
	return n, f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// ReadFile reads a file of a slot, for tests and checks.
func (e *ESP) ReadFile(slot, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(e.Dir, SlotFile(slot, name)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// TrustList is the keys the box accepts bundles from.
func (e *ESP) TrustList() bundle.Trust {
	if e == nil {
		return nil
	}
	return e.Trust
}
