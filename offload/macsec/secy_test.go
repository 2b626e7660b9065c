package macsec

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func testKey(n int) Key {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return NewKey(b)
}

// pair returns a transmitting and a receiving SecY sharing one SA.
func pair(t testing.TB, cfg Config, pn uint64) (tx, rx *SecY) {
	t.Helper()
	if cfg.Suite == 0 {
		cfg.Suite = GCMAES128
	}
	cfg.SCI = MakeSCI(macA, 1)
	var err error
	if tx, err = NewSecY(cfg); err != nil {
		t.Fatal(err)
	}
	if rx, err = NewSecY(cfg); err != nil {
		t.Fatal(err)
	}
	p := SAParams{AN: 1, Key: testKey(cfg.Suite.KeyLen()), PN: pn, SSCI: 7, Salt: [12]byte{1, 2, 3}}
	if err := tx.InstallTxSA(p); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetEncodingSA(1); err != nil {
		t.Fatal(err)
	}
	if err := rx.InstallRxSA(cfg.SCI, p); err != nil {
		t.Fatal(err)
	}
	return tx, rx
}

func ethFrame(n int) []byte {
	f := make([]byte, n)
	copy(f, macB)
	copy(f[6:], macA)
	f[12], f[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		f[i] = byte(i)
	}
	return f
}

