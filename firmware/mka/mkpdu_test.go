package mka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
)

var (
	testSrc = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	testICK = bytes.Repeat([]byte{0x42}, 16)
)

func fullPDU() *MKPDU {
	mi := func(b byte) MI { var m MI; m[0], m[11] = b, b; return m }
	return &MKPDU{
		Version: 3, Priority: 7, KeyServer: true, MACsecDesired: true, Capability: 3,
		SCI: 0x020000000a0001, MI: mi(1), MN: 99, CKN: []byte{0xab, 0xcd, 0xef},
		Live:          []PeerEntry{{MI: mi(2), MN: 5}, {MI: mi(3), MN: 6}},
		Potential:     []PeerEntry{{MI: mi(4), MN: 1}},
		KeyServerSSCI: 1,
		SAKUse: &SAKUse{LatestAN: 2, LatestTx: true, LatestRx: true, OldAN: 1, OldRx: true, DelayProtect: true,
			Latest: KI{MI: mi(1), KN: 8}, Old: KI{MI: mi(1), KN: 7},
			LatestLowest: 0x1_0000_0005, OldLowest: 0x2_0000_0007},
		DistSAK:       &DistSAK{AN: 2, Offset: 1, KN: 8, Suite: macsec.GCMAESXPN256, Wrapped: bytes.Repeat([]byte{9}, 40)},
		XPN:           true,
		XPNSuspension: 0,
		ICVIndicator:  true,
	}
}

func TestMKPDURoundTrip(t *testing.T) {
	cases := map[string]*MKPDU{"every parameter set": fullPDU()}
	short := fullPDU()
	short.DistSAK = &DistSAK{AN: 1, Offset: 2, KN: 3, Suite: macsec.GCMAES128, Wrapped: bytes.Repeat([]byte{7}, 24)}
	short.XPN, short.ICVIndicator, short.Version = false, false, 1
	short.SAKUse.LatestLowest, short.SAKUse.OldLowest = 5, 7
	short.KeyServerSSCI = 0
	cases["GCM-AES-128 short form, no XPN, no ICV indicator"] = short
	hello := &MKPDU{Version: 1, Priority: 255, SCI: 1, MN: 1, CKN: bytes.Repeat([]byte{1}, 32)}
	cases["hello with a 32-octet CKN"] = hello
	plain := fullPDU()
	plain.DistSAK = &DistSAK{AN: 0}
	cases["distributed SAK: MACsec not used"] = plain
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			frame, err := m.Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
			if err != nil {
				t.Fatal(err)
			}
			if body := len(frame) - 18; body%4 != 0 {
				t.Errorf("MKPDU of %d octets is not padded to four", body)
			}
			f, err := Decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			if !f.Verify(testICK) {
				t.Error("ICV does not verify")
			}
			if f.Verify(bytes.Repeat([]byte{0x43}, 16)) {
				t.Error("ICV verifies under another ICK")
			}
			if !reflect.DeepEqual(f.PDU, m) {
				t.Errorf("decoded\n%+v\nwant\n%+v", f.PDU, m)
			}
			if !bytes.Equal(f.Src, testSrc) {
				t.Errorf("source %s", f.Src)
			}
		})
	}
}

// Dropping tags the line keeps in clear must not change the ICV input:
// the ICV covers the frame as received, tags included.
func TestDecodeSkipsVLANTags(t *testing.T) {
	frame, _ := fullPDU().Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
	tagged := append(append(append([]byte{}, frame[:12]...), 0x81, 0x00, 0x00, 0x64), frame[12:]...)
	f, err := Decode(tagged)
	if err != nil {
		t.Fatal(err)
	}
	if f.Verify(testICK) {
		t.Error("ICV of the untagged frame verifies over the tagged one")
	}
	if f.PDU.MN != 99 {
		t.Errorf("MN %d", f.PDU.MN)
	}
}

