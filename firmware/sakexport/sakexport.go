// Package sakexport is the file `request security mka export-keys`
// writes and `secwire pcap decrypt --keys` reads: a link's current SAKs
// in clear, with what a decrypter needs besides the key (AN, and for the
// XPN suites the salt and each SC's SSCI). Whoever holds the file can
// decrypt the link's traffic while those SAKs are in use; it exists for
// troubleshooting with captures, and is written owner-only.
package sakexport

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/secwire/secwire/offload/macsec"
)

// Format names this file format and its version.
const Format = "secwire-sak-export/1"

// Warning is written into every file, for whoever finds it later.
const Warning = "SECRET: these SAKs decrypt the link's traffic while they are in use. Delete this file when done."

// File is one link's exported SAKs.
type File struct {
	Format   string             `json:"format"`
	Warning  string             `json:"warning"`
	Link     string             `json:"link"`
	Cipher   macsec.CipherSuite `json:"cipher_suite"`
	Offset   int                `json:"confidentiality_offset"`
	Exported string             `json:"exported"` // RFC 3339
	SAKs     []SAK              `json:"saks"`
}

// SAK is one distributed key and where it is used.
type SAK struct {
	CKN         string `json:"ckn"`
	KeyServerMI string `json:"key_server_mi"`
	KN          uint32 `json:"kn"`
	AN          uint8  `json:"an"`
	Key         string `json:"sak"`            // hex
	Salt        string `json:"salt,omitempty"` // XPN: 24 hex digits
	SCs         []SC   `json:"secure_channels"`
}

// SC is one secure channel that uses the SAK: ours and the peers'.
type SC struct {
	SCI  string `json:"sci"`            // 16 hex digits
	SSCI string `json:"ssci,omitempty"` // XPN: 8 hex digits
	// PN is the SC's next (transmit) or lowest acceptable (receive) PN
	// when exported: with XPN it places the 32 PN bits on the wire.
	PN uint64 `json:"pn_at_export,omitempty"`
}

// Write stores f at path, owner-only, refusing to replace a file.
func Write(path string, f *File) error {
	b, err := Marshal(f)
	if err != nil {
		return err
	}
	defer clear(b)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: give a new file name (an export never replaces a file)", path)
	}
	if err != nil {
		return err
	}
	if _, err := out.Write(b); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Marshal is f as it is stored.
func Marshal(f *File) ([]byte, error) {
	f.Format, f.Warning = Format, Warning
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// Read loads and checks an export file.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		var syntax *json.SyntaxError
		var kind *json.UnmarshalTypeError
		if errors.As(err, &syntax) || errors.As(err, &kind) {
			return nil, fmt.Errorf("%s: not a SAK export file: %v", path, err)
		}
		return nil, fmt.Errorf("%s: %v", path, err) // a value its field refuses, such as the cipher suite
	}
	if f.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q (a file from 'request security mka export-keys')", path, f.Format, Format)
	}
	if f.Cipher == 0 {
		return nil, fmt.Errorf("%s: no cipher_suite", path)
	}
	for i, s := range f.SAKs {
		if _, err := s.Params(f.Cipher, ""); err != nil && !errors.Is(err, errNoSC) {
			return nil, fmt.Errorf("%s: saks[%d] (KN %d): %w", path, i, s.KN, err)
		}
	}
	return &f, nil
}

var errNoSC = errors.New("the SC is not in the export")

// Params are the receive SA parameters of the SAK for frames of the SC
// sci (hex; "" for the first SC, enough for the non-XPN suites, whose
// SAs do not depend on the SC). The key is a fresh copy.
func (s SAK) Params(suite macsec.CipherSuite, sci string) (macsec.SAParams, error) {
	key, err := macsec.ParseKeyHex(s.Key, suite.KeyLen())
	if err != nil {
		return macsec.SAParams{}, fmt.Errorf("sak: %w", err)
	}
	p := macsec.SAParams{AN: s.AN, Key: key, PN: 1}
	if s.AN > 3 {
		key.Wipe()
		return p, fmt.Errorf("an %d: want 0..3", s.AN)
	}
	var sc *SC
	for i := range s.SCs {
		if got, err := macsec.ParseSCI(s.SCs[i].SCI); sci == "" || err == nil && got.String() == sci {
			sc = &s.SCs[i]
			break
		}
	}
	if sc != nil && sc.PN > 1<<31 && suite.XPN() {
		p.PN = sc.PN - 1<<31 // recovers PNs from 2^31 before the export to 2^31 after
	}
	if !suite.XPN() {
		return p, nil
	}
	salt, err := hex.DecodeString(s.Salt)
	if err != nil || len(salt) != 12 {
		key.Wipe()
		return p, fmt.Errorf("salt: %s needs 24 hex digits", suite)
	}
	copy(p.Salt[:], salt)
	if sc == nil {
		key.Wipe()
		return p, errNoSC
	}
	ssci, err := hex.DecodeString(sc.SSCI)
	if err != nil || len(ssci) != 4 {
		key.Wipe()
		return p, fmt.Errorf("sci %s: ssci: %s needs 8 hex digits", sc.SCI, suite)
	}
	p.SSCI = binary.BigEndian.Uint32(ssci)
	return p, nil
}

// Candidates are the receive SA parameters to try for a frame of SC sci
// on AN an: every exported SAK on that AN that knows the SC (any SAK on
// the AN for the non-XPN suites), in the file's order (latest first).
func (f *File) Candidates(suite macsec.CipherSuite, sci macsec.SCI, an uint8) []macsec.SAParams {
	var out []macsec.SAParams
	for _, s := range f.SAKs {
		if s.AN != an {
			continue
		}
		want := sci.String()
		if !suite.XPN() {
			want = ""
		}
		if p, err := s.Params(suite, want); err == nil {
			out = append(out, p)
		}
	}
	return out
}
