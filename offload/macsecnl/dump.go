package macsecnl

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/secwire/secwire/offload/macsec"
)

// SecY is a macsec link as the kernel reports it.
type SecY struct {
	Ifindex    int
	SCI        SCI
	Cipher     macsec.CipherSuite // 0 for a suite the table does not know
	ICVLen     uint8
	EncodingSA uint8
	Window     uint32
	Protect    bool
	Replay     bool
	Oper       bool // operational: the encoding SA is installed and active
	Encrypt    bool
	SendSCI    bool
	EndStation bool
	SCB        bool
	Validate   Validate
	Offload    Offload
	TxSC       TxSCStats
	Stats      SecYStats
	TxSAs      []SAState
	RxSCs      []RxSCState
}

// SAState is an SA as dumped: never the key, only its key ID.
type SAState struct {
	AN     uint8
	Active bool
	PN     uint64 // next PN (TX) or lowest acceptable PN (RX)
	KeyID  [16]byte
	SSCI   uint32
	Stats  SAStats
}

// RxSCState is a receive SC as dumped.
type RxSCState struct {
	SCI    SCI
	Active bool
	Stats  RxSCStats
	SAs    []SAState
}

// SAStats are the per-SA counters (IEEE 802.1AE names).
type SAStats struct {
	InPktsOK, InPktsInvalid, InPktsNotValid, InPktsNotUsingSA, InPktsUnusedSA uint32
	OutPktsProtected, OutPktsEncrypted                                        uint32
}

// RxSCStats are the per-receive-SC counters.
type RxSCStats struct {
	InOctetsValidated, InOctetsDecrypted                                uint64
	InPktsUnchecked, InPktsDelayed, InPktsOK, InPktsInvalid, InPktsLate uint64
	InPktsNotValid, InPktsNotUsingSA, InPktsUnusedSA                    uint64
}

// TxSCStats are the transmit SC counters.
type TxSCStats struct {
	OutPktsProtected, OutPktsEncrypted, OutOctetsProtected, OutOctetsEncrypted uint64
}

// SecYStats are the SecY counters.
type SecYStats struct {
	OutPktsUntagged, InPktsUntagged, OutPktsTooLong, InPktsNoTag uint64
	InPktsBadTag, InPktsUnknownSCI, InPktsNoSCI, InPktsOverrun   uint64
}

// Get reads one macsec link's SecY, SCs, SAs and counters.
func (c *Client) Get(ifindex int) (*SecY, error) {
	msgs, err := c.gen.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmdGetTxSC, Version: 1},
	}, c.family, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, opError("dump", err, "")
	}
	for _, m := range msgs {
		s, err := parseSecY(m.Data)
		if err != nil {
			return nil, fmt.Errorf("macsec: dump: %w", err)
		}
		if s.Ifindex == ifindex {
			return s, nil
		}
	}
	return nil, fmt.Errorf("macsec: ifindex %d is not a macsec link", ifindex)
}

