// Package bundle is the signed release bundle (docs/bundle.md): one file
// with a board's kernel, initramfs, command line and version, and an
// ed25519 signature over a manifest that names every other byte by its
// SHA-256. The build writes bundles (image/cmd/mkimage); the appliance
// reads and verifies them before it writes anything (firmware/slots).
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Magic opens every bundle: the format's name and its revision.
const Magic = "SWBUNDL1"

// Limits the reader enforces before it allocates.
const (
	MaxHeader = 1 << 20   // manifest or signature block
	MaxSize   = 256 << 20 // the whole bundle
)

// The files a bundle carries.
const (
	Kernel    = "vmlinuz"
	Initramfs = "initramfs.img" // a cpio archive, gzip-compressed
)

// Manifest describes what a bundle holds; it is the signed part.
type Manifest struct {
	Format  int    `json:"format"`
	Board   string `json:"board"`
	Version string `json:"version"`
	Cmdline string `json:"cmdline"`
	Built   string `json:"built,omitempty"` // RFC 3339, informational
	Files   []File `json:"files"`
	// TrustedKeys are the IDs of the release keys the image inside trusts
	// (informational: the image carries the keys themselves).
	TrustedKeys []string `json:"trusted_keys,omitempty"`
}

// File is one payload file, in payload order.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Signature is the signature block.
type Signature struct {
	KeyID   string `json:"key_id"`
	Signer  string `json:"signer"`
	Ed25519 []byte `json:"ed25519"`
}

// Bundle is a verified bundle.
type Bundle struct {
	Manifest Manifest
	Key      Key    // the trusted key that signed it
	Head     []byte // magic, manifest and signature block as read: kept beside a slot
	Files    map[string][]byte
}

// Size is the payload's size.
func (b *Bundle) Size() int64 {
	var n int64
	for _, f := range b.Manifest.Files {
		n += f.Size
	}
	return n
}

var fileName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Write writes a signed bundle: m with the files' sizes and hashes filled
// in, the signature block, then the files in order.
func Write(w io.Writer, m Manifest, files []NamedFile, key ed25519.PrivateKey, signer string) error {
	m.Format = 1
	m.Files = nil
	for _, f := range files {
		if !fileName.MatchString(f.Name) {
			return fmt.Errorf("bundle file name %q: want lower-case letters, digits, '.', '_' or '-'", f.Name)
		}
		sum := sha256.Sum256(f.Data)
		m.Files = append(m.Files, File{Name: f.Name, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:])})
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	signed := signedPart(mb)
	pub := key.Public().(ed25519.PublicKey)
	sb, err := json.Marshal(Signature{KeyID: KeyID(pub), Signer: signer, Ed25519: ed25519.Sign(key, signed)})
	if err != nil {
		return err
	}
	out := append(signed, lenPrefix(sb)...)
	if _, err := w.Write(out); err != nil {
		return err
	}
	for _, f := range files {
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
	}
	return nil
}

// NamedFile is a payload file for Write.
type NamedFile struct {
	Name string
	Data []byte
}

