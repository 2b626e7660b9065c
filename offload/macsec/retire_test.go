package macsec

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// The last round key of AES-128 under the FIPS-197 Appendix A.1 key: the
// key schedule is in memory while the SA is installed, and gone once it is
// retired.
var (
	fipsKey, _       = hex.DecodeString("2b7e151628aed2a6abf7158809cf4f3c")
	fipsLastRound, _ = hex.DecodeString("d014f9a8c9ee2589e13f0cc8b6630ca6")
)

func aeadMemory(a cipher.AEAD) []byte {
	v := reflect.ValueOf(a)
	return unsafe.Slice((*byte)(v.UnsafePointer()), v.Elem().Type().Size())
}

func TestRetiredSAKeyScheduleIsWiped(t *testing.T) {
	s, err := NewSecY(Config{Suite: GCMAES128, SCI: 1, SendSCI: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InstallTxSA(SAParams{AN: 0, Key: NewKey(fipsKey), PN: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.InstallRxSA(2, SAParams{AN: 1, Key: NewKey(fipsKey), PN: 1}); err != nil {
		t.Fatal(err)
	}
	tx, rx := s.TxSA(0).crypto.aead, s.RxSC(2).SA(1).crypto.aead
	if !bytes.Contains(aeadMemory(tx), fipsLastRound) || !bytes.Contains(aeadMemory(rx), fipsLastRound) {
		t.Fatal("the key schedule is not where the test looks for it (Go's GCM changed?)")
	}
	// A worker is inside a batch: the schedule stays until it leaves.
	r := s.NewReader()
	defer s.Release(r)
	r.Enter()
	s.DeleteTxSA(0)
	s.DeleteRxSA(2, 1)
	time.Sleep(20 * time.Millisecond)
	if !bytes.Contains(aeadMemory(tx), fipsLastRound) {
		t.Fatal("wiped while a worker may still use it")
	}
	r.Leave()
	deadline := time.Now().Add(2 * time.Second)
	for s.retiring.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for name, a := range map[string]cipher.AEAD{"transmit": tx, "receive": rx} {
		if m := aeadMemory(a); bytes.Contains(m, fipsLastRound) || bytes.Contains(m, fipsKey) || !bytes.Equal(m, make([]byte, len(m))) {
			t.Errorf("%s SA: key schedule left in memory after it was retired", name)
		}
	}
}

// Replacing an SA retires the one it replaces.
func TestReplacedSAKeyScheduleIsWiped(t *testing.T) {
	s, _ := NewSecY(Config{Suite: GCMAES128, SCI: 1, SendSCI: true})
	s.InstallTxSA(SAParams{AN: 0, Key: NewKey(fipsKey), PN: 1})
	old := s.TxSA(0).crypto.aead
	s.InstallTxSA(SAParams{AN: 0, Key: NewKey(make([]byte, 16)), PN: 1})
	if bytes.Contains(aeadMemory(old), fipsLastRound) {
		t.Error("the replaced SA's key schedule is still in memory")
	}
}