func mustProtect(t testing.TB, s *SecY, f []byte) []byte {
	t.Helper()
	out, err := s.Protect(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripAllSuitesAndModes(t *testing.T) {
	for _, cs := range CipherSuites {
		for _, mode := range []struct {
			name string
			cfg  Config
		}{
			{"conf", Config{}},
			{"conf-sci", Config{SendSCI: true}},
			{"conf-es", Config{EndStation: true}},
			{"offset30", Config{Offset: 30, SendSCI: true}},
			{"offset50", Config{Offset: 50}},
			{"integrity", Config{IntegrityOnly: true}},
		} {
			for _, n := range []int{14, 20, 61, 62, 100, 1514, 9014} {
				t.Run(fmt.Sprintf("%v/%s/%d", cs, mode.name, n), func(t *testing.T) {
					cfg := mode.cfg
					cfg.Suite = cs
					tx, rx := pair(t, cfg, 1)
					f := ethFrame(n)
					p := mustProtect(t, tx, f)
					if len(p) != n+Overhead(cfg.SendSCI) {
						t.Fatalf("protected length %d, want %d", len(p), n+Overhead(cfg.SendSCI))
					}
					clearPart := 12 + min(cfg.Offset, n-12)
					if cfg.IntegrityOnly {
						clearPart = n
					}
					hdr := 12 + Overhead(cfg.SendSCI) - ICVLen
					if !bytes.Equal(p[hdr:hdr+clearPart-12], f[12:clearPart]) {
						t.Fatal("bytes before the confidentiality offset are not in clear")
					}
					if !cfg.IntegrityOnly && n-clearPart > 8 && bytes.Contains(p, f[clearPart:]) {
						t.Fatal("encrypted user data appears in clear")
					}
					got, err := rx.Validate(nil, p)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, f) {
						t.Fatalf("round trip changed the frame")
					}
				})
			}
		}
	}
}

func TestMustSecureWithoutSA(t *testing.T) {
	s, _ := NewSecY(Config{Suite: GCMAES128})
	if out, err := s.Protect(make([]byte, 0, 100), ethFrame(60)); !errors.Is(err, ErrNoTxSA) || len(out) != 0 {
		t.Fatalf("protect without SA: %v, %d bytes", err, len(out))
	}
	tx, _ := pair(t, Config{}, 1)
	tx.DeleteTxSA(1)
	if _, err := tx.Protect(nil, ethFrame(60)); !errors.Is(err, ErrNoTxSA) {
		t.Fatalf("protect after deleting the encoding SA: %v", err)
	}
}

func TestReplay(t *testing.T) {
	t.Run("window0", func(t *testing.T) {
		tx, rx := pair(t, Config{}, 1)
		a, b := mustProtect(t, tx, ethFrame(80)), mustProtect(t, tx, ethFrame(80))
		if _, err := rx.Validate(nil, b); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.Validate(nil, a); !errors.Is(err, ErrLate) {
			t.Fatalf("reordered frame with window 0: %v, want late", err)
		}
		if _, err := rx.Validate(nil, b); !errors.Is(err, ErrLate) {
			t.Fatalf("replayed frame: %v, want late", err)
		}
		if n := rx.RxSC(MakeSCI(macA, 1)).Stats.InPktsLate.Load(); n != 2 {
			t.Fatalf("InPktsLate = %d, want 2", n)
		}
	})
	t.Run("window2", func(t *testing.T) {
		tx, rx := pair(t, Config{ReplayWindow: 2}, 1)
		var fr [5][]byte
		for i := range fr {
			fr[i] = mustProtect(t, tx, ethFrame(80)) // PN i+1
		}
		// After PN 5 the lowest acceptable PN is 6-2 = 4.
		for _, i := range []int{4, 3} {
			if _, err := rx.Validate(nil, fr[i]); err != nil {
				t.Fatalf("PN %d: %v", i+1, err)
			}
		}
		if _, err := rx.Validate(nil, fr[2]); !errors.Is(err, ErrLate) {
			t.Fatalf("PN 3 below the window: %v", err)
		}
	})
	t.Run("off", func(t *testing.T) {
		tx, rx := pair(t, Config{NoReplay: true}, 1)
		a, b := mustProtect(t, tx, ethFrame(80)), mustProtect(t, tx, ethFrame(80))
		for _, f := range [][]byte{b, a} {
			if _, err := rx.Validate(nil, f); err != nil {
				t.Fatal(err)
			}
		}
		if n := rx.RxSC(MakeSCI(macA, 1)).Stats.InPktsDelayed.Load(); n != 1 {
			t.Fatalf("InPktsDelayed = %d, want 1", n)
		}
	})
}

func TestRecoverPN(t *testing.T) {
	for _, c := range []struct {
		low    uint32
		lowest uint64
		want   uint64
	}{
		{5, 1, 5},
		{0xFFFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF},
		{0, 0xFFFFFFF0, 0x100000000},
		{3, 0xFFFFFFF0, 0x100000003},
		{0x10, 0x1_00000010, 0x1_00000010},
		{0x0f, 0x1_00000010, 0x2_0000000f},
	} {
		if got := recoverPN(true, c.low, c.lowest); got != c.want {
			t.Errorf("recoverPN(%#x, lowest %#x) = %#x, want %#x", c.low, c.lowest, got, c.want)
		}
	}
}

func TestXPNAcross32BitBoundary(t *testing.T) {
	for _, cs := range []CipherSuite{GCMAESXPN128, GCMAESXPN256} {
		tx, rx := pair(t, Config{Suite: cs}, 0xFFFFFFFD)
		for i := 0; i < 6; i++ {
			f := ethFrame(100)
			f[20] = byte(i)
			got, err := rx.Validate(nil, mustProtect(t, tx, f))
			if err != nil {
				t.Fatalf("%v frame %d: %v", cs, i, err)
			}
			if !bytes.Equal(got, f) {
				t.Fatalf("%v frame %d changed", cs, i)
			}
		}
		if pn := tx.TxSA(1).NextPN(); pn != 0x100000003 {
			t.Fatalf("next PN %#x", pn)
		}
		if pn := rx.RxSC(MakeSCI(macA, 1)).SA(1).NextPN(); pn != 0x100000003 {
			t.Fatalf("receiver next PN %#x", pn)
		}
	}
}

func TestPNExhaustionAndThreshold(t *testing.T) {
	var fired []uint64
	cfg := Config{PNThreshold: 0xFFFFFFFD, OnPNThreshold: func(an uint8, pn uint64) { fired = append(fired, pn) }}
	tx, rx := pair(t, cfg, 0xFFFFFFFC)
	if tx.TxSA(1).PastThreshold() {
		t.Fatal("past threshold too early")
	}
	for i := 0; i < 4; i++ { // PNs ...FC, FD, FE, FF
		if _, err := rx.Validate(nil, mustProtect(t, tx, ethFrame(64))); err != nil {
			t.Fatal(err)
		}
	}
	if len(fired) != 1 || fired[0] != 0xFFFFFFFE {
		t.Fatalf("threshold reports %x, want one at 0xfffffffe", fired)
	}
	if !tx.TxSA(1).Exhausted() || !tx.TxSA(1).PastThreshold() {
		t.Fatal("SA not exhausted after PN 0xffffffff")
	}
	for i := 0; i < 3; i++ {
		if _, err := tx.Protect(nil, ethFrame(64)); !errors.Is(err, ErrPNExhausted) {
			t.Fatalf("send after the last PN: %v", err)
		}
	}
	// XPN: the last 64-bit PN is sent once, then never again.
	tx, _ = pair(t, Config{Suite: GCMAESXPN128}, ^uint64(0))
	mustProtect(t, tx, ethFrame(64))
	if _, err := tx.Protect(nil, ethFrame(64)); !errors.Is(err, ErrPNExhausted) {
		t.Fatalf("XPN send after 2^64-1: %v", err)
	}
	if DefaultPN := GCMAES256.DefaultPNThreshold(); DefaultPN != 0xC0000000 {
		t.Fatal(DefaultPN)
	}
	if GCMAESXPN256.DefaultPNThreshold() != 0xC000000000000000 {
		t.Fatal("XPN threshold")
	}
}

func TestTxPNLimitHoldsTransmission(t *testing.T) {
	tx, rx := pair(t, Config{}, 100)
	if err := tx.SetTxPNLimit(1, 103); err != nil {
		t.Fatal(err)
	}
	for range 3 { // PNs 100, 101, 102
		if _, err := rx.Validate(nil, mustProtect(t, tx, ethFrame(64))); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := tx.Protect(nil, ethFrame(64)); !errors.Is(err, ErrPNLimit) {
			t.Fatalf("send at the PN limit: %v", err)
		}
	}
	if pn := tx.TxSA(1).NextPN(); pn != 103 {
		t.Fatalf("next PN %d after being held at the limit, want 103", pn)
	}
	// Raised: transmission resumes exactly where it stopped.
	if err := tx.SetTxPNLimit(1, 200); err != nil {
		t.Fatal(err)
	}
	p := mustProtect(t, tx, ethFrame(64))
	if tag, _ := ParseSecTAG(p, 12); tag.PN != 103 {
		t.Fatalf("PN %d after the limit was raised, want 103", tag.PN)
	}
	if err := tx.SetTxPNLimit(2, 1); err == nil {
		t.Error("SetTxPNLimit on an absent SA succeeded")
	}
}

func TestBadFramesCounted(t *testing.T) {
	tx, _ := pair(t, Config{SendSCI: true}, 1)
	good := mustProtect(t, tx, ethFrame(100))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name  string
		frame []byte
		err   error
		msg   string
	}{
		{"runt", good[:10], ErrBadTag, "byte 10"},
		{"untagged", ethFrame(80), ErrNoTag, ""},
		{"truncated tag", good[:17], ErrBadTag, "too short for a SecTAG"},
		{"truncated sci", good[:24], ErrBadTag, "too short for the SCI"},
		{"no icv", good[:40], ErrBadTag, "too short for the ICV"},
		{"V bit", mod(func(b []byte) []byte { b[14] |= TCIVersion; return b }), ErrBadTag, "at byte 14: TCI version"},
		{"ES and SC", mod(func(b []byte) []byte { b[14] |= TCIEndStation; return b }), ErrBadTag, "ES and SC"},
		{"SC and SCB", mod(func(b []byte) []byte { b[14] |= TCISCB; return b }), ErrBadTag, "SC and SCB"},
		{"C without E", mod(func(b []byte) []byte { b[14] &^= TCIEncrypted; return b }), ErrBadTag, "C set without E"},
		{"SL too big", mod(func(b []byte) []byte { b[15] = 50; return b }), ErrBadTag, "at byte 15"},
		{"SL mismatch", mod(func(b []byte) []byte { b[15] = 20; return b }), ErrBadTag, "short length 20"},
		{"SL 0 short", mod(func(b []byte) []byte { return append(b[:30], b[len(b)-16:]...) }), ErrBadTag, "short length 0"},
		{"unknown SCI", mod(func(b []byte) []byte { b[16+4+5] ^= 0xff; return b }), ErrNoSCI, ""},
		{"unknown AN", mod(func(b []byte) []byte { b[14] ^= 1; return b }), ErrNotUsingSA, "no receive SA for AN: 0"},
		{"PN 0", mod(func(b []byte) []byte { copy(b[16:20], []byte{0, 0, 0, 0}); return b }), ErrBadTag, "packet number 0"},
		{"bad ICV", mod(func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }), ErrNotValid, "bad ICV"},
		{"jumbo", append(append([]byte(nil), good...), make([]byte, 9000)...), ErrOverrun, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rx := pair(t, Config{SendSCI: true, MaxProtected: 1600}, 1)
			out, err := rx.Validate(make([]byte, 0, 2000), c.frame)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not say %q", err, c.msg)
			}
			if len(out) != 0 {
				t.Fatal("dropped frame returned data")
			}
			total := rx.Stats.InPktsBadTag.Load() + rx.Stats.InPktsNoTag.Load() + rx.Stats.InPktsNoSCI.Load() + rx.Stats.InPktsOverrun.Load()
			sc := rx.RxSC(MakeSCI(macA, 1))
			total += sc.Stats.InPktsNotUsingSA.Load() + sc.SA(1).Stats.InPktsNotValid.Load() + sc.Stats.InPktsLate.Load()
			if total != 1 {
				t.Fatalf("%d counters moved, want exactly 1", total)
			}
		})
	}
}

