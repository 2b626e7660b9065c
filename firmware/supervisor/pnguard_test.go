package supervisor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/offload/macsec"
)

// gatedWrites stands in for a slow or failing state directory: writes
// wait until opened, and fail while failing is set.
type gatedWrites struct {
	mu      sync.Mutex
	open    bool
	failing bool
	wake    chan struct{}
	waiting int // writes held at the gate
}

func (w *gatedWrites) write(path string, data []byte) error {
	for {
		w.mu.Lock()
		open, failing, wake := w.open, w.failing, w.wake
		if !open && !failing {
			w.waiting++
		}
		w.mu.Unlock()
		if failing {
			return errors.New("input/output error")
		}
		if open {
			return store.WriteAtomic(path, data, 0o600)
		}
		<-wake
		w.mu.Lock()
		w.waiting--
		w.mu.Unlock()
	}
}

func (w *gatedWrites) held() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting
}

func (w *gatedWrites) set(open, failing bool) {
	w.mu.Lock()
	w.open, w.failing = open, failing
	close(w.wake)
	w.wake = make(chan struct{})
	w.mu.Unlock()
}

type guardRig struct {
	g     *pnGuard
	secy  *macsec.SecY
	gate  *gatedWrites
	log   *bytes.Buffer
	start uint64
	stop  context.CancelFunc // ends the guard's run
	ended chan struct{}      // closed when run has returned
}