func parseSecY(b []byte) (*SecY, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	s := &SecY{}
	for ad.Next() {
		switch ad.Type() {
		case attrIfindex:
			s.Ifindex = int(ad.Uint32())
		case attrSecY:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				for ad.Next() {
					switch ad.Type() {
					case secySCI:
						copy(s.SCI[:], ad.Bytes())
					case secyEncodingSA:
						s.EncodingSA = ad.Uint8()
					case secyWindow:
						s.Window = ad.Uint32()
					case secyCipher:
						id := ad.Uint64()
						if id == defaultCipherID {
							id = macsec.GCMAES128.ID() // the kernel reports the pre-2018 identifier
						}
						if c, ok := macsec.SuiteByID(id); ok {
							s.Cipher = c
						}
					case secyICVLen:
						s.ICVLen = ad.Uint8()
					case secyProtect:
						s.Protect = ad.Uint8() != 0
					case secyReplay:
						s.Replay = ad.Uint8() != 0
					case secyOper:
						s.Oper = ad.Uint8() != 0
					case secyValidate:
						s.Validate = Validate(ad.Uint8())
					case secyEncrypt:
						s.Encrypt = ad.Uint8() != 0
					case secyIncSCI:
						s.SendSCI = ad.Uint8() != 0
					case secyES:
						s.EndStation = ad.Uint8() != 0
					case secySCB:
						s.SCB = ad.Uint8() != 0
					}
				}
				return nil
			})
		case attrOffload:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				for ad.Next() {
					if ad.Type() == offloadType {
						s.Offload = Offload(ad.Uint8())
					}
				}
				return nil
			})
		case attrTxSCStats:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				u64s(ad, &s.TxSC.OutPktsProtected, &s.TxSC.OutPktsEncrypted, &s.TxSC.OutOctetsProtected, &s.TxSC.OutOctetsEncrypted)
				return nil
			})
		case attrSecYStats:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				st := &s.Stats
				u64s(ad, &st.OutPktsUntagged, &st.InPktsUntagged, &st.OutPktsTooLong, &st.InPktsNoTag,
					&st.InPktsBadTag, &st.InPktsUnknownSCI, &st.InPktsNoSCI, &st.InPktsOverrun)
				return nil
			})
		case attrTxSAList:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				s.TxSAs = parseSAList(ad)
				return nil
			})
		case attrRxSCList:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				for ad.Next() {
					var sc RxSCState
					ad.Nested(func(ad *netlink.AttributeDecoder) error {
						for ad.Next() {
							switch ad.Type() {
							case rxscSCI:
								copy(sc.SCI[:], ad.Bytes())
							case rxscActive:
								sc.Active = ad.Uint8() != 0
							case rxscStats:
								ad.Nested(func(ad *netlink.AttributeDecoder) error {
									st := &sc.Stats
									u64s(ad, &st.InOctetsValidated, &st.InOctetsDecrypted, &st.InPktsUnchecked,
										&st.InPktsDelayed, &st.InPktsOK, &st.InPktsInvalid, &st.InPktsLate,
										&st.InPktsNotValid, &st.InPktsNotUsingSA, &st.InPktsUnusedSA)
									return nil
								})
							case rxscSAList:
								ad.Nested(func(ad *netlink.AttributeDecoder) error {
									sc.SAs = parseSAList(ad)
									return nil
								})
							}
						}
						return nil
					})
					s.RxSCs = append(s.RxSCs, sc)
				}
				return nil
			})
		}
	}
	return s, ad.Err()
}

// parseSAList reads a list of nested SAs.
func parseSAList(ad *netlink.AttributeDecoder) []SAState {
	var out []SAState
	for ad.Next() {
		var sa SAState
		ad.Nested(func(ad *netlink.AttributeDecoder) error {
			for ad.Next() {
				switch ad.Type() {
				case saAN:
					sa.AN = ad.Uint8()
				case saActive:
					sa.Active = ad.Uint8() != 0
				case saPN:
					if len(ad.Bytes()) == 8 {
						sa.PN = ad.Uint64()
					} else {
						sa.PN = uint64(ad.Uint32())
					}
				case saKeyID:
					copy(sa.KeyID[:], ad.Bytes())
				case saSSCI:
					if b := ad.Bytes(); len(b) == 4 {
						sa.SSCI = binary.BigEndian.Uint32(b) // network byte order
					}
				case saStats:
					ad.Nested(func(ad *netlink.AttributeDecoder) error {
						st := &sa.Stats
						fields := []*uint32{&st.InPktsOK, &st.InPktsInvalid, &st.InPktsNotValid,
							&st.InPktsNotUsingSA, &st.InPktsUnusedSA, &st.OutPktsProtected, &st.OutPktsEncrypted}
						for ad.Next() {
							if t := int(ad.Type()); t >= 1 && t <= len(fields) {
								*fields[t-1] = ad.Uint32()
							}
						}
						return nil
					})
				}
			}
			return nil
		})
		out = append(out, sa)
	}
	return out
}

// u64s reads counters numbered 1..len(dst) (padding attributes are
// skipped: they carry a number past the last counter).
func u64s(ad *netlink.AttributeDecoder, dst ...*uint64) {
	for ad.Next() {
		if t := int(ad.Type()); t >= 1 && t <= len(dst) {
			*dst[t-1] = ad.Uint64()
		}
	}
}
