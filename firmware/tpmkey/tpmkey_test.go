package tpmkey

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// swtpm runs Debian's swtpm with its state in dir and returns the TPM.
func swtpm(t *testing.T, dir string) *TPM {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Skip("swtpm missing: `make test` installs it (Debian packages swtpm, swtpm-tools)")
	}
	sock := filepath.Join(dir, "data.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl.sock"), "--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	tpm := OpenStream(c)
	t.Cleanup(func() { tpm.Close() })
	return tpm
}

// A sealed key opens in its own TPM only, and not after that TPM is
// cleared.
func TestSealUnsealForeignClear(t *testing.T) {
	own, other := t.TempDir(), t.TempDir()
	a := swtpm(t, own)
	secret := bytes.Repeat([]byte{0x5a}, 32)
	blob, err := a.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret) {
		t.Fatal("the sealed blob holds the key in clear")
	}
	got, err := a.Unseal(blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unseal in its own TPM: %v", err)
	}
	b := swtpm(t, other)
	if _, err := b.Unseal(blob); !errors.Is(err, ErrForeign) {
		t.Fatalf("another TPM opened it or failed otherwise: %v", err)
	}
	if err := a.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Unseal(blob); !errors.Is(err, ErrForeign) {
		t.Fatalf("after clear: %v", err)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatal(err)
	}
}
