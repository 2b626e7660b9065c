package timesync

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
)

// AEAD_AES_SIV_CMAC_256 (RFC 5297), the AEAD that NTS (RFC 8915) uses:
// a 32-byte key, K1 for S2V (AES-CMAC) and K2 for CTR. The standard
// library has neither CMAC nor SIV.

// cmac is AES-CMAC (RFC 4493).
type cmac struct {
	b      cipher.Block
	k1, k2 [16]byte
}

func newCMAC(key []byte) (*cmac, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	c := &cmac{b: b}
	var l [16]byte
	b.Encrypt(l[:], l[:])
	c.k1 = dbl(l)
	c.k2 = dbl(c.k1)
	return c, nil
}

// dbl is multiplication by x in GF(2^128) (RFC 5297 2.3).
func dbl(in [16]byte) [16]byte {
	var out [16]byte
	carry := in[0] >> 7
	for i := 0; i < 15; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[15] = in[15] << 1
	if carry != 0 {
		out[15] ^= 0x87
	}
	return out
}

func (c *cmac) sum(m []byte) [16]byte {
	var x, last [16]byte
	n := (len(m) + 15) / 16
	if n == 0 {
		n = 1
	}
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x[:], x[:], m[16*i:16*i+16])
		c.b.Encrypt(x[:], x[:])
	}
	rest := m[16*(n-1):]
	if len(rest) == 16 {
		subtle.XORBytes(last[:], rest, c.k1[:])
	} else {
		copy(last[:], rest)
		last[len(rest)] = 0x80
		subtle.XORBytes(last[:], last[:], c.k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	c.b.Encrypt(x[:], x[:])
	return x
}

// s2v is RFC 5297 2.4 over the strings; the last is the plaintext.
func (c *cmac) s2v(strs ...[]byte) [16]byte {
	var zero [16]byte
	d := c.sum(zero[:])
	for _, s := range strs[:len(strs)-1] {
		d = dbl(d)
		m := c.sum(s)
		subtle.XORBytes(d[:], d[:], m[:])
	}
	last := strs[len(strs)-1]
	var t []byte
	if len(last) >= 16 {
		t = append([]byte(nil), last...)
		subtle.XORBytes(t[len(t)-16:], t[len(t)-16:], d[:])
	} else {
		d = dbl(d)
		var p [16]byte
		copy(p[:], last)
		p[len(last)] = 0x80
		subtle.XORBytes(p[:], p[:], d[:])
		t = p[:]
	}
	return c.sum(t)
}

// siv is AEAD_AES_SIV_CMAC_256.
type siv struct {
	mac *cmac
	ctr cipher.Block
}

func newSIV(key []byte) (*siv, error) {
	if len(key) != 32 {
		return nil, errors.New("AES-SIV-CMAC-256 needs a 32-byte key")
	}
	mac, err := newCMAC(key[:16])
	if err != nil {
		return nil, err
	}
	ctr, err := aes.NewCipher(key[16:])
	if err != nil {
		return nil, err
	}
	return &siv{mac: mac, ctr: ctr}, nil
}

func (s *siv) xor(v [16]byte, in []byte) []byte {
	q := v
	q[8] &= 0x7f // clear bits 63 and 31 (RFC 5297 2.6)
	q[12] &= 0x7f
	out := make([]byte, len(in))
	cipher.NewCTR(s.ctr, q[:]).XORKeyStream(out, in)
	return out
}

// seal returns V || C for the associated data, nonce and plaintext.
func (s *siv) seal(ad, nonce, plain []byte) []byte {
	v := s.mac.s2v(ad, nonce, plain)
	return append(v[:], s.xor(v, plain)...)
}

// open checks and decrypts V || C.
func (s *siv) open(ad, nonce, sealed []byte) ([]byte, error) {
	if len(sealed) < 16 {
		return nil, errors.New("AES-SIV: ciphertext shorter than its tag")
	}
	var v [16]byte
	copy(v[:], sealed)
	plain := s.xor(v, sealed[16:])
	if w := s.mac.s2v(ad, nonce, plain); subtle.ConstantTimeCompare(w[:], v[:]) != 1 {
		return nil, errors.New("AES-SIV: authentication failed")
	}
	return plain, nil
}
