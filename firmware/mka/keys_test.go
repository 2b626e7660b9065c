package mka

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// testdata/mka-keys.json is a copy of the project's shared vectors:
// IEEE 802.1X-2020 Annex G and RFC 3394.
type vectors struct {
	KDF []struct {
		Name, Key, Label, Context, Out string
		Bits                           int
	}
	CAK []struct{ Name, CAK, CKN, KEK, ICK string }
	SAK []struct {
		Name  string   `json:"name"`
		CAK   string   `json:"cak"`
		Nonce string   `json:"ks_nonce"`
		MIs   []string `json:"mis"`
		KN    uint32   `json:"kn"`
		SAK   string   `json:"sak"`
	}
	Keywrap []struct{ Name, KEK, Data, Wrapped string }
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadVectors(t *testing.T) vectors {
	b, err := os.ReadFile("testdata/mka-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.KDF) == 0 || len(v.CAK) == 0 || len(v.SAK) == 0 || len(v.Keywrap) == 0 {
		t.Fatal("vector file lost a section")
	}
	return v
}

func TestCMACRFC4493(t *testing.T) {
	key := unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	for _, c := range []struct {
		n    int
		want string
	}{{0, "bb1d6929e95937287fa37d129b756746"}, {16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"}, {64, "51f0bebf7e3b9d92fc49741779363cfe"}} {
		got, err := cmac(key, msg[:c.n])
		if err != nil || hex.EncodeToString(got[:]) != c.want {
			t.Errorf("CMAC of %d bytes = %x, want %s (%v)", c.n, got, c.want, err)
		}
	}
}

func TestKDFVectors(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.KDF {
		got, err := KDF(unhex(t, c.Key), c.Label, unhex(t, c.Context), c.Bits)
		if err != nil || hex.EncodeToString(got) != c.Out {
			t.Errorf("%s: KDF = %x, want %s (%v)", c.Name, got, c.Out, err)
		}
	}
	for _, c := range v.CAK {
		kek, err := KEK(unhex(t, c.CAK), unhex(t, c.CKN))
		if err != nil || hex.EncodeToString(kek) != c.KEK {
			t.Errorf("%s: KEK = %x, want %s (%v)", c.Name, kek, c.KEK, err)
		}
		ick, err := ICK(unhex(t, c.CAK), unhex(t, c.CKN))
		if err != nil || hex.EncodeToString(ick) != c.ICK {
			t.Errorf("%s: ICK = %x, want %s (%v)", c.Name, ick, c.ICK, err)
		}
	}
	for _, c := range v.SAK {
		var mis [][]byte
		for _, m := range c.MIs {
			mis = append(mis, unhex(t, m))
		}
		sak, err := SAK(unhex(t, c.CAK), unhex(t, c.Nonce), mis, c.KN, 16)
		if err != nil || hex.EncodeToString(sak) != c.SAK {
			t.Errorf("%s: SAK = %x, want %s (%v)", c.Name, sak, c.SAK, err)
		}
	}
}

func TestKDF256BitKeys(t *testing.T) {
	// A 256-bit CAK gives 256-bit KEK and ICK: two CMAC blocks, whose
	// first is the 128-bit derivation's block with L = 256.
	cak := bytes.Repeat([]byte{0x5a}, 32)
	kek, err := KEK(cak, []byte{1, 2, 3})
	if err != nil || len(kek) != 32 {
		t.Fatalf("KEK: %d bytes, %v", len(kek), err)
	}
	ick, _ := ICK(cak, []byte{1, 2, 3})
	if bytes.Equal(kek, ick) || bytes.Equal(kek[:16], kek[16:]) {
		t.Fatal("KEK and ICK, or their halves, coincide")
	}
	first, _ := cmac(cak, append(append([]byte{1}, "IEEE8021 KEK\x00"...), append(keyID([]byte{1, 2, 3}), 1, 0)...))
	if !bytes.Equal(kek[:16], first[:]) {
		t.Fatal("KEK's first block is not AES-CMAC(CAK, 1 || label || 0 || key ID || 256)")
	}
}

func TestKeyWrap(t *testing.T) {
	v := loadVectors(t)
	cases := v.Keywrap
	// RFC 3394 4.6: a 256-bit key wrapped with a 256-bit KEK.
	cases = append(cases, struct{ Name, KEK, Data, Wrapped string }{"RFC 3394 4.6",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
		"28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"})
	for _, c := range cases {
		w, err := Wrap(unhex(t, c.KEK), unhex(t, c.Data))
		if err != nil || hex.EncodeToString(w) != c.Wrapped {
			t.Errorf("%s: wrap = %x, want %s (%v)", c.Name, w, c.Wrapped, err)
		}
		d, err := Unwrap(unhex(t, c.KEK), unhex(t, c.Wrapped))
		if err != nil || hex.EncodeToString(d) != c.Data {
			t.Errorf("%s: unwrap = %x, %v", c.Name, d, err)
		}
		bad := unhex(t, c.Wrapped)
		bad[5] ^= 1
		if _, err := Unwrap(unhex(t, c.KEK), bad); !errors.Is(err, ErrUnwrap) {
			t.Errorf("%s: a corrupted wrap unwrapped: %v", c.Name, err)
		}
	}
	if _, err := Wrap(make([]byte, 16), make([]byte, 12)); err == nil {
		t.Error("wrapped 12 bytes")
	}
}

func TestBadKeyLengths(t *testing.T) {
	if _, err := KEK(make([]byte, 20), []byte{1}); err == nil {
		t.Error("20-byte CAK accepted")
	}
	if _, err := ICK(make([]byte, 16), nil); err == nil {
		t.Error("empty CKN accepted")
	}
	if _, err := SAK(make([]byte, 16), make([]byte, 8), nil, 1, 16); err == nil {
		t.Error("short nonce accepted")
	}
}

// NIST SP 800-38B D.3: AES-256 CMAC, the PRF a 256-bit CAK uses.
func TestCMACAES256(t *testing.T) {
	key := "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	msg := "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
	for _, c := range []struct {
		n   int
		mac string
	}{{0, "028962f61b7bf89efc6b551f4667d983"}, {16, "28a7023f452e8f82bd4bf28d8c37c35c"},
		{40, "aaf3d8f1de5640c232f5b169b9c911e6"}, {64, "e1992190549f6ed5696a2c056c315410"}} {
		got, err := cmac(unhex(t, key), unhex(t, msg)[:c.n])
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != c.mac {
			t.Errorf("%d-octet message: %x, want %s", c.n, got, c.mac)
		}
	}
}
