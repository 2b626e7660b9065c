package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/offload/macsec"
)

// TestXPNDerivationAgainstIPMACsec proves secwire's XPN salt and SSCIs are
// the standard's, not only self-consistent. In a QEMU guest a secwire
// daemon (MKA, GCM-AES-XPN-256) faces the Linux kernel's macsec driver,
// keyed by hand with iproute2's `ip macsec`:
//
//	h1 —[eth0|plain]— secwire A —[line|line]— B: macsec0 (ip macsec, 10.9.0.2) + an MKA participant run by the test
//
// The test's participant (a firmware/mka KaY whose SecY is a Go codec
// nobody sends through) only keeps the CA alive. The test captures the
// MKPDUs on B's line with a packet socket, and computes from them, with
// its own code written from the standard's text:
//
//   - the SAK, unwrapped from the Distributed SAK with the KEK (mka.KEK
//     and mka.Unwrap are checked against IEEE 802.1X Annex G and RFC 3394);
//   - the Salt, IEEE 802.1AE-2018 10.7.8: the key server's MI with
//     octets 0-1 XOR KN[15:0] and octets 2-3 XOR KN[31:16];
//   - the SSCIs, 802.1AE-2018 10.7.13: from 1 in descending SCI order.
//
// It keys macsec0 with those values and pings across both ways, with
// secwire as key server and with the test's participant as key server, on
// the kernel and the Go datapath, then again after a rekey (KN 2).
func TestXPNDerivationAgainstIPMACsec(t *testing.T) {
	if runInGuest(t) {
		return
	}
	checkStandardDerivation(t)
	cases := []struct {
		name     string
		peerPrio uint8 // the test's participant; secwire A has 10
		datapath string
	}{
		{"secwire key server/kernel datapath", 20, "auto"},
		{"secwire key server/software datapath", 20, "software"},
		{"peer key server/kernel datapath", 1, "auto"},
		{"peer key server/software datapath", 1, "software"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newXPNPeer(t, c.peerPrio)
			tp := x.tp
			tp.start("a", tp.mkaConfig("a", []config.CAKEntry{{CKN: x.ckn, CAK: hex.EncodeToString(x.cak)}},
				func(l *config.Link) { l.Datapath = config.Datapath(c.datapath) }))
			if b := tp.linkStatus("a").Backend; (c.datapath == "software") != (b == "software") {
				t.Fatalf("datapath %s runs on %q", c.datapath, b)
			}
			wantKS := x.sciA
			if c.peerPrio < 10 {
				wantKS = x.sciB
			}
			keys := x.waitDistributed(t, 0)
			if keys.keyServer != wantKS {
				t.Fatalf("SAK distributed by %s, want %s", keys.keyServer, wantKS)
			}
			x.key(t, keys)
			x.pingBothWays(t, keys)

			// A rekey: KN 2 changes the salt and takes the next AN.
			if c.peerPrio < 10 {
				if err := x.kay.Rekey("test"); err != nil {
					t.Fatal(err)
				}
			} else if err := ctl.Rekey(tp.socket("a"), "link0"); err != nil {
				t.Fatal(err)
			}
			next := x.waitDistributed(t, keys.kn)
			if next.kn != keys.kn+1 || next.an == keys.an {
				t.Fatalf("rekey distributed KN %d AN %d after KN %d AN %d", next.kn, next.an, keys.kn, keys.an)
			}
			x.key(t, next)
			x.pingBothWays(t, next)
		})
	}
}

// Worked cases of IEEE 802.1AE-2018 10.7.8 and 10.7.13 (the project's
// shared test vectors, testvectors/mka-keys.json xpn_salt and xpn_ssci),
// so the test's own derivation is checked before it judges secwire's.
func checkStandardDerivation(t *testing.T) {
	for _, c := range []struct{ mi, kn, salt string }{
		{"e2a67a9cd31f4b8e01020304", "00000001", "e2a77a9cd31f4b8e01020304"},
		{"5ec0de0011223344aabbccdd", "00020003", "5ec3de0211223344aabbccdd"},
		{"000000000000000000000000", "12345678", "567812340000000000000000"},
	} {
		var mi [12]byte
		hex.Decode(mi[:], []byte(c.mi))
		kn, _ := hex.DecodeString(c.kn)
		if s := standardSalt(mi, binary.BigEndian.Uint32(kn)); hex.EncodeToString(s[:]) != c.salt {
			t.Fatalf("test's salt for MI %s KN %s: %x, the standard gives %s", c.mi, c.kn, s, c.salt)
		}
	}
	for _, c := range []struct {
		scis []uint64
		want map[uint64]uint32
	}{
		{[]uint64{0x025e00000b010001, 0x025e00000a010001}, map[uint64]uint32{0x025e00000b010001: 1, 0x025e00000a010001: 2}},
		{[]uint64{0x0000000000000001, 0xffffffffffff0001, 0x7fffffffffff0002}, map[uint64]uint32{0xffffffffffff0001: 1, 0x7fffffffffff0002: 2, 0x0000000000000001: 3}},
	} {
		got := standardSSCIs(c.scis)
		for sci, want := range c.want {
			if got[sci] != want {
				t.Fatalf("test's SSCIs %v, the standard gives %v", got, c.want)
			}
		}
	}
}

