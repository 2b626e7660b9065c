package commit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A device key left empty (a power cut before it reached the disk) must
// not stop the box from coming up: it is kept aside, a new one is made,
// and the error says what happened.
func TestOpenWithADamagedDeviceKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seal.key"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), Options{ConfigPath: filepath.Join(dir, "secwire.json"), StateDir: filepath.Join(dir, "state")})
	if m == nil {
		t.Fatalf("no manager: %v", err)
	}
	defer m.Stop()
	if err == nil || !strings.Contains(err.Error(), "device key damaged") || !strings.Contains(err.Error(), "seal.key.damaged") {
		t.Fatalf("error: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "seal.key")); err != nil || fi.Size() != 32 {
		t.Fatalf("new device key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "seal.key.damaged")); err != nil {
		t.Fatalf("the damaged key was not kept: %v", err)
	}
}
