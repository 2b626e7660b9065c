package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Key is a release key the box trusts.
type Key struct {
	Name   string            `json:"name"`
	ID     string            `json:"id"`
	Public ed25519.PublicKey `json:"ed25519"`
	// Development marks the key make generates when no signing key is
	// given: fine on a lab box, never for production.
	Development bool `json:"development,omitempty"`
	// Source says where the box got the key: "image" (built in) or
	// "console" (added on the serial console).
	Source string `json:"source,omitempty"`
}

// String is how the CLI names a key.
func (k Key) String() string {
	s := k.ID + " " + k.Name
	if k.Development {
		s += " [development key]"
	}
	return s
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Trust is the set of release keys a box accepts bundles from.
type Trust []Key

// ByID finds a key.
func (t Trust) ByID(id string) (Key, bool) {
	for _, k := range t {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

func (t Trust) String() string {
	if len(t) == 0 {
		return "no key"
	}
	var s []string
	for _, k := range t {
		s = append(s, k.ID+" ("+k.Name+")")
	}
	return strings.Join(s, ", ")
}

// LoadTrust reads a trust file (a JSON list of keys), checking each ID.
func LoadTrust(path, source string) (Trust, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Trust
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range t {
		if len(t[i].Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: key %q is not an ed25519 public key", path, t[i].Name)
		}
		t[i].ID = KeyID(t[i].Public)
		t[i].Source = source
	}
	return t, nil
}

// MarshalTrust is the trust file's content.
func MarshalTrust(t Trust) []byte {
	b, _ := json.MarshalIndent(t, "", "  ")
	return append(b, '\n')
}

// Signing keys are PKCS#8 PEM files ("PRIVATE KEY"), public keys PKIX PEM
// ("PUBLIC KEY"): what `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout` write.

// LoadSigningKey reads an ed25519 private key.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: want a PEM \"PRIVATE KEY\" (openssl genpkey -algorithm ed25519)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is %T, want ed25519", path, k)
	}
	return ek, nil
}

// GenerateSigningKey writes a new ed25519 private key (mode 0600).
func GenerateSigningKey(path string) (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// MarshalPublicKey is a public key as a PEM "PUBLIC KEY".
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM "PUBLIC KEY", or the base64 of its DER on one
// line (what fits a console command).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("want a PEM \"PUBLIC KEY\", got %q", blk.Type)
		}
		der = blk.Bytes
	} else if d, err := decodeB64(strings.TrimSpace(string(b))); err == nil {
		der = d
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not an ed25519 public key (openssl pkey -pubout writes one)")
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want ed25519", k)
	}
	return ek, nil
}
