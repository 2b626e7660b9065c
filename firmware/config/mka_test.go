package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodMKA = `{"links": [{"name": "l", "plain": "p", "line": "q", "mka": {
  "key_chain": [
    {"ckn": "0a0b", "cak_file": "cak1", "end": "2026-12-01T00:00:00Z"},
    {"ckn": "0c0d", "cak": "%s", "start": "2026-11-30T00:00:00Z"}
  ],
  "priority": 0, "eapol_destination": "01:80:c2:00:00:0e", "rekey_interval": "1h", "icv_indicator": true}}]}`

func TestLoadMKAConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cak1", strings.Repeat("11", 16), 0o600)
	c, err := Load(write(t, dir, "c.json", strings.Replace(goodMKA, "%s", key256, 1), 0o644))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Links[0].MKA
	if m.KeyServerPriority() != 0 || m.DestinationAddress().String() != "01:80:c2:00:00:0e" || m.Interval() != time.Hour {
		t.Errorf("priority %d destination %s interval %s", m.KeyServerPriority(), m.DestinationAddress(), m.Interval())
	}
	k, err := m.KeyChain[0].LoadCAK(c.KeyDir())
	if err != nil || k.Len() != 16 {
		t.Errorf("CAK from file: %v, %d octets", err, k.Len())
	}
	if s, e := m.KeyChain[1].Validity(); s.IsZero() || !e.IsZero() {
		t.Errorf("validity %s %s", s, e)
	}
}

func TestCheckMKAErrors(t *testing.T) {
	cfg := `{"links": [{"name": "l", "plain": "p", "line": "q", "mka": {
  "key_chain": [
    {"ckn": "abc", "cak": "0011"},
    {"ckn": "0a0b", "cak": "` + key256 + `", "start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    {"ckn": "0a0b", "cak": "zz", "start": "tomorrow"}
  ],
  "priority": 300, "eapol_destination": "01:80:c2", "rekey_interval": "1s"}}]}`
	all := problems(t, cfg)
	for _, w := range []string{
		"links[0].mka.key_chain[0].ckn: not hex",
		"links[0].mka.key_chain[0].cak: key is 2 octets (4 hex digits): want 16 or 32 octets (32 or 64 hex digits)",
		"links[0].mka.key_chain[1].end: 2026-12-01T00:00:00Z is not after start",
		"links[0].mka.key_chain[2].ckn: same CKN as key_chain[1]",
		"links[0].mka.key_chain[2].cak: key is not hex",
		`links[0].mka.key_chain[2].start: "tomorrow": want RFC 3339`,
		"links[0].mka.priority: 300: want 0..255",
		`links[0].mka.eapol_destination: "01:80:c2"`,
		`links[0].mka.rekey_interval: "1s": want a duration of at least 10s`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
	if strings.Contains(all, key256) {
		t.Error("an error contains a CAK")
	}
	none, _ := Parse([]byte(`{"links": [{"name": "l", "plain": "p", "line": "q"}]}`))
	if e := none.Check().Error(); !strings.Contains(e, "links[0].mka: missing") {
		t.Errorf("unkeyed link: %s", e)
	}
}

// Key file paths are kept as written, relative to the config file: a
// config loaded through a relative or absolute path, cloned and stored
// again still says "keys/cak-aa", and its keys still load.
func TestKeyFilePathsStayAsWritten(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a", "keys"), 0o700)
	write(t, filepath.Join(root, "a", "keys"), "cak-aa", strings.Repeat("aa", 32), 0o600)
	body := `{"links": [{"name": "l", "plain": "p", "line": "q", "mka": {"key_chain": [{"ckn": "0a0b", "cak_file": "keys/cak-aa"}]}}]}`
	write(t, filepath.Join(root, "a"), "secwire.json", body, 0o600)
	t.Chdir(root)
	for _, path := range []string{"a/secwire.json", filepath.Join(root, "a", "secwire.json")} {
		c, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		d := c.Clone()
		if got := d.Links[0].MKA.KeyChain[0].CAKFile; got != "keys/cak-aa" {
			t.Errorf("loaded through %s: cak_file became %q", path, got)
		}
		if !strings.Contains(string(d.Marshal()), `"cak_file": "keys/cak-aa"`) {
			t.Errorf("loaded through %s, stored as:\n%s", path, d.Marshal())
		}
		if errs := d.Check(); len(errs) > 0 {
			t.Errorf("the clone no longer finds its key file: %v", errs)
		}
		k, err := d.Links[0].MKA.KeyChain[0].LoadCAK(d.KeyDir())
		if err != nil || k.Len() != 32 {
			t.Errorf("CAK through %s: %v", path, err)
		}
	}
}
