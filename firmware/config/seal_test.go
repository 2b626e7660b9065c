package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkaConfig(cak string) *Config {
	return &Config{Links: []Link{{Name: "l0", Plain: "eth0", Line: "eth1",
		MKA: &MKA{KeyChain: []CAKEntry{{CKN: "aa01", CAK: cak}}}}}}
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