func TestCheckAndDisabledModes(t *testing.T) {
	tx, rx := pair(t, Config{IntegrityOnly: true, Validate: ValidateCheck}, 1)
	f := ethFrame(90)
	p := mustProtect(t, tx, f)
	p[40] ^= 1 // integrity-only frame with bad ICV: Check delivers and counts it
	if got, err := rx.Validate(nil, p); err != nil || len(got) != len(f) {
		t.Fatalf("check mode: %v", err)
	}
	if rx.RxSC(MakeSCI(macA, 1)).SA(1).Stats.InPktsInvalid.Load() != 1 {
		t.Fatal("InPktsInvalid not counted")
	}
	if _, err := rx.Validate(nil, ethFrame(70)); err != nil || rx.Stats.InPktsUntagged.Load() != 1 {
		t.Fatalf("untagged frame in check mode: %v", err)
	}
	// An encrypted frame is never delivered unverified, whatever the mode.
	tx2, rx2 := pair(t, Config{Validate: ValidateDisabled}, 1)
	p = mustProtect(t, tx2, f)
	p[40] ^= 1
	if _, err := rx2.Validate(nil, p); !errors.Is(err, ErrNotValid) {
		t.Fatalf("encrypted frame with bad ICV in disabled mode: %v", err)
	}
	tx3, rx3 := pair(t, Config{IntegrityOnly: true, Validate: ValidateDisabled}, 1)
	if _, err := rx3.Validate(nil, mustProtect(t, tx3, f)); err != nil || rx3.RxSC(MakeSCI(macA, 1)).Stats.InPktsUnchecked.Load() != 1 {
		t.Fatalf("disabled mode: %v", err)
	}
}

