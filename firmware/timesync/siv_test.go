package timesync

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// RFC 5297 A.1, deterministic AES-SIV (one associated data, no nonce).
func TestSIVRFC5297(t *testing.T) {
	s, err := newSIV(unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"))
	if err != nil {
		t.Fatal(err)
	}
	ad, plain := unhex("101112131415161718191a1b1c1d1e1f2021222324252627"), unhex("112233445566778899aabbccddee")
	v := s.mac.s2v(ad, plain)
	got := append(v[:], s.xor(v, plain)...)
	if want := unhex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"); !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	// With a nonce, as NTS uses it: it opens, and a flipped bit fails.
	sealed := s.seal(ad, []byte("nonce-0123456789"), plain)
	if p, err := s.open(ad, []byte("nonce-0123456789"), sealed); err != nil || !bytes.Equal(p, plain) {
		t.Fatalf("open: %x %v", p, err)
	}
	sealed[20] ^= 1
	if _, err := s.open(ad, []byte("nonce-0123456789"), sealed); err == nil {
		t.Fatal("a changed ciphertext opened")
	}
}
