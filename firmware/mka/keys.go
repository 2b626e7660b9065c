package mka

// The cryptography of MKA: AES-CMAC (RFC 4493), the 802.1X key derivation
// function, the KEK/ICK/SAK derivations, the MKPDU ICV and AES Key Wrap
// (RFC 3394) for distributing SAKs.

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// cmac computes AES-CMAC (RFC 4493) of msg under key (16 or 32 bytes).
func cmac(key, msg []byte) ([16]byte, error) {
	var out [16]byte
	b, err := aes.NewCipher(key)
	if err != nil {
		return out, err
	}
	var l, k1, k2 [16]byte
	b.Encrypt(l[:], l[:])
	double := func(dst, src *[16]byte) {
		carry := src[0] >> 7
		for i := 0; i < 15; i++ {
			dst[i] = src[i]<<1 | src[i+1]>>7
		}
		dst[15] = src[15] << 1
		dst[15] ^= 0x87 * carry
	}
	double(&k1, &l)
	double(&k2, &k1)
	n := (len(msg) + 15) / 16
	complete := n > 0 && len(msg)%16 == 0
	if n == 0 {
		n = 1
	}
	var x, last [16]byte
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x[:], x[:], msg[i*16:(i+1)*16])
		b.Encrypt(x[:], x[:])
	}
	tail := msg[(n-1)*16:]
	if complete {
		subtle.XORBytes(last[:], tail, k1[:])
	} else {
		copy(last[:], tail)
		last[len(tail)] = 0x80
		subtle.XORBytes(last[:], last[:], k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	b.Encrypt(out[:], x[:])
	return out, nil
}

// KDF is the key derivation function of IEEE 802.1X-2020 6.2.1: AES-CMAC
// in counter mode over i || Label || 0x00 || Context || L, L in bits.
func KDF(key []byte, label string, context []byte, bits int) ([]byte, error) {
	if bits%128 != 0 || bits <= 0 || bits > 256 {
		return nil, fmt.Errorf("KDF output of %d bits: want 128 or 256", bits)
	}
	out := make([]byte, 0, bits/8)
	msg := make([]byte, 0, 1+len(label)+1+len(context)+2)
	for i := 1; len(out) < bits/8; i++ {
		msg = append(msg[:0], byte(i))
		msg = append(msg, label...)
		msg = append(msg, 0)
		msg = append(msg, context...)
		msg = binary.BigEndian.AppendUint16(msg, uint16(bits))
		m, err := cmac(key, msg)
		if err != nil {
			return nil, err
		}
		out = append(out, m[:]...)
	}
	return out, nil
}

// keyID is the KDF context for KEK and ICK: the first 16 octets of the
// CKN, zero padded.
func keyID(ckn []byte) []byte {
	id := make([]byte, 16)
	copy(id, ckn)
	return id
}

func checkCAK(cak, ckn []byte) error {
	if len(cak) != 16 && len(cak) != 32 {
		return fmt.Errorf("CAK is %d bytes: want 16 or 32", len(cak))
	}
	if len(ckn) < 1 || len(ckn) > 32 {
		return fmt.Errorf("CKN is %d bytes: want 1..32", len(ckn))
	}
	return nil
}

// KEK derives the key encrypting key from a CAK and its CKN.
func KEK(cak, ckn []byte) ([]byte, error) {
	if err := checkCAK(cak, ckn); err != nil {
		return nil, err
	}
	return KDF(cak, "IEEE8021 KEK", keyID(ckn), len(cak)*8)
}

// ICK derives the ICV key from a CAK and its CKN.
func ICK(cak, ckn []byte) ([]byte, error) {
	if err := checkCAK(cak, ckn); err != nil {
		return nil, err
	}
	return KDF(cak, "IEEE8021 ICK", keyID(ckn), len(cak)*8)
}

// SAK derives a SAK the KDF way (802.1X-2020 9.8.1): from the CAK, a
// fresh nonce as long as the SAK, the key server's MI, the live peers'
// MIs in order, and the key number.
func SAK(cak, nonce []byte, mis [][]byte, kn uint32, sakLen int) ([]byte, error) {
	if sakLen != 16 && sakLen != 32 {
		return nil, fmt.Errorf("SAK of %d bytes: want 16 or 32", sakLen)
	}
	if len(nonce) != sakLen {
		return nil, fmt.Errorf("KS-nonce is %d bytes: want %d", len(nonce), sakLen)
	}
	ctx := append([]byte(nil), nonce...)
	for _, mi := range mis {
		ctx = append(ctx, mi...)
	}
	ctx = binary.BigEndian.AppendUint32(ctx, kn)
	return KDF(cak, "IEEE8021 SAK", ctx, sakLen*8)
}

// ICV is an MKPDU's integrity check value: AES-CMAC with the ICK over the
// frame from the destination address up to the ICV.
func ICV(ick, frame []byte) ([16]byte, error) { return cmac(ick, frame) }

// keyWrapIV is RFC 3394's default initial value.
var keyWrapIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// Wrap wraps key material (a multiple of 8 bytes, at least 16) with the
// KEK, as RFC 3394 2.2.1 specifies.
func Wrap(kek, data []byte) ([]byte, error) {
	if len(data)%8 != 0 || len(data) < 16 {
		return nil, fmt.Errorf("key wrap: %d bytes of key: want a multiple of 8, at least 16", len(data))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(data) / 8
	out := make([]byte, 8+len(data))
	copy(out, keyWrapIV[:])
	copy(out[8:], data)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], out[:8])
			copy(buf[8:], out[i*8:i*8+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[i*8:], buf[8:])
		}
	}
	return out, nil
}

// ErrUnwrap is returned when wrapped key material fails its integrity check.
var ErrUnwrap = errors.New("key unwrap: integrity check failed (wrong KEK or corrupted key)")

// Unwrap reverses Wrap and checks the integrity value.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, fmt.Errorf("key unwrap: %d bytes: want a multiple of 8, at least 24", len(wrapped))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	a := binary.BigEndian.Uint64(wrapped[:8])
	r := append([]byte(nil), wrapped[8:]...)
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], a^t)
			copy(buf[8:], r[(i-1)*8:i*8])
			b.Decrypt(buf[:], buf[:])
			a = binary.BigEndian.Uint64(buf[:8])
			copy(r[(i-1)*8:], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(binary.BigEndian.AppendUint64(nil, a), keyWrapIV[:]) != 1 {
		clear(r)
		return nil, ErrUnwrap
	}
	return r, nil
}