func TestShortFrameWithPadding(t *testing.T) {
	tx, rx := pair(t, Config{}, 1)
	f := ethFrame(20) // 8 bytes of user data
	p := mustProtect(t, tx, f)
	if p[15] != 8 {
		t.Fatalf("SL = %d, want 8", p[15])
	}
	padded := append(p, make([]byte, 60-len(p))...)
	got, err := rx.Validate(nil, padded)
	if err != nil || !bytes.Equal(got, f) {
		t.Fatalf("padded short frame: %v", err)
	}
}

func TestTooLongOnTransmit(t *testing.T) {
	tx, _ := pair(t, Config{SendSCI: true, MaxProtected: 1514 + 32}, 1)
	if _, err := tx.Protect(nil, ethFrame(1514)); err != nil {
		t.Fatal(err)
	}
	_, err := tx.Protect(nil, ethFrame(1515))
	if !errors.Is(err, ErrTooLong) || tx.Stats.OutPktsTooLong.Load() != 1 {
		t.Fatalf("1515-byte frame: %v", err)
	}
	if !strings.Contains(err.Error(), "32 bytes of MACsec overhead") {
		t.Fatalf("error does not explain the overhead: %v", err)
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	k := NewKey([]byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef})
	for _, verb := range []string{"%v", "%s", "%x", "%X", "%#v", "%+v", "%q"} {
		out := fmt.Sprintf(verb, k) + fmt.Sprintf(verb, SAParams{Key: k})
		if strings.Contains(strings.ToLower(out), "dead") || strings.Contains(out, "222 173") {
			t.Fatalf("%s printed key bytes: %s", verb, out)
		}
	}
	if _, err := ParseKeyHex("deadbeefdeadbeef", 16); err == nil || strings.Contains(err.Error(), "dead") {
		t.Fatalf("bad key length error leaks or is missing: %v", err)
	}
	k.Wipe()
	if !bytes.Equal(k.Bytes(), make([]byte, 16)) {
		t.Fatal("wipe left key bytes")
	}
}

func TestInstallRejectsBadSA(t *testing.T) {
	s, _ := NewSecY(Config{Suite: GCMAES256})
	for _, p := range []SAParams{
		{AN: 4, Key: testKey(32), PN: 1},
		{AN: 0, Key: testKey(16), PN: 1},
		{AN: 0, Key: testKey(32), PN: 0},
		{AN: 0, Key: testKey(32), PN: 1 << 33},
	} {
		if err := s.InstallTxSA(p); err == nil {
			t.Errorf("accepted %+v", p)
		}
	}
	if err := s.SetEncodingSA(2); err == nil {
		t.Error("encoding SA without an installed SA accepted")
	}
	if _, err := NewSecY(Config{Suite: GCMAES128, Offset: 20}); err == nil {
		t.Error("offset 20 accepted")
	}
	if _, err := NewSecY(Config{Suite: GCMAES128, SendSCI: true, EndStation: true}); err == nil {
		t.Error("SC+ES accepted")
	}
}
