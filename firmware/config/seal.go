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
	"reflect"
	"strings"

	"github.com/secwire/secwire/firmware/store"
)

// Secrets at rest: CAKs and static SAKs given inline are sealed with
// AES-256-GCM under a device key before they are written, so a stored or
// exported config (and every rollback copy) carries no key in clear. The
// device key lives beside the config (SealKeyName, mode 0600) and
// `request system zeroize` deletes it with everything else. This protects
// copies of the config; without a TPM, someone holding the whole config
// partition holds the device key too. With a TPM 2.0 the key is sealed by
// it instead (sealtpm.go) and the partition alone opens nothing.

// SealKeyName is the device key's file name, beside the config file.
const SealKeyName = "seal.key"

const sealedPrefix = "sealed:"

// Sealer seals and opens secrets with the device key.
type Sealer struct{ aead cipher.AEAD }

// ErrDamagedKey is a device key file of the wrong size.
var ErrDamagedKey = errors.New("device key damaged")

// LoadSealer reads the device key at path, creating it when missing; a
// TPM-sealed key (path + ".tpm") is opened by the TPM instead.
func LoadSealer(path string) (*Sealer, error) {
	if blob, err := os.ReadFile(path + ".tpm"); err == nil {
		k, err := unsealTPMKey(path+".tpm", blob)
		if err != nil {
			return nil, err
		}
		return newSealer(path+".tpm", k)
	}
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
	return newSealer(path, k)
}

func newSealer(path string, k []byte) (*Sealer, error) {
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

// A sealed value is bound to its field: the GCM additional data names
// the link and the CKN (or SCI and AN) it belongs to, so a sealed CAK
// copied into another field of the file does not open. Values sealed
// before the binding (plain "sealed:") still open with the old fixed
// additional data; the next commit seals them again, bound.
const (
	boundPrefix = sealedPrefix + "2:"
	legacyAAD   = "secwire secret"
)

func (s *Sealer) seal(v, field string) string {
	if v == "" || IsSealed(v) {
		return v
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	p := []byte(v)
	defer clear(p)
	return boundPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, p, []byte(legacyAAD+" "+field)))
}

func (s *Sealer) open(v, field string) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	aad, b64 := legacyAAD+" "+field, v[len(boundPrefix):]
	if !strings.HasPrefix(v, boundPrefix) {
		aad, b64 = legacyAAD, v[len(sealedPrefix):]
	}
	b, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("sealed value is damaged")
	}
	p, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", errors.New("does not open: sealed for another field (" + field + "), or with another device key (was " + SealKeyName + " replaced or zeroized?)")
	}
	defer clear(p)
	return string(p), nil
}

// secrets calls f with the path (as Check reports it), the field the
// value is bound to when sealed, and a pointer to every inline secret.
func (c *Config) secrets(f func(path, field string, v *string)) {
	for i := range c.Links {
		l := &c.Links[i]
		p, link := fmt.Sprintf("links[%d]", i), fmt.Sprintf("links[%q]", l.Name)
		if m := l.MKA; m != nil {
			for j := range m.KeyChain {
				e := &m.KeyChain[j]
				f(fmt.Sprintf("%s.mka.key_chain[%d].cak", p, j), fmt.Sprintf("%s.mka.key_chain[%q].cak", link, e.CKN), &e.CAK)
			}
			if fb := m.Fallback; fb != nil {
				f(p+".mka.fallback_key.cak", fmt.Sprintf("%s.mka.fallback_key[%q].cak", link, fb.CKN), &fb.CAK)
			}
		}
		if s := l.Static; s != nil {
			f(p+".static_keys.tx.key", link+".static_keys.tx.key", &s.TX.Key)
			for j := range s.RX {
				for k := range s.RX[j].SAs {
					sa := &s.RX[j].SAs[k]
					f(fmt.Sprintf("%s.static_keys.rx[%d].sas[%d].key", p, j, k),
						fmt.Sprintf("%s.static_keys.rx[%q].sas[an=%d].key", link, s.RX[j].SCI, sa.AN), &sa.Key)
				}
			}
		}
	}
}

// Sealed returns a copy of c with every inline secret sealed.
func (c *Config) Sealed(s *Sealer) *Config {
	d := c.Clone()
	d.secrets(func(_, field string, v *string) { *v = s.seal(*v, field) })
	return d
}

// Unseal opens every sealed secret of c in place. With a nil sealer any
// sealed value is an error.
func (c *Config) Unseal(s *Sealer) error {
	var errs Errors
	c.secrets(func(path, field string, v *string) {
		if !IsSealed(*v) {
			return
		}
		if s == nil {
			errs = append(errs, Error{path, "sealed, but there is no device key (" + SealKeyName + ") beside the config"})
			return
		}
		p, err := s.open(*v, field)
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
	c.secrets(func(_, _ string, v *string) { found = found || IsSealed(*v) })
	return found
}

// Clone is a deep copy. Strings are shared, not copied: a clone made for
// every prompt or login must not scatter more copies of a CAK over the
// heap (a JSON round trip did).
func (c *Config) Clone() *Config {
	var d Config
	deepCopy(reflect.ValueOf(&d).Elem(), reflect.ValueOf(c).Elem())
	d.keyDir = c.keyDir
	return &d
}

// Copy is a deep copy of the system settings (users, management, SSH):
// what the management plane reads at every login and prompt, without
// the links and their keys.
func (s *System) Copy() System {
	var d System
	deepCopy(reflect.ValueOf(&d).Elem(), reflect.ValueOf(s).Elem())
	return d
}

// deepCopy copies src into dst (the config model holds only structs,
// pointers, slices, maps and plain values).
func deepCopy(dst, src reflect.Value) {
	if src.Kind() != reflect.Pointer && IsText(src.Type()) && src.Kind() != reflect.Slice {
		dst.Set(src) // a value such as netip.Addr: its state is unexported, and immutable
		return
	}
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.New(src.Type().Elem()))
		deepCopy(dst.Elem(), src.Elem())
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
		for i := range src.Len() {
			deepCopy(dst.Index(i), src.Index(i))
		}
	case reflect.Struct:
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() { // unexported state is the caller's to copy
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeMapWithSize(src.Type(), src.Len()))
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			dst.SetMapIndex(it.Key(), v)
		}
	case reflect.Interface, reflect.Chan, reflect.Func:
		panic("config: deepCopy of " + src.Type().String() + ": the config model holds only plain data")
	default:
		dst.Set(src)
	}
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
		if _, err := os.Stat(k + ".tpm"); err != nil {
			return nil, nil
		}
	}
	return LoadSealer(k)
}
