package image

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/secwire/secwire/firmware/bundle"
)

// A release made from an earlier initramfs carries the new firmware
// binary in place of the old one, the other files as they were, and is
// signed by the signer's key.
func TestReleaseOverlay(t *testing.T) {
	dir := t.TempDir()
	var base bytes.Buffer
	w := cpio.Newc.Writer(&base)
	cpio.WriteRecordsAndDirs(w, []cpio.Record{cpio.StaticFile("bin/secwire", "old firmware", 0o755), cpio.StaticFile("init", "u-root init", 0o755)})
	cpio.WriteTrailer(w)
	os.WriteFile(filepath.Join(dir, "initramfs.cpio"), base.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644)
	if _, err := LoadSigner(filepath.Join(dir, "none.pem"), nil, t.Logf); err == nil {
		t.Fatal("a missing signing key was accepted")
	}
	key := filepath.Join(dir, "release.pem")
	if _, err := bundle.GenerateSigningKey(key); err != nil {
		t.Fatal(err)
	}
	signer, err := LoadSigner(key, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := WriteRelease(ReleaseSpec{Board: "qemu", Version: "2.0.0", Cmdline: "console=ttyS0", Vmlinuz: filepath.Join(dir, "vmlinuz"),
		Initramfs: filepath.Join(dir, "initramfs.cpio"), Signer: signer,
		Overlay: map[string][]byte{"bin/secwire": []byte("new firmware"), TrustFile: bundle.MarshalTrust(signer.Trust)}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.Options{Trust: signer.Trust, Board: "qemu"})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b.Files[bundle.Initramfs]))
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := io.ReadAll(zr)
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(cp)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		if r.ReaderAt != nil {
			c, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			got[r.Name] = string(c)
		}
	}
	if got["bin/secwire"] != "new firmware" || got["init"] != "u-root init" || got[TrustFile] == "" {
		t.Fatalf("initramfs files: %q", got)
	}
}