// newGuardRig guards AN 0 of a codec SecY with a reserve of 1000. With
// kernel set the guard treats it as the kernel's: no exact limit, the SA
// is taken away and put back.
func newGuardRig(t *testing.T, kernel bool) *guardRig {
	t.Helper()
	secy, err := macsec.NewSecY(macsec.Config{Suite: macsec.GCMAES128, SCI: 0x020000000a010001, SendSCI: true})
	if err != nil {
		t.Fatal(err)
	}
	key := macsec.NewKey(bytes.Repeat([]byte{7}, 16))
	r := &guardRig{secy: secy, gate: &gatedWrites{open: true, wake: make(chan struct{})}, log: &bytes.Buffer{}}
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return r.log.Write(p)
	}), nil))
	r.g, r.start, err = newPNGuard(t.TempDir(), secy.Config().SCI, 0, key, 1, 1000, log)
	if err != nil {
		t.Fatal(err)
	}
	r.g.write = r.gate.write
	install := func(pn uint64) error {
		if err := secy.InstallTxSA(macsec.SAParams{AN: 0, Key: key, PN: pn}); err != nil {
			return err
		}
		return secy.SetEncodingSA(0)
	}
	if err := secy.InstallTxSA(macsec.SAParams{AN: 0, Key: key, PN: r.start}); err != nil {
		t.Fatal(err)
	}
	var limit pnLimiter = secy
	if kernel {
		limit = nil
	}
	if err := r.g.attach(secy, limit, install); err != nil {
		t.Fatal(err)
	}
	secy.SetEncodingSA(0)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.ended = cancel, make(chan struct{})
	go func() { defer close(r.ended); r.g.run(ctx) }()
	t.Cleanup(func() { r.gate.set(true, false); cancel(); <-r.ended })
	return r
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (r *guardRig) recorded(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile(r.g.path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// send protects one frame and returns its PN, or the error.
func (r *guardRig) send() (uint64, error) {
	f, err := r.secy.Protect(nil, make([]byte, 64))
	if err != nil {
		return 0, err
	}
	tag, err := macsec.ParseSecTAG(f, 12)
	return uint64(tag.PN), err
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPNGuardHoldsAtTheCeilingUntilRecorded(t *testing.T) {
	r := newGuardRig(t, false)
	ceiling := r.recorded(t)
	if ceiling != r.start+1000 {
		t.Fatalf("first ceiling %d, want %d", ceiling, r.start+1000)
	}
	// Writes hang: transmission runs exactly up to the recorded ceiling.
	r.gate.set(false, false)
	var last uint64
	for {
		pn, err := r.send()
		if errors.Is(err, macsec.ErrPNLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = pn
		if pn > ceiling {
			t.Fatalf("sent PN %d past the recorded ceiling %d", pn, ceiling)
		}
		if pn%100 == 0 {
			time.Sleep(pnGuardTick) // let the guard see the PN move
		}
	}
	if last != ceiling-1 {
		t.Fatalf("held after PN %d, want %d (the last below the ceiling)", last, ceiling-1)
	}
	if r.recorded(t) != ceiling {
		t.Fatal("the ceiling moved while writes hang")
	}
	// The write completes: transmission resumes at the ceiling.
	r.gate.set(true, false)
	eventually(t, "transmission resumes after the write", func() bool { _, err := r.send(); return err == nil })
	if c := r.recorded(t); c <= ceiling {
		t.Fatalf("ceiling %d after the write, want above %d", c, ceiling)
	}
	if s := r.g.status(); s != "" {
		t.Errorf("status %q after a slow write that completed", s)
	}
}

// TestPNGuardEndsAfterItsWrite: a guard stopped with a ceiling write in
// flight returns only once the write has landed. The guard of the
// restarted link reads the file next; a late write could lower the
// ceiling under it, and a crash after that would reuse PNs.
func TestPNGuardEndsAfterItsWrite(t *testing.T) {
	r := newGuardRig(t, false)
	first := r.recorded(t)
	r.gate.set(false, false)
	// Past half the reserve the guard writes the next ceiling; stay well
	// below the recorded one, where the codec would hold.
	for pn := uint64(0); pn < first-400; {
		var err error
		if pn, err = r.send(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a ceiling write in flight", func() bool { return r.gate.held() > 0 })
	r.stop()
	select {
	case <-r.ended:
		t.Fatal("the guard ended with its ceiling write still in flight")
	case <-time.After(300 * time.Millisecond):
	}
	r.gate.set(true, false)
	select {
	case <-r.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the guard did not end after its write landed")
	}
	if c := r.recorded(t); c <= first {
		t.Errorf("ceiling %d on disk after the stop, want the write in flight's, above %d", c, first)
	}
}

func TestPNGuardStopsWhenWritesFail(t *testing.T) {
	r := newGuardRig(t, false)
	r.gate.set(false, true)
	// Frames flow until the guard must write, then stop at once.
	eventually(t, "transmission stops once a write fails", func() bool {
		for range 20 {
			if _, err := r.send(); err != nil {
				return errors.Is(err, macsec.ErrPNLimit)
			}
		}
		return false
	})
	ceiling := r.recorded(t)
	if next := r.secy.TxSA(0).NextPN(); next >= ceiling {
		t.Fatalf("stopped at PN %d, at or past the ceiling %d", next, ceiling)
	}
	if s := r.g.status(); !strings.Contains(s, "cannot record the transmit PN ceiling (input/output error)") {
		t.Fatalf("status %q", s)
	}
	if !strings.Contains(r.log.String(), "cannot record the transmit PN ceiling") {
		t.Errorf("not logged:\n%s", r.log.String())
	}
	// Writes work again: transmission resumes where it stopped.
	stoppedAt := r.secy.TxSA(0).NextPN()
	r.gate.set(true, false)
	eventually(t, "transmission resumes", func() bool { return r.g.status() == "" })
	if pn, err := r.send(); err != nil || pn != stoppedAt {
		t.Fatalf("after recovery: PN %d, %v; want %d", pn, err, stoppedAt)
	}
	if !strings.Contains(r.log.String(), "transmission resumes") {
		t.Errorf("recovery not logged:\n%s", r.log.String())
	}
}

// TestPNGuardStopsTheKernelSABeforeTheCeiling runs the guard as it runs
// on the kernel datapath, which has no PN limit: the guard takes the SA
// away before the ceiling while the next one is not recorded, and puts it
// back at the old ceiling once it is.
func TestPNGuardStopsTheKernelSABeforeTheCeiling(t *testing.T) {
	r := newGuardRig(t, true)
	ceiling := r.recorded(t)
	r.gate.set(false, false)
	var last uint64
	eventually(t, "the SA is taken away", func() bool {
		for range 10 {
			pn, err := r.send()
			if errors.Is(err, macsec.ErrNoTxSA) {
				return true
			}
			if err != nil {
				t.Fatal(err)
			}
			last = pn
			time.Sleep(time.Millisecond) // the kernel's rate, scaled to the reserve
		}
		return false
	})
	if last >= ceiling {
		t.Fatalf("the kernel SA sent PN %d, at or past the ceiling %d", last, ceiling)
	}
	if s := r.g.status(); !strings.Contains(s, "near the recorded ceiling") {
		t.Fatalf("status %q", s)
	}
	r.gate.set(true, false)
	eventually(t, "the SA comes back", func() bool { return r.secy.TxSA(0) != nil && r.g.status() == "" })
	if pn, err := r.send(); err != nil || pn != ceiling {
		t.Fatalf("after the write: PN %d, %v; want the old ceiling %d", pn, err, ceiling)
	}
	if c := r.recorded(t); c <= ceiling {
		t.Fatalf("ceiling %d, want above %d", c, ceiling)
	}
}
