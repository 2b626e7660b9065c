package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"testing"

	"github.com/secwire/secwire/firmware/bundle"
)

// writeTestBundle writes a bundle with the given kernel and initramfs.
func writeTestBundle(t *testing.T, path, kernel, initramfs string) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	var buf bytes.Buffer
	if err := bundle.Write(&buf, bundle.Manifest{Board: "qemu", Version: "1.0.0", Cmdline: "console=ttyS0"},
		[]bundle.NamedFile{{Name: bundle.Kernel, Data: []byte(kernel)}, {Name: bundle.Initramfs, Data: []byte(initramfs)}}, key, "test"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
