// Package secytest is the conformance suite of the SecY seam: the same
// checks run against every datapath backend (the Go codec on the host, the
// kernel's macsec driver in a QEMU guest), so MKA can rely on one
// behaviour whichever backend a link runs on.
package secytest

import (
	"bytes"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
)

// New makes a fresh SecY of the suite (replay window 0, strict
// validation) and removes it when the test ends.
type New func(t *testing.T, suite macsec.CipherSuite) macsec.Seam

// Run runs every check for every cipher suite.
func Run(t *testing.T, newSecY New) {
	for _, suite := range macsec.CipherSuites {
		t.Run(suite.String(), func(t *testing.T) {
			t.Run("transmit SAs", func(t *testing.T) { transmit(t, newSecY(t, suite), suite) })
			t.Run("receive SAs", func(t *testing.T) { receive(t, newSecY(t, suite), suite) })
			t.Run("bad input", func(t *testing.T) { badInput(t, newSecY(t, suite), suite) })
		})
	}
}

func key(suite macsec.CipherSuite, fill byte) macsec.Key {
	return macsec.NewKey(bytes.Repeat([]byte{fill}, suite.KeyLen()))
}

func params(suite macsec.CipherSuite, an uint8, fill byte, pn uint64) macsec.SAParams {
	p := macsec.SAParams{AN: an, Key: key(suite, fill), PN: pn}
	if suite.XPN() {
		p.SSCI = 1
		p.Salt = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	}
	return p
}

var peer = macsec.SCI(0x025e00000b010001)

func transmit(t *testing.T, s macsec.Seam, suite macsec.CipherSuite) {
	if got := s.EncodingSA(); got != -1 {
		t.Errorf("fresh SecY: encoding SA %d, want -1", got)
	}
	if pn := s.TxNextPN(0); pn != 0 {
		t.Errorf("TxNextPN of an absent SA = %d, want 0", pn)
	}
	if err := s.InstallTxSA(params(suite, 0, 0x11, 5)); err != nil {
		t.Fatalf("InstallTxSA: %v", err)
	}
	if pn := s.TxNextPN(0); pn != 5 {
		t.Errorf("TxNextPN = %d, want 5", pn)
	}
	if err := s.SetEncodingSA(0); err != nil {
		t.Fatalf("SetEncodingSA(0): %v", err)
	}
	if got := s.EncodingSA(); got != 0 {
		t.Errorf("encoding SA %d, want 0", got)
	}
	// A second SA beside it, then the switch to it, as a rekey does.
	pn := uint64(1000)
	if suite.XPN() {
		pn = 0x1_0000_0005 // above 32 bits: XPN must keep all 64
	}
	if err := s.InstallTxSA(params(suite, 1, 0x22, pn)); err != nil {
		t.Fatalf("InstallTxSA AN 1: %v", err)
	}
	if got := s.TxNextPN(1); got != pn {
		t.Errorf("TxNextPN(1) = %#x, want %#x", got, pn)
	}
	if err := s.SetEncodingSA(1); err != nil {
		t.Fatalf("SetEncodingSA(1): %v", err)
	}
	// Replacing an SA with the same AN takes the new PN.
	if err := s.InstallTxSA(params(suite, 0, 0x33, 77)); err != nil {
		t.Fatalf("replace AN 0: %v", err)
	}
	if got := s.TxNextPN(0); got != 77 {
		t.Errorf("replaced SA: TxNextPN = %d, want 77", got)
	}
	s.DeleteTxSA(0)
	if got := s.TxNextPN(0); got != 0 {
		t.Errorf("deleted SA still has PN %d", got)
	}
	if got := s.EncodingSA(); got != 1 {
		t.Errorf("deleting another AN changed the encoding SA to %d", got)
	}
	s.DeleteTxSA(1)
	s.DeleteTxSA(1) // deleting twice is harmless
	if got := s.TxNextPN(1); got != 0 {
		t.Errorf("deleted SA still has PN %d", got)
	}
}

func receive(t *testing.T, s macsec.Seam, suite macsec.CipherSuite) {
	if got := s.RxNextPN(peer, 0); got != 0 {
		t.Errorf("RxNextPN of an absent SA = %d", got)
	}
	if err := s.InstallRxSA(peer, params(suite, 2, 0x44, 9)); err != nil {
		t.Fatalf("InstallRxSA: %v", err)
	}
	if got := s.RxNextPN(peer, 2); got != 9 {
		t.Errorf("RxNextPN = %d, want 9", got)
	}
	if err := s.InstallRxSA(peer, params(suite, 3, 0x55, 1)); err != nil {
		t.Fatalf("InstallRxSA AN 3: %v", err)
	}
	s.DeleteRxSA(peer, 2)
	if got := s.RxNextPN(peer, 2); got != 0 {
		t.Errorf("deleted receive SA still has PN %d", got)
	}
	if got := s.RxNextPN(peer, 3); got != 1 {
		t.Errorf("the other receive SA: PN %d, want 1", got)
	}
	s.DeleteRxSC(peer)
	if got := s.RxNextPN(peer, 3); got != 0 {
		t.Errorf("SA of a deleted SC still has PN %d", got)
	}
	// The SC comes back with the next SA.
	if err := s.InstallRxSA(peer, params(suite, 0, 0x66, 3)); err != nil {
		t.Fatalf("InstallRxSA after DeleteRxSC: %v", err)
	}
	if got := s.RxNextPN(peer, 0); got != 3 {
		t.Errorf("RxNextPN = %d, want 3", got)
	}
}

func badInput(t *testing.T, s macsec.Seam, suite macsec.CipherSuite) {
	if err := s.SetEncodingSA(2); err == nil {
		t.Error("SetEncodingSA to an AN with no SA succeeded")
	}
	if got := s.EncodingSA(); got != -1 {
		t.Errorf("failed SetEncodingSA changed the encoding SA to %d", got)
	}
	other := macsec.GCMAES256
	if suite.KeyLen() == 32 {
		other = macsec.GCMAES128
	}
	p := params(suite, 0, 0x77, 1)
	p.Key = key(other, 0x77)
	if err := s.InstallTxSA(p); err == nil {
		t.Errorf("a %d-byte key accepted for %s", other.KeyLen(), suite)
	}
	if err := s.InstallRxSA(peer, p); err == nil {
		t.Errorf("a %d-byte receive key accepted for %s", other.KeyLen(), suite)
	}
	if got := s.TxNextPN(0); got != 0 {
		t.Errorf("a refused SA is installed with PN %d", got)
	}
}
