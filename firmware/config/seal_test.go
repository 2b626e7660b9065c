package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkaConfig(cak string) *Config {
	return &Config{Links: []Link{{Name: "l0", Plain: "eth0", Line: "eth1",
		MKA: &MKA{KeyChain: []CAKEntry{{CKN: Hex{0xaa, 0x01}, CAK: cak}}}}}}
}

func TestSealedConfigHasNoKeyAndLoads(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSealer(filepath.Join(dir, SealKeyName))
	if err != nil {
		t.Fatal(err)
	}
	cak := strings.Repeat("5a", 32)
	stored := mkaConfig(cak).Sealed(s).Marshal()
	if strings.Contains(string(stored), cak) || !strings.Contains(string(stored), `"cak": "sealed:`) {
		t.Fatalf("stored config:\n%s", stored)
	}
	p := filepath.Join(dir, "secwire.json")
	write(t, dir, "secwire.json", string(stored), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Links[0].MKA.KeyChain[0].CAK != cak {
		t.Fatal("unsealed CAK differs")
	}
	// Another device's key (or none) cannot open it, and the error says
	// which field without showing any of it.
	os.Remove(filepath.Join(dir, SealKeyName))
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "links[0].mka.key_chain[0].cak: sealed, but there is no device key") {
		t.Fatalf("without the device key: %v", err)
	}
	if _, err := LoadSealer(filepath.Join(dir, SealKeyName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "another device key") || strings.Contains(err.Error(), "sealed:") {
		t.Fatalf("with another device key: %v", err)
	}
}

// A sealed value is bound to its field: copied into another link, or to
// another CKN of the same link, it does not open, and the error names
// the field it was moved to without showing the value.
func TestSealedValueMovedToAnotherFieldFails(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSealer(filepath.Join(dir, SealKeyName))
	if err != nil {
		t.Fatal(err)
	}
	cakA, cakB := strings.Repeat("a1", 16), strings.Repeat("b2", 16)
	c := &Config{Links: []Link{
		{Name: "l0", Plain: "eth0", Line: "eth1", MKA: &MKA{KeyChain: []CAKEntry{{CKN: Hex{0x01}, CAK: cakA}, {CKN: Hex{0x02}, CAK: cakB}}}},
		{Name: "l1", Plain: "eth2", Line: "eth3", MKA: &MKA{KeyChain: []CAKEntry{{CKN: Hex{0x01}, CAK: cakB}}}},
	}}
	sealed := c.Sealed(s)
	if err := sealed.Clone().Unseal(s); err != nil {
		t.Fatalf("unseal in place: %v", err)
	}
	for _, tc := range []struct {
		name  string
		move  func(c *Config)
		field string
	}{
		{"to another link", func(c *Config) { c.Links[1].MKA.KeyChain[0].CAK = c.Links[0].MKA.KeyChain[0].CAK }, "links[1].mka.key_chain[0].cak"},
		{"to another CKN", func(c *Config) {
			k := c.Links[0].MKA.KeyChain
			k[0].CAK, k[1].CAK = k[1].CAK, k[0].CAK
		}, "links[0].mka.key_chain[0].cak"},
		{"links renamed", func(c *Config) { c.Links[0].Name, c.Links[1].Name = c.Links[1].Name, c.Links[0].Name }, "links[0].mka.key_chain[0].cak"},
		{"to the fallback key", func(c *Config) {
			c.Links[1].MKA.Fallback = &FallbackKey{CKN: Hex{0x01}, CAK: c.Links[1].MKA.KeyChain[0].CAK}
		}, "links[1].mka.fallback_key.cak"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moved := sealed.Clone()
			tc.move(moved)
			err := moved.Unseal(s)
			if err == nil {
				t.Fatal("a sealed value moved to another field opened")
			}
			if !strings.Contains(err.Error(), tc.field+": does not open: sealed for another field") {
				t.Fatalf("error does not name the field %s: %v", tc.field, err)
			}
			for _, secret := range []string{cakA, cakB, "sealed:"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows %q: %v", secret, err)
				}
			}
		})
	}
	// The same file re-ordered by hand still opens: the binding is by
	// link name and CKN, not by position.
	reordered := sealed.Clone()
	reordered.Links[0], reordered.Links[1] = reordered.Links[1], reordered.Links[0]
	if err := reordered.Unseal(s); err != nil || reordered.Links[1].MKA.KeyChain[0].CAK != cakA {
		t.Fatalf("re-ordered links: %v", err)
	}
}

// Configs sealed before values were bound to their field still load.
func TestLegacySealedValueOpens(t *testing.T) {
	s, err := LoadSealer(filepath.Join(t.TempDir(), SealKeyName))
	if err != nil {
		t.Fatal(err)
	}
	cak := strings.Repeat("c4", 16)
	nonce := make([]byte, s.aead.NonceSize())
	legacy := sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(cak), []byte(legacyAAD)))
	c := mkaConfig(legacy)
	if err := c.Unseal(s); err != nil || c.Links[0].MKA.KeyChain[0].CAK != cak {
		t.Fatalf("legacy sealed value: %v", err)
	}
	if resealed := c.Sealed(s).Links[0].MKA.KeyChain[0].CAK; !strings.HasPrefix(resealed, boundPrefix) {
		t.Fatalf("sealed again as %.10s..., want the bound format", resealed)
	}
}