// standardSalt is IEEE 802.1AE-2018 10.7.8: the 64 least significant bits
// of the Salt are the key server MI's; the next 16 are the MI's XOR the 16
// most significant bits of KN; the 16 most significant are the MI's XOR
// the 16 least significant bits of KN. Octet 0 is the most significant.
func standardSalt(ksMI [12]byte, kn uint32) [12]byte {
	s := ksMI
	knLow, knHigh := uint16(kn), uint16(kn>>16)
	s[0] ^= byte(knLow >> 8)
	s[1] ^= byte(knLow)
	s[2] ^= byte(knHigh >> 8)
	s[3] ^= byte(knHigh)
	return s
}

// standardSSCIs is IEEE 802.1AE-2018 10.7.13: SSCIs from 1 in descending
// SCI order, the numerically greatest SCI gets 1.
func standardSSCIs(scis []uint64) map[uint64]uint32 {
	sorted := slices.Clone(scis)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	m := map[uint64]uint32{}
	for i, s := range sorted {
		m[s] = uint32(i + 1)
	}
	return m
}

// xpnPeer is side B: the hand-keyed kernel macsec link and the test's MKA
// participant, with a capture of every MKPDU on B's line.
type xpnPeer struct {
	tp         *topo
	cak, ckn   []byte
	sciA, sciB sci64
	kay        *mka.KaY
	capture    *netns.Capture
	keyed      map[uint8]bool // ANs macsec0 has SAs for
}

type sci64 uint64

func (s sci64) String() string { return fmt.Sprintf("%016x", uint64(s)) }

