package mka

// The key chain: which CAKs have a participant now, which participant
// is principal (the one whose SAKs the SecY uses), and changing the chain
// of a running KaY.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

func checkChain(keys []CAK, fallback *CAK) error {
	if len(keys) == 0 {
		return errors.New("mka: empty key chain")
	}
	for i, k := range keys {
		if err := checkCAK(k.Key.Bytes(), k.CKN); err != nil {
			return fmt.Errorf("mka: key chain entry %d: %w", i, err)
		}
	}
	if f := fallback; f != nil {
		if err := checkCAK(f.Key.Bytes(), f.CKN); err != nil {
			return fmt.Errorf("mka: fallback key: %w", err)
		}
		for _, k := range keys {
			if bytes.Equal(k.CKN, f.CKN) {
				return fmt.Errorf("mka: the fallback CKN %x is also in the key chain; give it its own CKN", f.CKN)
			}
		}
	}
	return nil
}

// SetKeyChain replaces the key chain and the fallback CAK of a running
// KaY. Participants whose CAK is unchanged go on; a changed or removed
// CAK's participant stops, and a new one starts. The SecY keeps its SAKs
// while the CA moves, as at a key chain rollover: fixing one end's CAK
// while the link runs on the fallback loses no frame.
func (k *KaY) SetKeyChain(keys []CAK, fallback *CAK) error {
	if err := checkChain(keys, fallback); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.o.Keys, k.o.Fallback = keys, fallback
	chain := keys
	if fallback != nil {
		chain = append(chain[:len(chain):len(chain)], *fallback)
	}
	for i := 0; i < len(k.parts); {
		p := k.parts[i]
		j := slices.IndexFunc(chain, func(c CAK) bool { return bytes.Equal(c.CKN, p.key.CKN) })
		if j >= 0 && bytes.Equal(chain[j].Key.Bytes(), p.key.Key.Bytes()) && p.fallback == (j >= len(keys)) {
			p.key.Start, p.key.End = chain[j].Start, chain[j].End
			i++
			continue
		}
		k.log.Info("key chain changed: MKA participant stopped", "ckn", p.name)
		k.parts = slices.Delete(k.parts, i, i+1)
		for _, pe := range p.peers {
			k.dropRxSCIfUnused(pe.sci)
		}
	}
	k.poke()
	return nil
}

// principalChanged logs the fallback CAK taking over or giving way.
func (k *KaY) principalChanged(p *participant) {
	switch {
	case p.fallback:
		k.log.Warn("fallback CAK takes over: no key chain CA has a live peer", "ckn", p.name)
	case k.latest.ca.fallback:
		k.log.Info("key chain CA is live again: the fallback CAK gives way", "ckn", p.name)
	}
}

// schedule starts participants for CAKs that entered their validity
// period (and for the fallback CAK) and stops those that left it.
func (k *KaY) schedule(now time.Time) {
	chain := k.o.Keys
	if f := k.o.Fallback; f != nil {
		chain = append(chain[:len(chain):len(chain)], *f)
	}
	for i, c := range chain {
		active := (c.Start.IsZero() || !now.Before(c.Start)) && (c.End.IsZero() || now.Before(c.End))
		j := slices.IndexFunc(k.parts, func(p *participant) bool { return bytes.Equal(p.key.CKN, c.CKN) })
		switch {
		case active && j < 0:
			p, err := newParticipant(c, now)
			if err != nil {
				k.log.Error("cannot start MKA participant", "ckn", hex.EncodeToString(c.CKN), "err", err)
				continue
			}
			p.fallback = i >= len(k.o.Keys)
			k.log.Info("MKA participant started", "ckn", p.name, "mi", p.mi, "fallback", p.fallback)
			k.parts = append(k.parts, p)
		case !active && j >= 0:
			p := k.parts[j]
			k.log.Info("CAK left its validity period; participant stopped", "ckn", p.name)
			k.parts = slices.Delete(k.parts, j, j+1)
			for _, pe := range p.peers {
				k.dropRxSCIfUnused(pe.sci)
			}
		}
	}
}

// principal is the participant whose SAKs the SecY uses: the newest key
// chain CAK's participant with a live peer, else the fallback's.
func (k *KaY) principal() *participant {
	var best, fallback *participant
	bestIdx := -1
	for _, p := range k.parts {
		if !p.hasLive() {
			continue
		}
		if p.fallback {
			fallback = p
			continue
		}
		idx := slices.IndexFunc(k.o.Keys, func(c CAK) bool { return bytes.Equal(c.CKN, p.key.CKN) })
		if best == nil || p.key.Start.After(best.key.Start) || (p.key.Start.Equal(best.key.Start) && idx > bestIdx) {
			best, bestIdx = p, idx
		}
	}
	if best == nil {
		return fallback
	}
	return best
}
