package macsec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Key holds secret key bytes. It never prints its value: fmt shows only a
// short fingerprint, and Wipe zeroes it when the key is replaced.
type Key struct {
	b []byte
}

// NewKey copies b into a new Key.
func NewKey(b []byte) Key { return Key{b: append([]byte(nil), b...)} }

// ParseKeyHex decodes a hex key of the given length in bytes (0 accepts any).
// The error never repeats the input.
func ParseKeyHex(s string, want ...int) (Key, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		if len(want) > 0 {
			return Key{}, fmt.Errorf("key is not hex (%d characters given): want %s", len(s), octets(want))
		}
		return Key{}, fmt.Errorf("key is not hex (%d characters given)", len(s))
	}
	if len(want) > 0 {
		ok := false
		for _, w := range want {
			ok = ok || len(b) == w
		}
		if !ok {
			wipe(b)
			return Key{}, fmt.Errorf("key is %d octets (%d hex digits): want %s", len(b), 2*len(b), octets(want))
		}
	}
	return Key{b: b}, nil
}

// octets says "16 or 32 octets (32 or 64 hex digits)".
func octets(n []int) string {
	var o, h []string
	for _, x := range n {
		o, h = append(o, fmt.Sprint(x)), append(h, fmt.Sprint(2*x))
	}
	return strings.Join(o, " or ") + " octets (" + strings.Join(h, " or ") + " hex digits)"
}

// Bytes returns the key bytes. Callers must not keep or print them.
func (k Key) Bytes() []byte { return k.b }

// Len is the key length in bytes.
func (k Key) Len() int { return len(k.b) }

// Wipe zeroes the key bytes in place.
func (k Key) Wipe() { wipe(k.b) }

// Fingerprint is the first 8 hex digits of the key's SHA-256: enough to tell
// two keys apart in `show` output, useless for recovering them.
func (k Key) Fingerprint() string {
	if len(k.b) == 0 {
		return "none"
	}
	s := sha256.Sum256(k.b)
	return "sha256:" + hex.EncodeToString(s[:4])
}

func (k Key) String() string { return k.Fingerprint() }

// Format makes every verb (%x, %v, %#v, %s) print the fingerprint.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.Fingerprint()) }

// GoString keeps %#v from printing the bytes.
func (k Key) GoString() string { return k.Fingerprint() }

func wipe(b []byte) { clear(b) }
