package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `{
  "system": {"hostname": "enc-a"},
  "links": [{
    "name": "link0", "plain": "eth0", "line": "eth1", "cipher": "gcm-aes-xpn-256",
    "static_keys": {
      "tx": {"an": 0, "key_file": "tx.key", "ssci": "00000001", "salt": "0102030405060708090a0b0c"},
      "rx": [{"sci": "025e00000b010001", "sas": [{"an": 0, "key": "%s", "ssci": "00000002", "salt": "0102030405060708090a0b0c"}]}]
    }
  }]
}`

var key256 = strings.Repeat("ab", 32)

func write(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadGoodConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "tx.key", key256+"\n", 0o600)
	c, err := Load(write(t, dir, "c.json", strings.Replace(good, "%s", key256, 1), 0o644))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Links[0]
	if l.LineMTU() != 1532 || !l.SendsSCI() || !l.LinkFaultPassthrough() || l.ShouldSecure() {
		t.Errorf("defaults: line MTU %d, send SCI %v, link fault %v, should-secure %v", l.LineMTU(), l.SendsSCI(), l.LinkFaultPassthrough(), l.ShouldSecure())
	}
	p, err := l.Static.TX.Params(l.Suite(), c.KeyDir())
	if err != nil || p.Key.Len() != 32 || p.SSCI != 1 || p.PN != 1 {
		t.Fatalf("tx params: %v %+v", err, p)
	}
}

func TestCheckReportsEveryErrorWithItsPath(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "tx.key", key256, 0o644) // readable by others
	bad := strings.Replace(good, "%s", "abc", 1)
	bad = strings.Replace(bad, `"name": "link0"`, `"name": "link0", "replay_window": 2000000000, "confidentiality_offset": 20, "policy": "maybe", "vlans_in_clear": 3`, 1)
	bad = strings.Replace(bad, `"sci": "025e00000b010001"`, `"sci": "025e00000b01000"`, 1)
	bad = strings.Replace(bad, `"ssci": "00000002"`, `"ssci": "0002"`, 1)
	_, err := Load(write(t, dir, "c.json", bad, 0o644))
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"links[0].replay_window: 2000000000",
		"links[0].confidentiality_offset: 20: want 0, 30 or 50",
		`links[0].policy: "maybe"`,
		"links[0].vlans_in_clear: 3",
		"links[0].static_keys.tx.key_file: ",
		"a key file must be 0600",
		"links[0].static_keys.rx[0].sci: bad SCI",
		"links[0].static_keys.rx[0].sas[0].key: key is not hex",
		"links[0].static_keys.rx[0].sas[0].ssci: gcm-aes-xpn-256 needs an SSCI of 8 hex digits",
	}
	all := errs.Error()
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
	if strings.Contains(all, key256) {
		t.Error("an error message contains key material")
	}
}

func TestParseRejectsUnknownFieldsAndSyntax(t *testing.T) {
	if _, err := Parse([]byte(`{"links": [{"nmae": "x"}]}`)); err == nil || !strings.Contains(err.Error(), `links[0].nmae: unknown field; did you mean "name"?`) {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := Parse([]byte("{\n\"system\": {,}\n}")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("syntax error without a line: %v", err)
	}
}

// A typo or a value of the wrong kind is reported with its path, next to
// every other problem, instead of hiding them.
func TestUnknownFieldsAndKindsWithPaths(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "c.json", `{"system": {"hostnme": "x"}, "links": [
  {"name": "l0", "plain": "eth0", "line": "eth1", "polcy": "must-secure", "mtu": "1500", "replay_window": -1,
   "mka": {"key_chain": [{"ckn": "0a", "cak": "00"}]}}]}`, 0o600)
	_, err := Load(p)
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("want Errors, got %v", err)
	}
	all := errs.Error()
	for _, w := range []string{
		`system.hostnme: unknown field; did you mean "hostname"?`,
		`links[0].polcy: unknown field; did you mean "policy"?`,
		`links[0].mtu: want a number, not the string "1500"`,
		`links[0].replay_window: -1: want 0 or more`,
		`links[0].mka.key_chain[0].cak: key is 1 octets`, // Check's own errors still come
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
	if strings.Contains(all, "json:") {
		t.Errorf("Go's JSON wording leaked:\n%s", all)
	}
}

// problems is every problem Load reports for a config text: the values
// the decode rejected and Check's, together.
func problems(t *testing.T, b string) string {
	t.Helper()
	c, errs, err := parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return append(errs, c.Check()...).Error()
}
