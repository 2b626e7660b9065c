package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/offload/macsec"
)

// pnReserve is how far ahead of the transmit PN the guard records a
// ceiling: a new one is written when the PN is half a reserve from it.
const pnReserve = 1 << 24

// pnGuardTick is how often the guard reads the transmit PN. The kernel
// datapath is stopped a quarter reserve (4M PNs) before the ceiling:
// 40 Mpps of headroom at this rate.
const pnGuardTick = 100 * time.Millisecond

// pnSlowWrite is how long a ceiling write may take before the guard says
// transmission is held by it.
const pnSlowWrite = 2 * time.Second

// pnGuard keeps a static-key transmit SA from ever reusing a PN across
// daemon restarts (GCM with a repeated IV under one key gives the key
// away). A restarted daemon resumes at the ceiling recorded on disk, so
// no PN at or above that ceiling may be sent before a higher one is
// durable:
//   - the software datapath's codec refuses PNs at the ceiling (exactly);
//   - the kernel datapath's SA is taken out of use a quarter reserve
//     before it (the guard can only poll the kernel's PN), and put back at
//     the old ceiling once the next one is recorded, as a restart would.
//
// When a ceiling cannot be recorded the link stops transmitting, logs it
// and shows why, and resumes by itself once a write succeeds.
type pnGuard struct {
	path    string
	reserve uint64
	write   func(path string, data []byte) error
	log     *slog.Logger

	// Set by attach.
	seam  macsec.Seam
	an    uint8
	limit pnLimiter // the codec's exact limit; nil on the kernel's datapath
	// reinstall puts the kernel's SA back at pn as the encoding SA.
	reinstall func(pn uint64) error

	mu      sync.Mutex
	durable uint64 // the ceiling on disk: every PN below it may be sent
	stopped bool   // transmission is stopped by the guard
	fault   string // why, "" when it runs
}

// newPNGuard returns the guard for (SCI, AN, key) and the PN to start at,
// with a first ceiling recorded.
func newPNGuard(dir string, sci macsec.SCI, an uint8, key macsec.Key, configured, reserve uint64, log *slog.Logger) (*pnGuard, uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("PN state directory: %w", err)
	}
	if reserve == 0 {
		reserve = pnReserve
	}
	name := fmt.Sprintf("txpn-%s-an%d-%s", sci, an, strings.TrimPrefix(key.Fingerprint(), "sha256:"))
	g := &pnGuard{path: filepath.Join(dir, name), reserve: reserve, an: an, log: log,
		write: func(path string, data []byte) error { return store.WriteAtomic(path, data, 0o600) }}
	start := configured
	if b, err := os.ReadFile(g.path); err == nil {
		stored, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return nil, 0, fmt.Errorf("%s is corrupt; refusing to guess where PNs are safe: rekey, or delete the file only with a new key", g.path)
		}
		start = max(start, stored)
	} else if !os.IsNotExist(err) {
		return nil, 0, err
	}
	c := g.ceiling(start)
	if err := g.write(g.path, ceilingText(c)); err != nil {
		return nil, 0, fmt.Errorf("recording the transmit PN ceiling: %w", err)
	}
	g.durable = c
	return g, start, nil
}

func (g *pnGuard) ceiling(next uint64) uint64 {
	if c := next + g.reserve; c > next {
		return c
	}
	return ^uint64(0)
}

func ceilingText(c uint64) []byte { return []byte(strconv.FormatUint(c, 10) + "\n") }

// attach binds the guard to the installed SA. With a limit (the software
// datapath's codec) transmission is held at the recorded ceiling from now
// on; without, the guard polls the PN.
func (g *pnGuard) attach(seam macsec.Seam, limit pnLimiter, reinstall func(pn uint64) error) error {
	g.seam, g.limit, g.reinstall = seam, limit, reinstall
	if limit != nil {
		return limit.SetTxPNLimit(g.an, g.durable)
	}
	return nil
}

// status is why the guard stopped transmission, "" when it runs.
func (g *pnGuard) status() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fault
}

type pnWrite struct {
	ceiling uint64
	err     error
}