func lenPrefix(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// signedPart is what the signature covers: the magic and the
// length-prefixed manifest.
func signedPart(manifest []byte) []byte {
	return append([]byte(Magic), lenPrefix(manifest)...)
}

// Options say what a bundle must be to be accepted.
type Options struct {
	Trust Trust
	Board string // the board this box is; "" accepts any (build-host tools)
	// Progress is told how much of the payload has been read.
	Progress func(done, total int64)
	// Unsigned skips the signature check: only for the build host, which
	// writes the bundle it has just signed onto a disk image.
	Unsigned bool
}

// Read reads a bundle from r and verifies it: structure, signature by a
// trusted key, board, then every file's size and SHA-256. It reads the
// whole payload into memory; nothing is written anywhere. Errors say what
// is wrong with the bundle in words an operator can act on.
func Read(r io.Reader, o Options) (*Bundle, error) {
	var head bytes.Buffer
	tr := io.TeeReader(r, &head)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(tr, magic); err != nil {
		return nil, truncated("its header", err)
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("not a secwire release bundle (it starts with %q, want %q): give the .bundle file that make release wrote", printable(magic), Magic)
	}
	mb, err := readBlock(tr, "manifest")
	if err != nil {
		return nil, err
	}
	signed := append([]byte(nil), head.Bytes()...)
	sb, err := readBlock(tr, "signature block")
	if err != nil {
		return nil, err
	}
	var sig Signature
	if err := json.Unmarshal(sb, &sig); err != nil {
		return nil, fmt.Errorf("bundle signature block is damaged (%v): rebuild the bundle with make release", err)
	}
	key, ok := o.Trust.ByID(sig.KeyID)
	switch {
	case o.Unsigned:
		key = Key{ID: sig.KeyID, Name: sig.Signer}
	case !ok:
		return nil, fmt.Errorf("bundle is signed by key %s (%q), which this box does not trust (it trusts %s): sign it with a trusted key, or add the key from the serial console; nothing was written", sig.KeyID, sig.Signer, o.Trust)
	case len(sig.Ed25519) != ed25519.SignatureSize || !ed25519.Verify(key.Public, signed, sig.Ed25519):
		return nil, fmt.Errorf("bundle signature does not verify with trusted key %s (%s): the bundle was altered after signing, or is damaged; nothing was written", key.ID, key.Name)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("bundle manifest: %v", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	if o.Board != "" && m.Board != o.Board {
		return nil, fmt.Errorf("bundle is for board %q, this box is board %q: take the bundle built with make release BOARD=%s; nothing was written", m.Board, o.Board, o.Board)
	}
	b := &Bundle{Manifest: m, Key: key, Head: head.Bytes(), Files: map[string][]byte{}}
	total, done := b.Size(), int64(0)
	for _, f := range m.Files {
		data := make([]byte, f.Size)
		for off := int64(0); off < f.Size; {
			n, err := io.ReadFull(r, data[off:min(f.Size, off+1<<20)])
			off += int64(n)
			done += int64(n)
			if err != nil {
				return nil, fmt.Errorf("bundle truncated: %s has %d of its %d bytes (the copy or transfer was cut short); nothing was written", f.Name, off, f.Size)
			}
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, fmt.Errorf("bundle file %s does not match its signed SHA-256: the bundle was altered after signing, or is damaged; nothing was written", f.Name)
		}
		b.Files[f.Name] = data
	}
	if n, _ := io.CopyN(io.Discard, r, 1); n > 0 {
		return nil, errors.New("bundle has bytes after its last file: it is damaged or not one bundle; nothing was written")
	}
	return b, nil
}

// ReadHead verifies a stored head (magic, manifest, signature block)
// without the payload: what a slot keeps to say what it holds and who
// signed it.
func ReadHead(head []byte, trust Trust) (Manifest, Key, error) {
	var m Manifest
	r := bytes.NewReader(head)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != Magic {
		return m, Key{}, errors.New("not a bundle head")
	}
	mb, err := readBlock(r, "manifest")
	if err != nil {
		return m, Key{}, err
	}
	signed := head[:len(head)-r.Len()]
	sb, err := readBlock(r, "signature block")
	if err != nil {
		return m, Key{}, err
	}
	var sig Signature
	if err := json.Unmarshal(sb, &sig); err != nil {
		return m, Key{}, err
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return m, Key{}, err
	}
	key, ok := trust.ByID(sig.KeyID)
	if !ok {
		return m, Key{ID: sig.KeyID, Name: sig.Signer + " (not trusted here)"}, nil
	}
	if !ed25519.Verify(key.Public, signed, sig.Ed25519) {
		return m, Key{}, fmt.Errorf("signature by %s does not verify", key.ID)
	}
	return m, key, nil
}

func (m *Manifest) check() error {
	if m.Format != 1 {
		return fmt.Errorf("bundle format %d: this firmware reads format 1; update in steps through a release that knows the newer format", m.Format)
	}
	if m.Board == "" || m.Version == "" {
		return errors.New("bundle manifest names no board or no version")
	}
	seen := map[string]bool{}
	var total int64
	for _, f := range m.Files {
		if !fileName.MatchString(f.Name) || seen[f.Name] || f.Size < 0 || len(f.SHA256) != 64 {
			return fmt.Errorf("bundle manifest: bad file entry %q", f.Name)
		}
		seen[f.Name] = true
		total += f.Size
	}
	if !seen[Kernel] || !seen[Initramfs] {
		return fmt.Errorf("bundle holds no %s or no %s", Kernel, Initramfs)
	}
	if total > MaxSize {
		return fmt.Errorf("bundle payload of %d bytes is over the %d MiB limit", total, MaxSize>>20)
	}
	return nil
}

func readBlock(r io.Reader, what string) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, truncated("its "+what, err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n == 0 || n > MaxHeader {
		return nil, fmt.Errorf("bundle %s length %d is out of range: the file is damaged or not a bundle", what, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, truncated("its "+what, err)
	}
	return b, nil
}

func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("bundle truncated in %s (the copy or transfer was cut short); nothing was written", what)
	}
	return fmt.Errorf("reading the bundle: %w", err)
}

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = '.'
		if c >= 0x20 && c < 0x7f {
			out[i] = c
		}
	}
	return string(out)
}
