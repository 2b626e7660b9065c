package mka

// Encoding MKPDUs (IEEE 802.1X-2020 11.11); mkpdu.go decodes them.

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/secwire/secwire/offload/macsec"
)

// Encode builds the Ethernet frame for m: dst, src, etherType, the EAPOL
// header, the parameter sets and the ICV under ick.
func (m *MKPDU) Encode(dst, src net.HardwareAddr, etherType uint16, ick []byte) ([]byte, error) {
	if len(m.CKN) < 1 || len(m.CKN) > maxCKNLen {
		return nil, fmt.Errorf("CKN of %d octets: want 1..32", len(m.CKN))
	}
	b := make([]byte, 0, 256)
	b = append(b, dst...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, etherType)
	b = append(b, eapolVersion, eapolTypeMKA, 0, 0)
	start := len(b)

	flags := m.Capability & 3
	if m.KeyServer {
		flags |= 0x8
	}
	if m.MACsecDesired {
		flags |= 0x4
	}
	b = setHeader(b, m.Version, m.Priority, flags, 28+len(m.CKN))
	b = binary.BigEndian.AppendUint64(b, uint64(m.SCI))
	b = append(b, m.MI[:]...)
	b = binary.BigEndian.AppendUint32(b, m.MN)
	b = append(b, algorithmAgility[:]...)
	b = pad(append(b, m.CKN...), start)

	peers := func(b []byte, typ, o2 uint8, list []PeerEntry) []byte {
		b = setHeader(b, typ, o2, 0, 16*len(list))
		for _, e := range list {
			b = append(b, e.MI[:]...)
			b = binary.BigEndian.AppendUint32(b, e.MN)
		}
		return b
	}
	if len(m.Live) > 0 {
		b = peers(b, setLivePeers, m.KeyServerSSCI, m.Live)
	}
	if len(m.Potential) > 0 {
		b = peers(b, setPotentialPeers, 0, m.Potential)
	}
	if u := m.SAKUse; u != nil {
		o2 := u.LatestAN<<6 | bit(u.LatestTx, 0x20) | bit(u.LatestRx, 0x10) | (u.OldAN&3)<<2 | bit(u.OldTx, 2) | bit(u.OldRx, 1)
		o3 := bit(u.PlainTx, 8) | bit(u.PlainRx, 4) | bit(u.DelayProtect, 1)
		b = setHeader(b, setSAKUse, o2, o3, 40)
		b = append(b, u.Latest.MI[:]...)
		b = binary.BigEndian.AppendUint32(b, u.Latest.KN)
		b = binary.BigEndian.AppendUint32(b, uint32(u.LatestLowest))
		b = append(b, u.Old.MI[:]...)
		b = binary.BigEndian.AppendUint32(b, u.Old.KN)
		b = binary.BigEndian.AppendUint32(b, uint32(u.OldLowest))
	}
	if d := m.DistSAK; d != nil {
		o2 := d.AN<<6 | (d.Offset&3)<<4
		switch {
		case d.Wrapped == nil:
			b = setHeader(b, setDistSAK, o2, 0, 0)
		case d.Suite == macsec.GCMAES128 || d.Suite == 0:
			b = setHeader(b, setDistSAK, o2, 0, 4+len(d.Wrapped))
			b = binary.BigEndian.AppendUint32(b, d.KN)
			b = append(b, d.Wrapped...)
		default:
			b = setHeader(b, setDistSAK, o2, 0, 12+len(d.Wrapped))
			b = binary.BigEndian.AppendUint32(b, d.KN)
			b = binary.BigEndian.AppendUint64(b, d.Suite.ID())
			b = append(b, d.Wrapped...)
		}
	}
	if u := m.SAKUse; u != nil && m.XPN {
		b = setHeader(b, setXPN, m.XPNSuspension, 0, 8)
		b = binary.BigEndian.AppendUint32(b, uint32(u.LatestLowest>>32))
		b = binary.BigEndian.AppendUint32(b, uint32(u.OldLowest>>32))
	}
	if m.ICVIndicator {
		b = setHeader(b, setICVIndicator, 0, 0, icvLen)
	}
	if n := len(b) - start + icvLen; n > MaxMKPDU {
		return nil, fmt.Errorf("MKPDU of %d octets is too long", n)
	}
	binary.BigEndian.PutUint16(b[start-2:], uint16(len(b)-start+icvLen))
	icv, err := ICV(ick, b)
	if err != nil {
		return nil, err
	}
	return append(b, icv[:]...), nil
}

func setHeader(b []byte, typ, o2, o3hi uint8, n int) []byte {
	return append(b, typ, o2, o3hi<<4|uint8(n>>8)&0x0F, uint8(n))
}

// pad fills b with zeros to a multiple of four octets from start.
func pad(b []byte, start int) []byte {
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func bit(v bool, b uint8) uint8 {
	if v {
		return b
	}
	return 0
}
