package macsec

import (
	"bytes"
	"errors"
	"testing"
)

func seedFuzz(f *testing.F) []frameVector {
	vs := loadVectors(f)
	for _, v := range vs {
		f.Add(unhex(f, v.Protected))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	return vs
}

// FuzzParseSecTAG: any input parses or fails cleanly, and what parses is
// self-consistent.
func FuzzParseSecTAG(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := ParseSecTAG(b, 12)
		if err != nil {
			var te *TagError
			if !errors.As(err, &te) || te.Offset < 0 || te.Offset > len(b) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if tag.Length != 8 && tag.Length != 16 || tag.SL >= 48 || tag.AN > 3 {
			t.Fatalf("inconsistent tag %+v", tag)
		}
		if len(b) < 12+tag.Length+ICVLen {
			t.Fatalf("accepted a frame without room for the ICV")
		}
	})
}

// FuzzValidate feeds arbitrary frames to SecYs keyed like the vectors, in
// every validation mode. Nothing may panic; in strict mode a frame is only
// delivered if it passed the ICV check, and then it is exactly the input
// minus SecTAG and ICV.
func FuzzValidate(f *testing.F) {
	vs := seedFuzz(f)
	type rx struct {
		s   *SecY
		sci SCI
	}
	var ys []rx
	for _, v := range vs {
		cfg, sci, p := vectorSetup(f, v)
		for _, mode := range []ValidateMode{ValidateStrict, ValidateCheck, ValidateDisabled} {
			cfg.Validate = mode
			cfg.MaxProtected = 9100
			s, err := NewSecY(cfg)
			if err != nil {
				f.Fatal(err)
			}
			if err := s.InstallRxSA(sci, p); err != nil {
				f.Fatal(err)
			}
			ys = append(ys, rx{s, sci})
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		for _, y := range ys {
			out, err := y.s.Validate(nil, b)
			if !bytes.Equal(in, b) {
				t.Fatal("Validate modified its input")
			}
			if err != nil {
				if len(out) != 0 {
					t.Fatal("dropped frame returned data")
				}
				continue
			}
			if y.s.cfg.Validate == ValidateStrict {
				if len(b) < 14 || b[12] != 0x88 || b[13] != 0xe5 {
					t.Fatal("strict mode delivered an untagged frame")
				}
				tag, _ := ParseSecTAG(b, 12)
				want := len(b) - tag.Length - ICVLen
				if tag.SL != 0 {
					want = 12 + int(tag.SL)
				}
				if len(out) != want || !bytes.Equal(out[:12], b[:12]) {
					t.Fatalf("delivered %d bytes, want %d", len(out), want)
				}
			}
		}
	})
}

// FuzzRoundTrip: whatever frame goes in comes out unchanged, for each suite.
func FuzzRoundTrip(f *testing.F) {
	f.Add(ethFrame(14), uint8(0))
	f.Add(ethFrame(60), uint8(1))
	f.Add(ethFrame(1514), uint8(7))
	f.Fuzz(func(t *testing.T, frame []byte, sel uint8) {
		if len(frame) < 14 {
			return
		}
		cfg := Config{
			Suite:         CipherSuites[int(sel)%len(CipherSuites)],
			SendSCI:       sel&4 != 0,
			IntegrityOnly: sel&8 != 0,
		}
		if !cfg.IntegrityOnly {
			cfg.Offset = []int{0, 30, 50, 0}[(sel>>4)&3]
		}
		tx, rx := pair(t, cfg, uint64(sel)<<24+1)
		p, err := tx.Protect(nil, frame)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rx.Validate(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, frame) {
			t.Fatal("round trip changed the frame")
		}
	})
}
