package sakexport

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
)

// The cipher suite is written by name and read back typed; a file with
// no suite or an unknown one is refused with its name and why.
func TestReadChecksTheCipherSuite(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b, err := json.Marshal(&File{Format: Format, Link: "l0", Cipher: macsec.GCMAESXPN256})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"cipher_suite":"gcm-aes-xpn-256"`) {
		t.Errorf("written as %s", b)
	}
	f, err := Read(write("good.json", string(b)))
	if err != nil || f.Cipher != macsec.GCMAESXPN256 {
		t.Fatalf("read back: %v, %v", f, err)
	}
	for name, body := range map[string]string{
		"none.json":    `{"format": "` + Format + `", "link": "l0"}`,
		"unknown.json": `{"format": "` + Format + `", "link": "l0", "cipher_suite": "gcm-aes-512"}`,
	} {
		_, err := Read(write(name, body))
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "cipher") {
			t.Errorf("%s: %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
