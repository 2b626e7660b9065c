package mka

import "github.com/secwire/secwire/offload/macsec"

// SecY is the datapath as MKA drives it: the SecY seam, defined once in
// the offload layer that every backend implements.
type SecY = macsec.Seam

// Software adapts the Go codec's SecY to the seam.
type Software struct{ *macsec.SecY }

// TxNextPN implements SecY.
func (s Software) TxNextPN(an uint8) uint64 {
	if sa := s.TxSA(an); sa != nil {
		return sa.NextPN()
	}
	return 0
}

// RxNextPN implements SecY.
func (s Software) RxNextPN(sci macsec.SCI, an uint8) uint64 {
	if sc := s.RxSC(sci); sc != nil {
		if sa := sc.SA(an); sa != nil {
			return sa.LowestPN()
		}
	}
	return 0
}
