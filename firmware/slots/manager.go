package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/firmware/store"
)

// Manager is the software lifecycle of the running box: what `request
// system software ...` and `show system software` use.
type Manager struct {
	ESP     *ESP // nil: no boot partition found
	Board   string
	Running string // the running slot, "" after a direct kernel boot
	Version string // the running firmware's version
	History *History
	Log     *slog.Logger
	Now     func() time.Time

	mu sync.Mutex // one update or rollback at a time
}

// AddOptions are the options of `request system software add`.
type AddOptions struct {
	Force bool // allow a downgrade
	Tries int  // 0: DefaultTries
	Who   string
	Out   io.Writer // progress
}

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// Inactive is the slot an update writes.
func (m *Manager) Inactive() (string, error) {
	switch {
	case m.ESP == nil:
		return "", errors.New("no boot partition (secwire-boot) found: this box cannot be updated in place")
	case m.Running == "":
		return "", errors.New("this boot did not come from a boot slot (a direct kernel boot): boot the box from its disk to update it")
	case m.Running == "a":
		return "b", nil
	}
	return "a", nil
}

// Add verifies a bundle read from r and writes it into the inactive slot,
// armed for a trial boot. Nothing is written unless the whole bundle
// verifies.
func (m *Manager) Add(r io.Reader, o AddOptions) error {
	if !m.mu.TryLock() {
		return errors.New("another software add or rollback is running: wait for it to finish")
	}
	defer m.mu.Unlock()
	say := func(f string, a ...any) {
		if o.Out != nil {
			fmt.Fprintf(o.Out, f+"\n", a...)
		}
	}
	slot, err := m.Inactive()
	if err != nil {
		return err
	}
	if o.Tries == 0 {
		o.Tries = DefaultTries
	}
	start, cpu0 := m.now(), cpuTime()
	say("receiving and verifying the bundle (signature, board %s, every file's SHA-256)", m.Board)
	lastPct := int64(-1)
	b, err := bundle.Read(r, bundle.Options{Trust: m.ESP.Trust, Board: m.Board, Progress: func(done, total int64) {
		if pct := done * 100 / max(total, 1); pct/25 != lastPct/25 {
			lastPct = pct
			say("  received %3d%% of %.1f MB", pct, float64(total)/1e6)
		}
	}})
	if err != nil {
		m.record(Event{Kind: "refused", Detail: err.Error(), By: o.Who})
		return err
	}
	mf := b.Manifest
	say("bundle verified: secwire %s for board %s, signed by %s", mf.Version, mf.Board, b.Key)
	if c := bundle.CompareVersions(mf.Version, m.Version); c < 0 && !o.Force {
		err := fmt.Errorf("secwire %s is older than the running %s: a downgrade needs 'force' (request system software add ... force); nothing was written", mf.Version, m.Version)
		m.record(Event{Kind: "refused", Version: mf.Version, Detail: err.Error(), By: o.Who})
		return err
	}
	verified, verifyCPU := m.now(), cpuTime()-cpu0
	lastPct = -1
	err = m.ESP.Install(b, slot, o.Tries, func(pct int, msg string) {
		if pct >= 0 {
			if int64(pct)/10 == lastPct/10 {
				return
			}
			lastPct = int64(pct)
		}
		say("%s", msg)
	})
	if err != nil {
		m.record(Event{Kind: "write failed", Slot: slot, Version: mf.Version, Detail: err.Error(), By: o.Who})
		return fmt.Errorf("%w; slot %s is left not bootable, the running slot %s is untouched", err, Label(slot), Label(m.Running))
	}
	writeCPU := cpuTime() - cpu0 - verifyCPU
	say("done in %.1f s (verify %.1f s, write %.1f s; CPU used: verify %.2f s, write %.2f s)",
		m.now().Sub(start).Seconds(), verified.Sub(start).Seconds(), m.now().Sub(verified).Seconds(), verifyCPU.Seconds(), writeCPU.Seconds())
	say("'request system reboot' boots slot %s (secwire %s) for a trial: it is kept once healthy, else the box returns to slot %s", Label(slot), mf.Version, Label(m.Running))
	m.record(Event{Kind: "installed", Slot: slot, Version: mf.Version, By: o.Who,
		Detail: fmt.Sprintf("signed by %s; armed for a trial boot with %d tries", b.Key, o.Tries)})
	m.log().Warn("software installed: reboot to try it", "slot", Label(slot), "version", mf.Version, "signer", b.Key.ID, "by", o.Who)
	return nil
}

// Rollback makes the other slot, which must hold good firmware, boot next.
func (m *Manager) Rollback(who string) (Slot, error) {
	if !m.mu.TryLock() {
		return Slot{}, errors.New("a software add is running: wait for it to finish")
	}
	defer m.mu.Unlock()
	other, err := m.Inactive()
	if err != nil {
		return Slot{}, err
	}
	st, err := m.ESP.Status()
	if err != nil {
		return Slot{}, err
	}
	s := st.Slot(other)
	if s.Entry == nil || !s.Entry.Good() {
		return s, fmt.Errorf("slot %s is %s: there is no other good firmware to roll back to", Label(other), s.State())
	}
	if err := m.ESP.Prefer(other); err != nil {
		return s, fmt.Errorf("roll back to slot %s: %w", Label(other), err)
	}
	m.record(Event{Kind: "rollback", Slot: other, Version: s.Manifest.Version, By: who})
	m.log().Warn("software rollback: the next boot runs the other slot", "slot", Label(other), "version", s.Manifest.Version, "by", who)
	return s, nil
}

