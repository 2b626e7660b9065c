package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
)

func testBundle(t *testing.T, key ed25519.PrivateKey, board string) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := Write(&buf, Manifest{Board: board, Version: "1.2.0", Cmdline: "console=ttyS0"},
		[]NamedFile{{Kernel, bytes.Repeat([]byte{0xaa}, 3000)}, {Initramfs, bytes.Repeat([]byte{0x55}, 5000)}}, key, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newKey(t *testing.T) (ed25519.PrivateKey, Trust) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, Trust{{Name: "test key", ID: KeyID(pub), Public: pub}}
}

func TestRoundTrip(t *testing.T) {
	key, trust := newKey(t)
	raw := testBundle(t, key, "qemu")
	var last int64
	b, err := Read(bytes.NewReader(raw), Options{Trust: trust, Board: "qemu", Progress: func(d, _ int64) { last = d }})
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Version != "1.2.0" || b.Manifest.Cmdline != "console=ttyS0" || len(b.Files[Kernel]) != 3000 || len(b.Files[Initramfs]) != 5000 {
		t.Fatalf("read back %+v", b.Manifest)
	}
	if last != 8000 || b.Key.ID != trust[0].ID {
		t.Fatalf("progress ended at %d, key %s", last, b.Key.ID)
	}
	m, k, err := ReadHead(b.Head, trust)
	if err != nil || m.Version != "1.2.0" || k.ID != trust[0].ID {
		t.Fatalf("ReadHead: %v %+v %+v", err, m, k)
	}
}

func TestRefused(t *testing.T) {
	key, trust := newKey(t)
	other, _ := newKey(t)
	good := testBundle(t, key, "qemu")
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 1
		return b
	}
	manifestAt := bytes.Index(good, []byte(`"version"`))
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"untrusted key", testBundle(t, other, "qemu"), "which this box does not trust"},
		{"altered manifest", flip(manifestAt + 2), "signature does not verify"},
		{"altered payload", flip(len(good) - 10), "does not match its signed SHA-256"},
		{"other board", testBundle(t, key, "apu2"), `bundle is for board "apu2", this box is board "qemu"`},
		{"truncated payload", good[:len(good)-100], "bundle truncated: initramfs.img has 4900 of its 5000 bytes"},
		{"truncated header", good[:20], "bundle truncated in its manifest"},
		{"empty", nil, "bundle truncated in its header"},
		{"not a bundle", []byte("#!/bin/sh\necho hello\n"), "not a secwire release bundle"},
		{"trailing bytes", append(append([]byte(nil), good...), 0), "bytes after its last file"},
	} {
		_, err := Read(bytes.NewReader(c.raw), Options{Trust: trust, Board: "qemu"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.pem")
	k, err := GenerateSigningKey(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadSigningKey(p)
	if err != nil || !k.Equal(k2) {
		t.Fatalf("reload: %v", err)
	}
	pub, err := ParsePublicKey(MarshalPublicKey(k.Public().(ed25519.PublicKey)))
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("public key: %v", err)
	}
	if _, err := ParsePublicKey([]byte("hello")); err == nil {
		t.Fatal("a non-key parsed")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.2", 1}, {"1.9", "1.9.2", -1}, {"v2.0", "2.0", 0}, {"1.2~rc1", "1.2", -1},
		{"0.0.120-gabc", "0.0.99-gdef", 1}, {"1.02", "1.2", 0}, {"3", "3", 0},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}
