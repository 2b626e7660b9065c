package mka

import "github.com/secwire/secwire/offload/macsec"

// SecY is the datapath as MKA drives it: the SecY seam of
// ARCHITECTURE.md. MKA installs SAs and reads PNs through it and nothing
// else; every backend (software, kernel, offload) provides it.
type SecY interface {
	InstallTxSA(p macsec.SAParams) error
	SetEncodingSA(an int) error
	EncodingSA() int
	DeleteTxSA(an uint8)
	InstallRxSA(sci macsec.SCI, p macsec.SAParams) error
	DeleteRxSA(sci macsec.SCI, an uint8)
	DeleteRxSC(sci macsec.SCI)
	// TxNextPN is the next PN the transmit SA will use; 0 when absent.
	TxNextPN(an uint8) uint64
	// RxNextPN is the lowest PN the receive SA accepts next; 0 when absent.
	RxNextPN(sci macsec.SCI, an uint8) uint64
}

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
