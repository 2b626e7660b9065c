package macsec

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// frameVector is one protected/unprotected frame pair from testdata.
type frameVector struct {
	Name      string `json:"name"`
	Cipher    string `json:"cipher"`
	Mode      string `json:"mode"`
	Key       string `json:"key"`
	SCI       string `json:"sci"`
	SSCI      string `json:"ssci"`
	Salt      string `json:"salt"`
	PN        string `json:"pn"`      // macsec-frames.json: full PN
	PNHigh    string `json:"pn_high"` // annexc.json: high 32 bits of an XPN PN
	Frame     string `json:"frame"`
	Protected string `json:"protected"`
}

func loadVectors(t testing.TB) []frameVector {
	t.Helper()
	var all []frameVector
	for _, f := range []string{"testdata/macsec-frames.json", "testdata/annexc.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Vectors []frameVector }
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, doc.Vectors...)
	}
	if len(all) < 30 {
		t.Fatalf("only %d vectors loaded", len(all))
	}
	return all
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// vectorSetup derives a SecY configuration and SA parameters from a vector:
// the TCI, PN and SCI come from its protected frame.
func vectorSetup(t testing.TB, v frameVector) (Config, SCI, SAParams) {
	t.Helper()
	suite, err := ParseCipherSuite(v.Cipher)
	if err != nil {
		t.Fatal(err)
	}
	prot := unhex(t, v.Protected)
	tag, err := ParseSecTAG(prot, 12)
	if err != nil {
		t.Fatalf("%s: vector's own SecTAG: %v", v.Name, err)
	}
	sci := tag.SCI
	if !tag.HasSCI() {
		sci = MakeSCI(prot[6:12], 1)
	}
	if v.SCI != "" {
		if want, _ := ParseSCI(v.SCI); want != sci {
			t.Fatalf("%s: SCI %v in frame, %v in vector", v.Name, sci, want)
		}
	}
	pn := uint64(tag.PN)
	if v.PNHigh != "" {
		pn |= uint64(binary.BigEndian.Uint32(unhex(t, v.PNHigh))) << 32
	}
	if v.PN != "" {
		b := make([]byte, 8)
		p := unhex(t, v.PN)
		copy(b[8-len(p):], p)
		pn = binary.BigEndian.Uint64(b)
	}
	p := SAParams{AN: tag.AN, Key: NewKey(unhex(t, v.Key)), PN: pn}
	if suite.XPN() {
		p.SSCI = binary.BigEndian.Uint32(unhex(t, v.SSCI))
		copy(p.Salt[:], unhex(t, v.Salt))
	}
	cfg := Config{
		Suite:         suite,
		SCI:           sci,
		SendSCI:       tag.HasSCI(),
		EndStation:    tag.TCI&TCIEndStation != 0,
		IntegrityOnly: !tag.Encrypted(),
	}
	return cfg, sci, p
}

func TestVectorsProtect(t *testing.T) {
	seen := map[string]map[string]bool{}
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			cfg, _, p := vectorSetup(t, v)
			s, err := NewSecY(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.InstallTxSA(p); err != nil {
				t.Fatal(err)
			}
			if err := s.SetEncodingSA(int(p.AN)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Protect(nil, unhex(t, v.Frame))
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, v.Protected); !bytes.Equal(got, want) {
				t.Fatalf("protect mismatch\n got %x\nwant %x", got, want)
			}
			if s.TxSA(p.AN).NextPN() != p.PN+1 {
				t.Errorf("next PN %d, want %d", s.TxSA(p.AN).NextPN(), p.PN+1)
			}
			kind := "conf"
			if cfg.IntegrityOnly {
				kind = "integrity"
			}
			if cfg.SendSCI {
				kind += "+sci"
			}
			if seen[v.Cipher] == nil {
				seen[v.Cipher] = map[string]bool{}
			}
			seen[v.Cipher][kind] = true
		})
	}
	// Every suite must be covered with and without SCI, in both modes.
	for _, cs := range CipherSuites {
		for _, k := range []string{"conf", "conf+sci", "integrity", "integrity+sci"} {
			if !seen[cs.String()][k] {
				t.Errorf("no vector for %v %s", cs, k)
			}
		}
	}
}

func TestVectorsValidate(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			cfg, sci, p := vectorSetup(t, v)
			s, err := NewSecY(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.InstallRxSA(sci, p); err != nil {
				t.Fatal(err)
			}
			got, err := s.Validate(nil, unhex(t, v.Protected))
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, v.Frame); !bytes.Equal(got, want) {
				t.Fatalf("validate mismatch\n got %x\nwant %x", got, want)
			}
			sa := s.RxSC(sci).SA(p.AN)
			if sa.Stats.InPktsOK.Load() != 1 {
				t.Errorf("InPktsOK = %d, want 1", sa.Stats.InPktsOK.Load())
			}
			// A flipped bit in the ICV or in the secure data must fail the
			// ICV check (on a fresh SA, so that replay does not hide it).
			for _, pos := range []int{len(v.Protected)/2 - 1, len(v.Protected)/2 - 20} {
				fresh, _ := NewSecY(cfg)
				if err := fresh.InstallRxSA(sci, p); err != nil {
					t.Fatal(err)
				}
				bad := unhex(t, v.Protected)
				bad[pos] ^= 1
				if _, err := fresh.Validate(nil, bad); !errors.Is(err, ErrNotValid) {
					t.Fatalf("byte %d corrupted: err = %v, want bad ICV", pos, err)
				}
				if n := fresh.RxSC(sci).SA(p.AN).Stats.InPktsNotValid.Load(); n != 1 {
					t.Fatalf("InPktsNotValid = %d, want 1", n)
				}
			}
		})
	}
}
