package slots

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/bundle"
)

type fixture struct {
	esp   *ESP
	key   ed25519.PrivateKey
	trust bundle.Trust
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{key: priv, trust: bundle.Trust{{Name: "test", ID: bundle.KeyID(pub), Public: pub}}}
	dir := t.TempDir()
	f.esp = &ESP{Dir: dir, Trust: f.trust}
	os.MkdirAll(filepath.Join(dir, EntriesDir), 0o755)
	// Slot A as the image writes it: good, generation 1.
	b := f.bundle(t, "1.0.0", "qemu")
	if err := f.esp.Install(b, "a", 1, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.esp.MarkGood("a"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	return f
}

func (f *fixture) raw(t *testing.T, version, board string, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := bundle.Write(&buf, bundle.Manifest{Board: board, Version: version, Cmdline: "console=ttyS0"},
		[]bundle.NamedFile{{Name: bundle.Kernel, Data: bytes.Repeat([]byte(version), 1<<19)}, {Name: bundle.Initramfs, Data: bytes.Repeat([]byte("i"+version), 1<<19)}}, key, "test")
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) bundle(t *testing.T, version, board string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Read(bytes.NewReader(f.raw(t, version, board, f.key)), bundle.Options{Trust: f.trust})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdBoot does what systemd-boot does at power-on: pick the first entry
// in its order and count down a try on it. It returns the slot booted.
func sdBoot(t *testing.T, e *ESP) string {
	t.Helper()
	es, err := e.entries()
	if err != nil || len(es) == 0 {
		t.Fatalf("no entry to boot: %v", err)
	}
	bootOrder(es)
	en := es[0]
	if en.TriesLeft > 0 {
		next := en
		next.TriesLeft--
		next.TriesDone++
		d := filepath.Join(e.Dir, EntriesDir)
		if err := os.Rename(filepath.Join(d, en.File()), filepath.Join(d, next.File())); err != nil {
			t.Fatal(err)
		}
	}
	return en.Slot
}

// tree is every file of the partition with its hash.
func tree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = sha256.Sum256(b)
		}
		return nil
	})
	return m
}

func TestEntryNames(t *testing.T) {
	for _, n := range []string{"secwire-7-a.conf", "secwire-8-b+3.conf", "secwire-8-b+2-1.conf", "secwire-12-a+0-3.conf"} {
		e, ok := ParseEntry(n)
		if !ok || e.File() != n {
			t.Errorf("%s: parsed %+v, back %q", n, e, e.File())
		}
	}
	for _, n := range []string{"secwire.conf", "secwire-1-c.conf", "other-1-a.conf", "secwire-1-a+.conf"} {
		if _, ok := ParseEntry(n); ok {
			t.Errorf("%s parsed", n)
		}
	}
	if RunningSlot("console=ttyS0 secwire.slot=b panic=10") != "b" || RunningSlot("console=ttyS0") != "" {
		t.Fatal("RunningSlot")
	}
}

