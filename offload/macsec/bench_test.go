package macsec

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

var benchSizes = []int{64, 512, 1500, 9000}

// datapathBatch is how many frames the software datapath handles between
// two flushes of its counters.
const datapathBatch = 32

// BenchmarkProtect and BenchmarkSeal run the same frames: Seal is the bare
// AES-GCM cost, so Protect/Seal is the codec's own overhead. `make bench`
// prints the ratio. Protect runs as the datapath runs it: Reserve and Seal
// with the counters gathered in a Tally flushed every datapathBatch frames.
func BenchmarkProtect(b *testing.B) {
	for _, cs := range CipherSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", cs, n), func(b *testing.B) {
				tx, _ := pair(b, Config{Suite: cs, SendSCI: true}, 1)
				f := ethFrame(n)
				out := make([]byte, 0, n+64)
				var t Tally
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					r, err := tx.Reserve(f)
					if err != nil {
						b.Fatal(err)
					}
					out = tx.Seal(out, f, r, &t)
					if i++; i%datapathBatch == 0 {
						tx.Flush(&t)
					}
				}
			})
		}
	}
}

// BenchmarkValidate runs Open and Accept as the datapath does (counters in
// a Tally flushed every datapathBatch frames), beside BenchmarkOpen.
func BenchmarkValidate(b *testing.B) {
	for _, cs := range CipherSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", cs, n), func(b *testing.B) {
				// Cycle through 64 frames; a replay window wider than that
				// keeps them acceptable with replay protection on.
				tx, rx := pair(b, Config{Suite: cs, SendSCI: true, ReplayWindow: 1 << 20}, 1)
				frames := make([][]byte, 64)
				for i := range frames {
					frames[i] = mustProtect(b, tx, ethFrame(n))
				}
				out := make([]byte, 0, n+64)
				var t Tally
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					var o Opened
					var err error
					if out, o, err = rx.Open(out, frames[i&63]); err != nil {
						b.Fatal(err)
					}
					if err := rx.Accept(&o, &t); err != nil {
						b.Fatal(err)
					}
					if i++; i%datapathBatch == 0 {
						rx.Flush(&t)
					}
				}
			})
		}
	}
}

func bareAEAD(b *testing.B, cs CipherSuite) cipher.AEAD {
	blk, err := aes.NewCipher(testKey(cs.KeyLen()).Bytes())
	if err != nil {
		b.Fatal(err)
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkSeal is the baseline: cipher.AEAD.Seal of the same user data
// with the same additional data, no MACsec framing.
func BenchmarkSeal(b *testing.B) {
	for _, cs := range CipherSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", cs, n), func(b *testing.B) {
				a := bareAEAD(b, cs)
				f := ethFrame(n)
				aad := make([]byte, 12+16)
				iv := make([]byte, 12)
				out := make([]byte, 0, n+64)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					out = a.Seal(out[:0], iv, f[12:], aad)
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, cs := range CipherSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", cs, n), func(b *testing.B) {
				a := bareAEAD(b, cs)
				f := ethFrame(n)
				aad := make([]byte, 12+16)
				iv := make([]byte, 12)
				// As many ciphertexts as BenchmarkValidate cycles
				// through: the same memory footprint.
				cts := make([][]byte, 64)
				for i := range cts {
					cts[i] = a.Seal(nil, iv, f[12:], aad)
				}
				out := make([]byte, 0, n+64)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					var err error
					if out, err = a.Open(out[:0], iv, cts[i&63], aad); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
