package macsec

// Seam is the SecY as key agreement drives it: the SecY seam of
// docs/design.md. MKA and static keys install SAs and read PNs through
// it and nothing else; every datapath backend provides it (this package's
// SecY, the Go codec, itself; offload/kernel's Datapath, the kernel's
// macsec driver in software or offloaded), and offload/secytest checks
// that they behave alike.
type Seam interface {
	InstallTxSA(p SAParams) error
	SetEncodingSA(an int) error
	EncodingSA() int
	DeleteTxSA(an uint8)
	InstallRxSA(sci SCI, p SAParams) error
	DeleteRxSA(sci SCI, an uint8)
	DeleteRxSC(sci SCI)
	// TxNextPN is the next PN the transmit SA will use; 0 when absent.
	TxNextPN(an uint8) uint64
	// RxNextPN is the lowest PN the receive SA accepts next; 0 when absent.
	RxNextPN(sci SCI, an uint8) uint64
}

var _ Seam = (*SecY)(nil)