func TestDecodeRejectsBadFrames(t *testing.T) {
	good, _ := fullPDU().Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	const basic = 18                   // first octet of the Basic Parameter Set
	const afterBasic = 18 + 4 + 28 + 4 // the Live Peer List (CKN of 3 padded to 4)
	cases := []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"empty", nil, ReasonTruncated},
		{"no EAPOL header", good[:15], ReasonTruncated},
		{"EAPOL-Start, not MKA", mod(func(b []byte) []byte { b[15] = 1; return b }), ReasonBadEAPOL},
		{"EAPOL body longer than the frame", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 4000); return b }), ReasonTruncated},
		{"MKPDU too short for a Basic Parameter Set", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 30); return b }), ReasonTruncated},
		{"MKA version 0", mod(func(b []byte) []byte { b[basic] = 0; return b }), ReasonBadVersion},
		{"Basic Parameter Set longer than the MKPDU", mod(func(b []byte) []byte { b[basic+2] |= 0x0F; return b }), ReasonBadLength},
		{"CKN of 0 octets", mod(func(b []byte) []byte { b[basic+3] = 28; return b }), ReasonBadLength},
		{"unknown algorithm agility", mod(func(b []byte) []byte { b[basic+4+24] = 0x99; return b }), ReasonBadAgility},
		{"peer list not a multiple of 16", mod(func(b []byte) []byte { b[afterBasic+3] = 20; return b }), ReasonBadLength},
		{"parameter set running into the ICV", mod(func(b []byte) []byte { b[afterBasic+3] = 0xF0; return b }), ReasonBadLength},
		{"oversize", make([]byte, MaxMKPDU+100), ReasonOversize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.frame)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err %v, want a DecodeError", err)
			}
			if de.Reason != c.want {
				t.Errorf("reason %s (%s), want %s", de.Reason, de.Detail, c.want)
			}
		})
	}
}

func TestDecodeSkipsIgnoredSets(t *testing.T) {
	m := &MKPDU{Version: 1, Priority: 1, SCI: 1, MN: 1, CKN: []byte{1}}
	frame, _ := m.Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
	// Splice an Announcement (type 7) and a Distributed CAK (type 5)
	// before the ICV and fix the lengths.
	extra := []byte{7, 0, 0, 3, 1, 2, 3, 0, 5, 0, 0, 4, 9, 9, 9, 9}
	body := append(append([]byte{}, frame[:len(frame)-16]...), extra...)
	binary.BigEndian.PutUint16(body[16:], uint16(len(body)-18+16))
	icv, _ := ICV(testICK, body)
	f, err := Decode(append(body, icv[:]...))
	if err != nil {
		t.Fatal(err)
	}
	if f.PDU.Ignored != 2 || !f.Verify(testICK) {
		t.Errorf("ignored %d, verify %v", f.PDU.Ignored, f.Verify(testICK))
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []*MKPDU{fullPDU(), {Version: 1, SCI: 1, MN: 1, CKN: []byte{1}}} {
		b, _ := m.Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError", err)
			}
			return
		}
		fr.Verify(testICK)
		// What decodes re-encodes, and decodes to the same message.
		out, err := fr.PDU.Encode(DefaultDestination, testSrc, EtherTypeEAPOL, testICK)
		if err != nil {
			return // e.g. a wrapped SAK of a length Encode does not produce
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded MKPDU does not decode: %v", err)
		}
		again.PDU.Ignored = fr.PDU.Ignored
		if !reflect.DeepEqual(normalize(again.PDU), normalize(fr.PDU)) {
			t.Fatalf("round trip changed the MKPDU:\n%+v\n%+v", again.PDU, fr.PDU)
		}
	})
}

// normalize clears what the wire cannot carry back unchanged: an empty
// peer list is not sent, the suite of the short form is implicit, and a
// Key Server SSCI is only carried with a Live Peer List.
func normalize(m *MKPDU) *MKPDU {
	c := *m
	if len(c.Live) == 0 {
		c.Live, c.KeyServerSSCI = nil, 0
	}
	if len(c.Potential) == 0 {
		c.Potential = nil
	}
	if c.SAKUse == nil {
		c.XPN, c.XPNSuspension = false, 0
	}
	if c.DistSAK != nil && c.DistSAK.Wrapped == nil {
		d := *c.DistSAK
		d.KN, d.Suite = 0, 0
		c.DistSAK = &d
	}
	return &c
}
