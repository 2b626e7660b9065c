package macsec

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
)

// SAParams are what key agreement (or a static configuration) installs for
// one secure association.
type SAParams struct {
	AN   uint8
	Key  Key
	PN   uint64   // transmit: next PN to send; receive: lowest acceptable PN
	SSCI uint32   // XPN only: short SCI of the SC's transmitter
	Salt [12]byte // XPN only
}

// saCrypto is the part of an SA that builds IVs and runs GCM.
type saCrypto struct {
	aead cipher.AEAD
	key  Key
	xpn  bool
	sci  SCI      // non-XPN IV prefix
	ssci uint32   // XPN IV prefix
	salt [12]byte // XPN IV mask
}

func newSACrypto(suite CipherSuite, sci SCI, p SAParams) (saCrypto, error) {
	if p.AN > 3 {
		return saCrypto{}, fmt.Errorf("association number %d out of range 0..3", p.AN)
	}
	if p.Key.Len() != suite.KeyLen() {
		return saCrypto{}, fmt.Errorf("%s needs a %d-byte key, got %d bytes", suite, suite.KeyLen(), p.Key.Len())
	}
	if p.PN == 0 {
		return saCrypto{}, errors.New("packet number 0 is not valid: PNs start at 1")
	}
	if p.PN > suite.MaxPN() {
		return saCrypto{}, fmt.Errorf("packet number %#x exceeds the 32-bit PN space of %s", p.PN, suite)
	}
	block, err := aes.NewCipher(p.Key.Bytes())
	if err != nil {
		return saCrypto{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return saCrypto{}, err
	}
	// Keep our own copy so the caller's Key can be wiped independently.
	return saCrypto{aead: aead, key: NewKey(p.Key.Bytes()), xpn: suite.XPN(), sci: sci, ssci: p.SSCI, salt: p.Salt}, nil
}

// iv builds the 96-bit GCM IV: SCI || PN32, or (SSCI || PN64) XOR salt.
func (c *saCrypto) iv(iv *[12]byte, pn uint64) {
	if !c.xpn {
		binary.BigEndian.PutUint64(iv[:8], uint64(c.sci))
		binary.BigEndian.PutUint32(iv[8:], uint32(pn))
		return
	}
	binary.BigEndian.PutUint32(iv[:4], c.ssci)
	binary.BigEndian.PutUint64(iv[4:], pn)
	for i := range iv {
		iv[i] ^= c.salt[i]
	}
}

// TxSA is a transmit secure association.
type TxSA struct {
	AN        uint8
	crypto    saCrypto
	nextPN    atomic.Uint64 // 0 once the PN space is used up
	maxPN     uint64
	threshold uint64
	limit     atomic.Uint64 // PNs at or above it are refused; 0: no limit
	warned    atomic.Bool
	onPN      func(an uint8, pn uint64)
	Stats     TxSAStats
}

// TxSAStats are the per-SA transmit counters of IEEE 802.1AE 10.7.
type TxSAStats struct {
	OutPktsProtected atomic.Uint64
	OutPktsEncrypted atomic.Uint64
}

// NextPN is the PN the next frame will carry (0 when the SA is exhausted).
func (sa *TxSA) NextPN() uint64 { return sa.nextPN.Load() }

// Exhausted reports that the SA has sent its last PN and refuses to send.
func (sa *TxSA) Exhausted() bool { return sa.nextPN.Load() == 0 }

// PastThreshold reports that the SA's PN has passed the rekey threshold.
func (sa *TxSA) PastThreshold() bool {
	pn := sa.nextPN.Load()
	return pn == 0 || pn > sa.threshold
}

// takePN reserves the next PN. It never hands out a PN twice, and it never
// wraps: past the last PN it fails with ErrPNExhausted for good. At the
// PN limit it fails with ErrPNLimit until the limit is raised.
func (sa *TxSA) takePN() (uint64, error) {
	for {
		pn := sa.nextPN.Load()
		if pn == 0 {
			return 0, ErrPNExhausted
		}
		if lim := sa.limit.Load(); lim != 0 && pn >= lim {
			return 0, ErrPNLimit
		}
		next := pn + 1 // wraps to 0 for XPN at 2^64-1: exhausted
		if pn >= sa.maxPN {
			next = 0
		}
		if sa.nextPN.CompareAndSwap(pn, next) {
			if pn > sa.threshold && sa.onPN != nil && !sa.warned.Swap(true) {
				sa.onPN(sa.AN, pn)
			}
			return pn, nil
		}
	}
}

// PNLimit is the PN the SA stops before, 0 for none.
func (sa *TxSA) PNLimit() uint64 { return sa.limit.Load() }

// RxSA is a receive secure association. Its PN state is lock-free: many
// datapath workers validate frames on one SA at once.
type RxSA struct {
	AN     uint8
	crypto saCrypto
	window uint64
	nextPN atomic.Uint64 // one above the highest PN validated so far
	floor  atomic.Uint64 // lowest PN set by key agreement
	Stats  RxSAStats
}

// RxSAStats are the per-SA receive counters of IEEE 802.1AE 10.7.
type RxSAStats struct {
	InPktsOK       atomic.Uint64
	InPktsInvalid  atomic.Uint64
	InPktsNotValid atomic.Uint64
}

// LowestPN is the lowest PN the SA still accepts: the replay window below
// the next expected PN, never below what key agreement set.
func (sa *RxSA) LowestPN() uint64 {
	low := uint64(1)
	if next := sa.nextPN.Load(); next > sa.window+1 {
		low = next - sa.window
	}
	return max(low, sa.floor.Load())
}

// NextPN is one above the highest PN validated on the SA.
func (sa *RxSA) NextPN() uint64 { return sa.nextPN.Load() }

// recoverPN rebuilds the full PN from its low 32 bits (IEEE 802.1AEbw
// 10.6.2): the smallest PN with those low bits that is not below the lowest
// acceptable PN.
func recoverPN(xpn bool, low32 uint32, lowest uint64) uint64 {
	if !xpn {
		return uint64(low32)
	}
	hi := lowest >> 32
	if low32 < uint32(lowest) {
		hi++
	}
	return hi<<32 | uint64(low32)
}

// update records a validated PN. It reports false if, with replay
// protection on, another worker moved the window past pn meanwhile.
func (sa *RxSA) update(pn uint64, replay bool) bool {
	for {
		next := sa.nextPN.Load()
		if pn < next {
			return !replay || pn >= sa.LowestPN()
		}
		if sa.nextPN.CompareAndSwap(next, pn+1) {
			return true
		}
	}
}

// KeyFingerprint identifies the SA's key without revealing it.
func (sa *TxSA) KeyFingerprint() string { return sa.crypto.key.Fingerprint() }

// KeyFingerprint identifies the SA's key without revealing it.
func (sa *RxSA) KeyFingerprint() string { return sa.crypto.key.Fingerprint() }