// The whole life of an update: v2 installed in B, booted on trial and
// marked good; v3 installed in A, never healthy: after its tries the box
// boots B again and says why; rollback needs a good other slot.
func TestUpdateTrialAndFallback(t *testing.T) {
	f := newFixture(t)
	hist := &History{Path: filepath.Join(t.TempDir(), "software.json")}
	m := &Manager{ESP: f.esp, Board: "qemu", Running: "a", Version: "1.0.0", History: hist}
	var out bytes.Buffer
	if err := m.Add(bytes.NewReader(f.raw(t, "2.0.0", "qemu", f.key)), AddOptions{Out: &out, Who: "admin"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bundle verified: secwire 2.0.0", "writing slot B: 100%", "armed for a trial boot: 3 tries", "'request system reboot' boots slot B"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, out.String())
		}
	}
	st, _ := m.Status()
	if st.Next != "b" || st.Slot("b").State() != "trial (armed: 3 tries)" || st.Slot("a").State() != "good" {
		t.Fatalf("after add: next %s, A %s, B %s", st.Next, st.Slot("a").State(), st.Slot("b").State())
	}
	if got, _ := f.esp.ReadFile("b", bundle.Kernel); !bytes.Equal(got, bytes.Repeat([]byte("2.0.0"), 1<<19)) {
		t.Fatal("slot B's kernel is not the bundle's")
	}
	// Reboot: systemd-boot boots B on trial; the firmware becomes healthy.
	if s := sdBoot(t, f.esp); s != "b" {
		t.Fatalf("booted %s", s)
	}
	m = &Manager{ESP: f.esp, Board: "qemu", Running: "b", Version: "2.0.0", History: hist}
	if !m.Trial() {
		t.Fatal("B is not on trial")
	}
	m.Booted()
	if ok, err := m.MarkGood(40 * time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	st, _ = m.Status()
	if st.Slot("b").State() != "good" || st.Next != "b" || m.Trial() {
		t.Fatalf("after healthy: B %s, next %s", st.Slot("b").State(), st.Next)
	}
	// A downgrade is refused without force.
	err := m.Add(bytes.NewReader(f.raw(t, "1.5.0", "qemu", f.key)), AddOptions{})
	if err == nil || !strings.Contains(err.Error(), "older than the running 2.0.0: a downgrade needs 'force'") {
		t.Fatalf("downgrade: %v", err)
	}
	// v3 into A: every trial boot ends unhealthy.
	if err := m.Add(bytes.NewReader(f.raw(t, "3.0.0", "qemu", f.key)), AddOptions{Tries: 2}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if s := sdBoot(t, f.esp); s != "a" {
			t.Fatalf("trial boot %d went to %s", i+1, s)
		}
		m3 := &Manager{ESP: f.esp, Board: "qemu", Running: "a", Version: "3.0.0", History: hist}
		m3.Booted()
		m3.Unhealthy("not healthy 300 s after boot: management plane does not answer")
	}
	if s := sdBoot(t, f.esp); s != "b" {
		t.Fatalf("after the tries the box booted %s", s)
	}
	m = &Manager{ESP: f.esp, Board: "qemu", Running: "b", Version: "2.0.0", History: hist}
	msg := m.Booted()
	if !strings.Contains(msg, "the trial of slot A (secwire 3.0.0) failed: 2 boots without becoming healthy (last: not healthy 300 s after boot: management plane does not answer)") {
		t.Fatalf("failure report: %q", msg)
	}
	if again := m.Booted(); again != "" {
		t.Fatalf("the failure was reported twice: %q", again)
	}
	st, _ = m.Status()
	if !strings.HasPrefix(st.Slot("a").State(), "failed") {
		t.Fatalf("A is %s", st.Slot("a").State())
	}
	if _, err := m.Rollback("admin"); err == nil || !strings.Contains(err.Error(), "no other good firmware") {
		t.Fatalf("rollback to a failed slot: %v", err)
	}
	// A good v4 in A, marked good; rollback then brings B back.
	if err := m.Add(bytes.NewReader(f.raw(t, "4.0.0", "qemu", f.key)), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	sdBoot(t, f.esp)
	m = &Manager{ESP: f.esp, Board: "qemu", Running: "a", Version: "4.0.0", History: hist}
	m.MarkGood(time.Second)
	if _, err := m.Rollback("admin"); err != nil {
		t.Fatal(err)
	}
	if s := sdBoot(t, f.esp); s != "b" {
		t.Fatalf("after rollback the box booted %s", s)
	}
}

// Refused bundles write nothing: the partition is byte for byte the same.
func TestRefusedBundlesWriteNothing(t *testing.T) {
	f := newFixture(t)
	m := &Manager{ESP: f.esp, Board: "qemu", Running: "a", Version: "1.0.0"}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	good := f.raw(t, "2.0.0", "qemu", f.key)
	before := tree(t, f.esp.Dir)
	for name, raw := range map[string][]byte{
		"bad signature": f.raw(t, "2.0.0", "qemu", stranger),
		"other board":   f.raw(t, "2.0.0", "apu2", f.key),
		"truncated":     good[:len(good)/2],
	} {
		err := m.Add(bytes.NewReader(raw), AddOptions{})
		if err == nil || !strings.Contains(err.Error(), "not") && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s: %v", name, err)
		}
		after := tree(t, f.esp.Dir)
		if len(after) != len(before) {
			t.Fatalf("%s: files changed", name)
		}
		for p, h := range before {
			if after[p] != h {
				t.Fatalf("%s: %s changed", name, p)
			}
		}
	}
}

// A write cut off halfway (power loss) leaves the other slot booting and
// the next add working.
func TestInterruptedWrite(t *testing.T) {
	f := newFixture(t)
	m := &Manager{ESP: f.esp, Board: "qemu", Running: "a", Version: "1.0.0"}
	m.Add(bytes.NewReader(f.raw(t, "2.0.0", "qemu", f.key)), AddOptions{})
	sdBoot(t, f.esp)
	(&Manager{ESP: f.esp, Running: "b"}).MarkGood(0)
	// Running B; a write into A dies at 50%.
	m = &Manager{ESP: f.esp, Board: "qemu", Running: "b", Version: "2.0.0"}
	func() {
		defer func() { recover() }()
		f.esp.Install(f.bundle(t, "3.0.0", "qemu"), "a", 3, func(pct int, _ string) {
			if pct >= 50 {
				panic("power cut")
			}
		})
	}()
	st, _ := m.Status()
	if st.Next != "b" || st.Slot("a").Entry != nil || !strings.HasPrefix(st.Slot("a").State(), "not bootable") {
		t.Fatalf("after the cut: next %s, A %s", st.Next, st.Slot("a").State())
	}
	if s := sdBoot(t, f.esp); s != "b" {
		t.Fatalf("booted %s", s)
	}
	if err := m.Add(bytes.NewReader(f.raw(t, "3.0.0", "qemu", f.key)), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := sdBoot(t, f.esp); s != "a" {
		t.Fatalf("the update after the cut did not boot: %s", s)
	}
}