func newXPNPeer(t *testing.T, prio uint8) *xpnPeer {
	tp := newTopoNoTools(t, macsec.GCMAESXPN256)
	x := &xpnPeer{tp: tp, cak: bytes.Repeat([]byte{0x7e}, 32), ckn: []byte("xpn-by-the-standard"), keyed: map[uint8]bool{}}
	macA, _ := net.ParseMAC(tp.macA)
	macB, _ := net.ParseMAC(tp.macB)
	x.sciA, x.sciB = sci64(macsec.MakeSCI(macA, 1)), sci64(macsec.MakeSCI(macB, 1))
	ip := func(args ...string) {
		t.Helper()
		if out, err := tp.b.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("link", "add", "link", "line", "macsec0", "type", "macsec", "port", "1", "cipher", "gcm-aes-xpn-256",
		"encrypt", "on", "send_sci", "on", "replay", "on", "window", "64")
	ip("macsec", "add", "macsec0", "rx", "port", "1", "address", tp.macA)
	ip("addr", "add", "10.9.0.2/24", "dev", "macsec0")
	ip("link", "set", "macsec0", "up")

	x.capture = captureMKPDUs(t, tp.b, "line")
	sock := openEAPOLSocket(t, tp.b, "line")
	secy, err := macsec.NewSecY(macsec.Config{Suite: macsec.GCMAESXPN256, SCI: macsec.SCI(x.sciB), SendSCI: true})
	if err != nil {
		t.Fatal(err)
	}
	x.kay, err = mka.New(mka.Options{
		SecY: secy, SCI: macsec.SCI(x.sciB), MAC: macB, Suite: macsec.GCMAESXPN256,
		Priority: prio, Keys: []mka.CAK{{CKN: x.ckn, Key: macsec.NewKey(x.cak)}},
		Send: sock.send, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("side", "test peer"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); x.kay.Run(ctx) }()
	go func() { defer wg.Done(); sock.receive(ctx, x.kay.Receive) }()
	t.Cleanup(func() { cancel(); wg.Wait(); sock.close() })
	return x
}

// xpnKeys is what the test derived for one distributed SAK.
type xpnKeys struct {
	keyServer sci64
	an        uint8
	kn        uint32
	sak       []byte
	salt      [12]byte
	ssci      map[uint64]uint32
}

// waitDistributed waits for an authentic MKPDU distributing a SAK with a
// KN above after and derives the keys from the capture.
func (x *xpnPeer) waitDistributed(t *testing.T, after uint32) xpnKeys {
	t.Helper()
	ick, err := mka.ICK(x.cak, x.ckn)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := mka.KEK(x.cak, x.ckn)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var dist *capturedMKPDU
		members := map[uint64]bool{}
		for _, f := range x.capture.Frames() {
			p, err := parseMKPDU(f)
			if err != nil {
				t.Fatalf("captured MKPDU: %v: %x", err, f)
			}
			if !p.authentic(ick) {
				t.Fatalf("captured MKPDU from %016x fails its ICV", p.sci)
			}
			members[p.sci] = true
			if p.dist != nil && p.dist.kn > after && (dist == nil || p.dist.kn > dist.dist.kn) {
				dist = p
			}
		}
		if dist == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !dist.keyServer {
			t.Fatalf("MKPDU from %016x distributes a SAK without the key server flag", dist.sci)
		}
		sak, err := mka.Unwrap(kek, dist.dist.wrapped)
		if err != nil {
			t.Fatalf("unwrap the distributed SAK with the KEK: %v", err)
		}
		if len(sak) != 32 {
			t.Fatalf("distributed SAK is %d bytes, GCM-AES-XPN-256 needs 32", len(sak))
		}
		k := xpnKeys{keyServer: sci64(dist.sci), an: dist.dist.an, kn: dist.dist.kn, sak: sak,
			salt: standardSalt(dist.mi, dist.dist.kn), ssci: standardSSCIs(slices.Collect(mapKeys(members)))}
		if len(members) != 2 {
			t.Fatalf("MKPDUs from %d members, want 2 (secwire and the test's participant)", len(members))
		}
		// 802.1X-2020 11.11.3: a version 3 key server names its own SSCI
		// in the Live Peer List of the MKPDU that distributes an XPN SAK.
		if dist.version >= 3 && dist.liveKSSSCI != uint8(k.ssci[dist.sci]) {
			t.Errorf("key server %016x puts SSCI %d in its Live Peer List; the standard gives it %d", dist.sci, dist.liveKSSSCI, k.ssci[dist.sci])
		}
		t.Logf("SAK KN %d AN %d from key server %s (MI %x): salt %x, SSCI %d for %s (secwire), %d for %s (ip macsec)",
			k.kn, k.an, k.keyServer, dist.mi, k.salt, k.ssci[uint64(x.sciA)], x.sciA, k.ssci[uint64(x.sciB)], x.sciB)
		return k
	}
	t.Fatalf("no SAK distributed with a KN above %d within 30 s\nA:\n%s", after, x.tp.log("a"))
	return xpnKeys{}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// key installs the derived SAK on macsec0 with iproute2: a transmit SA
// with B's SSCI, a receive SA for A with A's SSCI, both with the salt.
func (x *xpnPeer) key(t *testing.T, k xpnKeys) {
	t.Helper()
	ip := func(args ...string) {
		t.Helper()
		if out, err := x.tp.b.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	an := fmt.Sprint(k.an)
	sa := func(s sci64) []string {
		return []string{"xpn", "1", "ssci", fmt.Sprint(k.ssci[uint64(s)]), "salt", hex.EncodeToString(k.salt[:]), "on",
			"key", fmt.Sprintf("%02x", k.kn), hex.EncodeToString(k.sak)}
	}
	ip(append([]string{"macsec", "add", "macsec0", "tx", "sa", an}, sa(x.sciB)...)...)
	ip(append([]string{"macsec", "add", "macsec0", "rx", "port", "1", "address", x.tp.macA, "sa", an}, sa(x.sciA)...)...)
	ip("link", "set", "macsec0", "type", "macsec", "encodingsa", an)
	x.keyed[k.an] = true
}

// pingBothWays pings from behind secwire to macsec0 and back.
func (x *xpnPeer) pingBothWays(t *testing.T, k xpnKeys) {
	t.Helper()
	if !x.tp.waitPing("10.9.0.2") {
		out, _ := x.tp.b.Command("ip", "-s", "macsec", "show").CombinedOutput()
		t.Fatalf("no ping across with the standard's salt %x and SSCIs (secwire %d, ip macsec %d) for KN %d: secwire derives them otherwise\n%s\nA:\n%s",
			k.salt, k.ssci[uint64(x.sciA)], k.ssci[uint64(x.sciB)], k.kn, out, x.tp.log("a"))
	}
	out, err := x.tp.b.Command("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.9.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("no ping from the ip-macsec peer to behind secwire: %v\n%s", err, out)
	}
	t.Logf("KN %d: ping both ways through secwire and ip macsec", k.kn)
}

// capturedMKPDU is the part of an MKPDU the test reads, parsed by the
// test itself (IEEE 802.1X-2020 11.11) rather than by firmware/mka.
type capturedMKPDU struct {
	frame      []byte
	version    uint8
	keyServer  bool
	sci        uint64
	mi         [12]byte
	liveKSSSCI uint8 // octet 2 of the Live Peer List
	dist       *distributedSAK
}

type distributedSAK struct {
	an      uint8
	kn      uint32
	wrapped []byte
}

func parseMKPDU(f []byte) (*capturedMKPDU, error) {
	if len(f) < 18 || binary.BigEndian.Uint16(f[12:]) != 0x888e || f[15] != 5 {
		return nil, fmt.Errorf("not an EAPOL-MKA frame")
	}
	n := int(binary.BigEndian.Uint16(f[16:]))
	body := f[18:]
	if n > len(body) || n < 16+32 {
		return nil, fmt.Errorf("EAPOL body %d of %d octets", n, len(body))
	}
	body = body[:n-16] // the ICV is the last 16 octets
	p := &capturedMKPDU{frame: f[:18+n], version: body[0], keyServer: body[2]&0x80 != 0}
	setLen := func(b []byte) int { return int(binary.BigEndian.Uint16(b[2:]) & 0x0fff) }
	bl := setLen(body)
	if bl < 28 || 4+bl > len(body) {
		return nil, fmt.Errorf("basic parameter set length %d", bl)
	}
	p.sci = binary.BigEndian.Uint64(body[4:])
	copy(p.mi[:], body[12:24])
	off := (4 + bl + 3) &^ 3
	for off+4 <= len(body) {
		typ, l := body[off], setLen(body[off:])
		if off+4+l > len(body) {
			return nil, fmt.Errorf("parameter set %d length %d overruns the MKPDU", typ, l)
		}
		b := body[off+4 : off+4+l]
		switch typ {
		case 1: // Live Peer List
			p.liveKSSSCI = body[off+1]
		case 4: // Distributed SAK: KN, [cipher suite], wrapped SAK
			if l < 28 {
				break
			}
			p.dist = &distributedSAK{an: body[off+1] >> 6, kn: binary.BigEndian.Uint32(b)}
			if l == 28 {
				p.dist.wrapped = b[4:]
			} else {
				p.dist.wrapped = b[12:]
			}
		case 255:
			return p, nil
		}
		off += (4 + l + 3) &^ 3
	}
	return p, nil
}

// authentic checks the MKPDU's ICV: AES-CMAC under the ICK over the frame
// from the destination address to the ICV.
func (p *capturedMKPDU) authentic(ick []byte) bool {
	want, err := mka.ICV(ick, p.frame[:len(p.frame)-16])
	return err == nil && subtle.ConstantTimeCompare(want[:], p.frame[len(p.frame)-16:]) == 1
}

// captureMKPDUs keeps every EAPOL frame a port sends or receives.
func captureMKPDUs(t *testing.T, ns *netns.NS, ifname string) *netns.Capture {
	t.Helper()
	c, err := netns.StartCapture(ns, ifname, func(f []byte, _ bool) bool {
		return len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == 0x888e
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", ifname, err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// eapolSocket sends and receives MKPDUs on a port for the test's KaY.
type eapolSocket struct {
	fd      int
	ifindex int
}

func openEAPOLSocket(t *testing.T, ns *netns.NS, ifname string) *eapolSocket {
	t.Helper()
	s := &eapolSocket{}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		s.ifindex = ifc.Index
		if s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return err
		}
		return unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(0x888e), Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatalf("EAPOL socket on %s: %v", ifname, err)
	}
	tv := unix.Timeval{Usec: 100_000}
	unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return s
}

func (s *eapolSocket) send(frame []byte) error {
	return unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifindex, Halen: 6})
}

func (s *eapolSocket) receive(ctx context.Context, on func([]byte)) {
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err == nil {
			on(append([]byte(nil), buf[:n]...))
		}
	}
}

func (s *eapolSocket) close() { unix.Close(s.fd) }
