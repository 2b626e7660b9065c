package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/offload/macsec"
)

// pnReserve is how far ahead of the transmit PN the guard records a
// ceiling: at 15 Mpps it lasts a second, and the guard looks every 200 ms.
const pnReserve = 1 << 24

// pnGuard keeps a static-key transmit SA from ever reusing a PN across
// daemon restarts (GCM with a repeated IV under one key gives the key
// away): before the SA's PNs reach a ceiling recorded on disk, it records
// a higher one; a restarted daemon resumes at the recorded ceiling.
type pnGuard struct {
	path    string
	ceiling uint64
}

// newPNGuard returns the guard for (SCI, AN, key) and the PN to start at.
func newPNGuard(dir string, sci macsec.SCI, an uint8, key macsec.Key, configured uint64) (*pnGuard, uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("PN state directory: %w", err)
	}
	name := fmt.Sprintf("txpn-%s-an%d-%s", sci, an, strings.TrimPrefix(key.Fingerprint(), "sha256:"))
	g := &pnGuard{path: filepath.Join(dir, name)}
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
	if err := g.record(start); err != nil {
		return nil, 0, err
	}
	return g, start, nil
}

func (g *pnGuard) record(next uint64) error {
	c := next + pnReserve
	if c < next {
		c = ^uint64(0)
	}
	if err := store.WriteAtomic(g.path, []byte(strconv.FormatUint(c, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("recording the transmit PN ceiling: %w", err)
	}
	g.ceiling = c
	return nil
}

// check moves the ceiling up when the SA's next PN is within half a
// reserve of it.
func (g *pnGuard) check(next uint64) error {
	if next+pnReserve/2 < g.ceiling {
		return nil
	}
	return g.record(next)
}