// Status is the slots, or an error saying why there are none.
func (m *Manager) Status() (Status, error) {
	if m.ESP == nil {
		return Status{}, errors.New("no boot partition (secwire-boot) found")
	}
	return m.ESP.Status()
}

// Trial reports whether the running slot is on trial.
func (m *Manager) Trial() bool {
	if m.ESP == nil || m.Running == "" {
		return false
	}
	st, err := m.ESP.Status()
	if err != nil {
		return false
	}
	s := st.Slot(m.Running)
	return s.Entry != nil && !s.Entry.Good()
}

// MarkGood marks the running slot good; it reports whether it was on trial.
func (m *Manager) MarkGood(after time.Duration) (bool, error) {
	if m.ESP == nil || m.Running == "" {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	blessed, err := m.ESP.MarkGood(m.Running)
	if err != nil {
		return false, err
	}
	ev := Event{Kind: "healthy", Slot: m.Running, Version: m.Version, Detail: fmt.Sprintf("healthy %.0f s after boot", after.Seconds())}
	if blessed {
		ev.Detail += "; trial passed, slot marked good"
	}
	m.record(ev)
	return blessed, nil
}

// Booted records this boot, and a failed trial of the other slot that
// the box came back from. It returns the failure's description, "" if
// none.
func (m *Manager) Booted() string {
	trial := m.Trial()
	detail := "direct kernel boot"
	if m.Running != "" {
		detail = "slot " + Label(m.Running)
		if trial {
			st, _ := m.ESP.Status()
			if en := st.Slot(m.Running).Entry; en != nil {
				detail += fmt.Sprintf(" on trial: boot %d of %d", en.TriesDone, en.TriesDone+en.TriesLeft)
			}
		}
	}
	m.record(Event{Kind: "boot", Slot: m.Running, Version: m.Version, Detail: detail})
	if m.ESP == nil || m.Running == "" {
		return ""
	}
	st, err := m.ESP.Status()
	if err != nil {
		return ""
	}
	for _, s := range st.Slots {
		if s.Name == m.Running || s.Entry == nil || !s.Entry.Failed() {
			continue
		}
		key := fmt.Sprintf("%s:%d", s.Name, s.Entry.Gen)
		if m.History.reported(key) {
			return ""
		}
		why := m.History.lastWord(s.Name, s.Manifest.Version)
		msg := fmt.Sprintf("the trial of slot %s (secwire %s) failed: %d boots without becoming healthy (last: %s); running slot %s (secwire %s)",
			Label(s.Name), s.Manifest.Version, s.Entry.TriesDone, why, Label(m.Running), m.Version)
		m.record(Event{Kind: "trial failed", Slot: s.Name, Version: s.Manifest.Version, Detail: msg, Key: key})
		m.log().Error("software: " + msg)
		return msg
	}
	return ""
}

// Unhealthy records that this boot did not become healthy in time.
func (m *Manager) Unhealthy(reason string) {
	m.record(Event{Kind: "unhealthy", Slot: m.Running, Version: m.Version, Detail: reason})
}

func (m *Manager) record(e Event) {
	if m.History == nil {
		return
	}
	e.Time = m.now()
	if err := m.History.add(e); err != nil {
		m.log().Warn("software history", "err", err)
	}
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Event is one line of the software history.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // boot, healthy, unhealthy, installed, refused, write failed, rollback, trial failed
	Slot    string    `json:"slot,omitempty"`
	Version string    `json:"version,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	By      string    `json:"by,omitempty"`
	Key     string    `json:"key,omitempty"`
}

// History is the software history on the config partition (the boot
// partition is rewritten by updates; the config partition is not).
type History struct {
	Path string
	Max  int // events kept; 0: 50
	mu   sync.Mutex
}

// Events are the recorded events, oldest first.
func (h *History) Events() []Event {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.load()
}

func (h *History) load() []Event {
	b, err := os.ReadFile(h.Path)
	if err != nil {
		return nil
	}
	var es []Event
	if json.Unmarshal(b, &es) != nil {
		return nil
	}
	return es
}

func (h *History) add(e Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	es := append(h.load(), e)
	keep := h.Max
	if keep == 0 {
		keep = 50
	}
	if len(es) > keep {
		es = es[len(es)-keep:]
	}
	b, _ := json.MarshalIndent(es, "", " ")
	return store.WriteAtomic(h.Path, b, 0o600)
}

func (h *History) reported(key string) bool {
	for _, e := range h.Events() {
		if e.Key == key {
			return true
		}
	}
	return false
}

// lastWord is what the last boot of a slot's version recorded.
func (h *History) lastWord(slot, version string) string {
	es := h.Events()
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.Slot != slot || e.Version != version {
			continue
		}
		switch e.Kind {
		case "unhealthy":
			return e.Detail
		case "boot":
			return "no result recorded (a panic, watchdog reset or hang) after " + e.Detail
		}
	}
	return "no boot of it recorded (it never reached the firmware)"
}