// pnRetry is how long the guard waits after a failed write.
const pnRetry = time.Second

// run records new ceilings ahead of the transmit PN until ctx ends. It
// returns only once no write of its own is in flight: a restarted link's
// guard reads the file next, and a write landing after that could lower
// the ceiling under it. A write that hangs therefore holds up the link's
// stop, which then names the PN ceiling writer as what is stuck.
func (g *pnGuard) run(ctx context.Context) {
	t := time.NewTicker(pnGuardTick)
	defer t.Stop()
	done := make(chan pnWrite, 1)
	var writing time.Time // when the write in flight started; zero: none
	var retry time.Time   // no write before this, after a failure
	for {
		select {
		case <-ctx.Done():
			if !writing.IsZero() {
				<-done
			}
			return
		case w := <-done:
			writing = time.Time{}
			if !g.recorded(w) {
				retry = time.Now().Add(pnRetry)
			}
		case <-t.C:
		}
		next := g.seam.TxNextPN(g.an) // 0 while the kernel's SA is out of use
		g.mu.Lock()
		durable, stopped := g.durable, g.stopped
		g.mu.Unlock()
		if g.limit == nil && !stopped && next != 0 && next+g.reserve/4 >= durable {
			g.stop("transmit PN is near the recorded ceiling and the next one is not recorded yet", true)
			stopped = true
		}
		if !writing.IsZero() {
			if time.Since(writing) > pnSlowWrite {
				// The codec holds at the ceiling by itself; the kernel
				// cannot, so its SA goes.
				g.stop(fmt.Sprintf("transmission is held at the PN ceiling: recording the next one in %s has taken more than %v", filepath.Dir(g.path), pnSlowWrite), g.limit == nil)
			}
			continue
		}
		base := next
		switch {
		case time.Now().Before(retry):
			continue
		case stopped && g.limit == nil:
			base = durable // the kernel's SA comes back at the old ceiling
		case stopped, next != 0 && next+g.reserve/2 >= durable:
		default:
			continue
		}
		c := g.ceiling(base)
		writing = time.Now()
		go func() { done <- pnWrite{c, g.write(g.path, ceilingText(c))} }()
	}
}

// recorded acts on a finished write: a durable ceiling lets transmission
// run up to it; a failed write stops transmission. It reports success.
func (g *pnGuard) recorded(w pnWrite) bool {
	if w.err != nil {
		g.stop(fmt.Sprintf("cannot record the transmit PN ceiling (%v); a restart could reuse PNs: make the state directory writable", w.err), true)
		return false
	}
	g.mu.Lock()
	old := g.durable
	g.durable = w.ceiling
	stopped, faulted := g.stopped, g.fault != ""
	g.mu.Unlock()
	var err error
	switch {
	case g.limit != nil:
		err = g.limit.SetTxPNLimit(g.an, w.ceiling)
	case stopped:
		// Every PN below the old ceiling may have been sent, none at
		// or above it: resume there, as a restart would.
		err = g.reinstall(old)
	}
	if err != nil {
		g.stop("cannot resume transmission: "+err.Error(), true)
		return false
	}
	g.mu.Lock()
	g.stopped, g.fault = false, ""
	g.mu.Unlock()
	if faulted {
		g.log.Info("transmit PN ceiling recorded: transmission resumes", "an", g.an, "ceiling", w.ceiling)
	}
	return true
}

// stop says why transmission is stopped or held, and logs it once. With
// now, it takes the transmit SA out of use: the codec refuses every PN,
// the kernel's SA is removed (the kernel then drops frames, never sending
// them unprotected). Without, the codec keeps sending up to the ceiling.
func (g *pnGuard) stop(why string, now bool) {
	g.mu.Lock()
	already := g.stopped
	changed := g.fault != why
	g.fault = why
	if now {
		g.stopped = true
	}
	g.mu.Unlock()
	if now && !already {
		if g.limit != nil {
			g.limit.SetTxPNLimit(g.an, 1)
		} else {
			g.seam.DeleteTxSA(g.an)
		}
	}
	if changed {
		g.log.Error("static-key link: "+why, "an", g.an)
	}
}
