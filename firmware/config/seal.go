package config

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/secwire/secwire/firmware/store"
)

// Secrets at rest: CAKs and static SAKs given inline are sealed with
// AES-256-GCM under a device key before they are written, so a stored or
// exported config (and every rollback copy) carries no key in clear. The
// device key lives beside the config (SealKeyName, mode 0600) and
// `request system zeroize` deletes it with everything else. This protects
// copies of the config; someone holding the whole config partition holds
// the device key too (there is no TPM to seal it to).

// SealKeyName is the device key's file name, beside the config file.
const SealKeyName = "seal.key"

const sealedPrefix = "sealed:"

// Sealer seals and opens secrets with the device key.
type Sealer struct{ aead cipher.AEAD }

// ErrDamagedKey is a device key file of the wrong size.
var ErrDamagedKey = errors.New("device key damaged")

// LoadSealer reads the device key at path, creating it when missing.
func LoadSealer(path string) (*Sealer, error) {
	k, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := store.WriteAtomic(path, k, 0o600); err != nil {
			return nil, fmt.Errorf("device key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	defer clear(k)
	if len(k) != 32 {
		return nil, fmt.Errorf("%w: %s has %d bytes, want 32", ErrDamagedKey, path, len(k))
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: a}, nil
}

// IsSealed reports whether a stored value is sealed.
func IsSealed(v string) bool { return strings.HasPrefix(v, sealedPrefix) }

func (s *Sealer) seal(v string) string {
	if v == "" || IsSealed(v) {
		return v
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(v), []byte("secwire secret")))
}

func (s *Sealer) open(v string) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(v[len(sealedPrefix):])
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("sealed value is damaged")
	}
	p, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte("secwire secret"))
	if err != nil {
		return "", errors.New("sealed with another device key (was " + SealKeyName + " replaced or zeroized?)")
	}
	defer clear(p)
	return string(p), nil
}

// secrets calls f with the path and a pointer to every inline secret.
func (c *Config) secrets(f func(path string, v *string)) {
	for i := range c.Links {
		l := &c.Links[i]
		if m := l.MKA; m != nil {
			for j := range m.KeyChain {
				f(fmt.Sprintf("links[%d].mka.key_chain[%d].cak", i, j), &m.KeyChain[j].CAK)
			}
			if fb := m.Fallback; fb != nil {
				f(fmt.Sprintf("links[%d].mka.fallback_key.cak", i), &fb.CAK)
			}
		}
		if s := l.Static; s != nil {
			f(fmt.Sprintf("links[%d].static_keys.tx.key", i), &s.TX.Key)
			for j := range s.RX {
				for k := range s.RX[j].SAs {
					f(fmt.Sprintf("links[%d].static_keys.rx[%d].sas[%d].key", i, j, k), &s.RX[j].SAs[k].Key)
				}
			}
		}
	}
}

// Sealed returns a copy of c with every inline secret sealed.
func (c *Config) Sealed(s *Sealer) *Config {
	d := c.Clone()
	d.secrets(func(_ string, v *string) { *v = s.seal(*v) })
	return d
}

// Unseal opens every sealed secret of c in place. With a nil sealer any
// sealed value is an error.
func (c *Config) Unseal(s *Sealer) error {
	var errs Errors
	c.secrets(func(path string, v *string) {
		if !IsSealed(*v) {
			return
		}
		if s == nil {
			errs = append(errs, Error{path, "sealed, but there is no device key (" + SealKeyName + ") beside the config"})
			return
		}
		p, err := s.open(*v)
		if err != nil {
			errs = append(errs, Error{path, err.Error()})
			return
		}
		*v = p
	})
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (c *Config) hasSealed() bool {
	found := false
	c.secrets(func(_ string, v *string) { found = found || IsSealed(*v) })
	return found
}

// Clone is a deep copy.
func (c *Config) Clone() *Config {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // every field is plain data
	}
	var d Config
	if err := json.Unmarshal(b, &d); err != nil {
		panic(err)
	}
	d.keyDir = c.keyDir
	return &d
}

// Marshal is the stored form of c: indented JSON.
func (c *Config) Marshal() []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// sealerBeside opens the device key beside a config file, nil if none.
func sealerBeside(path string) (*Sealer, error) {
	k := filepath.Join(filepath.Dir(path), SealKeyName)
	if _, err := os.Stat(k); err != nil {
		return nil, nil
	}
	return LoadSealer(k)
}
