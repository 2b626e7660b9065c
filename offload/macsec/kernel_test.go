package macsec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/qemu/guest"
)

// TestKernelCrossCheck checks this codec against the Linux kernel's macsec
// driver, in a QEMU guest with the pinned Debian kernel and Debian's `ip`:
// a veth pair v0–v1, a kernel macsec device on v0 keyed with `ip macsec`
// static SAs, and the codec on v1 through raw sockets. Frames the kernel
// protects are validated by the codec, and frames the codec protects are
// validated by the kernel, for all four cipher suites.
func TestKernelCrossCheck(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.MACsecModules, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		// No IPv6 autoconfiguration chatter on the test links.
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Logf("%s: %v", f, err)
		}
	}
	ip(t, "link", "add", "v0", "address", macV0.String(), "type", "veth", "peer", "name", "v1", "address", macV1.String())
	ip(t, "link", "set", "v0", "up")
	ip(t, "link", "set", "v1", "up")

	const nearWrap = 1<<32 - 3 // XPN cases start here so the PN crosses 2^32
	cases := []struct {
		name  string
		suite macsec.CipherSuite
		pn    uint64
		opts  []string // ip link options besides the cipher
		es    bool
		integ bool
	}{
		{name: "gcm-aes-128", suite: macsec.GCMAES128, pn: 1},
		{name: "gcm-aes-256", suite: macsec.GCMAES256, pn: 1},
		{name: "gcm-aes-xpn-128", suite: macsec.GCMAESXPN128, pn: nearWrap},
		{name: "gcm-aes-xpn-256", suite: macsec.GCMAESXPN256, pn: nearWrap},
		{name: "gcm-aes-128/integrity-only", suite: macsec.GCMAES128, pn: 1, opts: []string{"encrypt", "off"}, integ: true},
		{name: "gcm-aes-xpn-256/end-station", suite: macsec.GCMAESXPN256, pn: nearWrap, opts: []string{"send_sci", "off", "end_station", "on"}, es: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			xpn := c.suite.XPN()
			kKernel, kCodec := randomKey(t, c.suite.KeyLen()), randomKey(t, c.suite.KeyLen())
			var salt [12]byte
			rand.Read(salt[:])
			const ssciKernel, ssciCodec = 1, 2

			// Kernel side: transmits with kKernel, receives the codec's SC with kCodec.
			args := []string{"link", "add", "link", "v0", "name", "ms0", "type", "macsec", "port", "1", "cipher", c.suite.String()}
			if !c.integ {
				args = append(args, "encrypt", "on")
			}
			ip(t, append(args, c.opts...)...)
			t.Cleanup(func() { ip(t, "link", "del", "ms0") })
			pnArgs := func(pn uint64, ssci int) []string {
				if !xpn {
					return []string{"pn", fmt.Sprint(pn)}
				}
				return []string{"xpn", fmt.Sprint(pn), "ssci", fmt.Sprint(ssci), "salt", hex.EncodeToString(salt[:])}
			}
			ip(t, append(append([]string{"macsec", "add", "ms0", "tx", "sa", "0"}, pnArgs(c.pn, ssciKernel)...),
				"on", "key", "01", hex.EncodeToString(kKernel))...)
			ip(t, "macsec", "add", "ms0", "rx", "port", "1", "address", macV1.String())
			ip(t, append(append([]string{"macsec", "add", "ms0", "rx", "port", "1", "address", macV1.String(), "sa", "0"}, pnArgs(c.pn, ssciCodec)...),
				"on", "key", "02", hex.EncodeToString(kCodec))...)
			ip(t, "link", "set", "ms0", "up")

			// Codec side, the mirror image.
			secy, err := macsec.NewSecY(macsec.Config{
				Suite: c.suite, SCI: macsec.MakeSCI(macV1, 1), SendSCI: !c.es, EndStation: c.es,
				IntegrityOnly: c.integ, Validate: macsec.ValidateStrict,
			})
			if err != nil {
				t.Fatal(err)
			}
			must(t, secy.InstallTxSA(macsec.SAParams{AN: 0, Key: macsec.NewKey(kCodec), PN: c.pn, SSCI: ssciCodec, Salt: salt}))
			must(t, secy.SetEncodingSA(0))
			peer := macsec.MakeSCI(macV0, 1)
			secy.AddRxSC(peer)
			must(t, secy.InstallRxSA(peer, macsec.SAParams{AN: 0, Key: macsec.NewKey(kKernel), PN: c.pn, SSCI: ssciKernel, Salt: salt}))

			// Kernel protects, codec validates.
			frames := testFrames(macV0, macV1)
			line := openRaw(t, "v1", unix.ETH_P_ALL)
			clear := openRaw(t, "ms0", etherTypeTest)
			for _, f := range frames {
				clear.send(t, f)
			}
			var got [][]byte
			deadline := time.Now().Add(5 * time.Second)
			for len(got) < len(frames) && time.Now().Before(deadline) {
				p, ok := line.recv(t)
				if !ok || len(p) < 14 || binary.BigEndian.Uint16(p[12:]) != macsec.EtherType {
					continue
				}
				tag, err := macsec.ParseSecTAG(p, 12)
				if err != nil {
					t.Fatalf("kernel sent a SecTAG the codec cannot parse: %v\n%x", err, p)
				}
				if tag.HasSCI() == c.es || tag.Encrypted() == c.integ {
					t.Errorf("kernel SecTAG TCI %#02x: want SC=%v E/C=%v", tag.TCI, !c.es, !c.integ)
				}
				pt, err := secy.Validate(nil, p)
				if err != nil {
					t.Fatalf("codec rejected a kernel-protected frame (PN %d): %v\n%x", tag.PN, err, p)
				}
				got = append(got, pt)
			}
			if len(got) != len(frames) {
				t.Fatalf("codec validated %d of %d kernel-protected frames", len(got), len(frames))
			}
			for i := range frames {
				if !bytes.Equal(got[i], frames[i]) {
					t.Fatalf("frame %d: kernel→codec plaintext differs\nsent %x\ngot  %x", i, frames[i], got[i])
				}
			}
			if n := secy.RxSC(peer).SA(0).Stats.InPktsOK.Load(); n != uint64(len(frames)) {
				t.Errorf("codec InPktsOK = %d, want %d", n, len(frames))
			}
			if xpn && secy.RxSC(peer).SA(0).LowestPN() < 1<<32 {
				t.Errorf("codec receive SA did not follow the kernel's PN across 2^32 (lowest PN %#x)", secy.RxSC(peer).SA(0).LowestPN())
			}

			// Codec protects, kernel validates.
			frames = testFrames(macV1, macV0)
			for _, f := range frames {
				p, err := secy.Protect(nil, f)
				if err != nil {
					t.Fatal(err)
				}
				line.send(t, p)
			}
			got = got[:0]
			deadline = time.Now().Add(5 * time.Second)
			for len(got) < len(frames) && time.Now().Before(deadline) {
				if p, ok := clear.recv(t); ok {
					got = append(got, p)
				}
			}
			if len(got) != len(frames) {
				out, _ := exec.Command("/usr/bin/ip", "-s", "macsec", "show", "ms0").CombinedOutput()
				t.Fatalf("kernel delivered %d of %d codec-protected frames\n%s", len(got), len(frames), out)
			}
			for i := range frames {
				if !bytes.Equal(got[i], frames[i]) {
					t.Fatalf("frame %d: codec→kernel plaintext differs\nsent %x\ngot  %x", i, frames[i], got[i])
				}
			}
			out, _ := exec.Command("/usr/bin/ip", "-s", "macsec", "show", "ms0").CombinedOutput()
			t.Logf("kernel view after the exchange:\n%s", out)
		})
	}
}

var (
	macV0 = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0xa0}
	macV1 = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0xb1}
)

// etherTypeTest is IEEE 802's local experimental EtherType 1.
const etherTypeTest = 0x88b5

// testFrames are frames of several sizes: short ones whose SecTAG carries
// SL, and full-size ones (the macsec device's MTU is the veth's 1500 minus
// the 32-byte overhead). The source address matters: without an explicit
// SCI the receiver derives it from the source MAC.
func testFrames(src, dst net.HardwareAddr) [][]byte {
	var out [][]byte
	for i, n := range []int{2, 20, 45, 46, 47, 200, 1400, 1466} {
		f := make([]byte, 14+n)
		copy(f, dst)
		copy(f[6:], src)
		binary.BigEndian.PutUint16(f[12:], etherTypeTest)
		rand.Read(f[14:])
		f[14] = byte(i)
		out = append(out, f)
	}
	return out
}

func randomKey(t *testing.T, n int) []byte {
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rawSock is a plain AF_PACKET socket on one interface.
type rawSock struct{ fd int }

func openRaw(t *testing.T, ifname string, proto uint16) *rawSock {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	p := htons(proto)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // nothing until bound
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: p, Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Usec: 200000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &rawSock{fd: fd}
}

func (s *rawSock) send(t *testing.T, frame []byte) {
	t.Helper()
	if _, err := unix.Write(s.fd, frame); err != nil {
		t.Fatalf("send %d bytes: %v", len(frame), err)
	}
}

// recv returns the next frame the interface received (not one it sent).
func (s *rawSock) recv(t *testing.T) ([]byte, bool) {
	buf := make([]byte, 9216)
	n, from, err := unix.Recvfrom(s.fd, buf, 0)
	if err != nil {
		return nil, false
	}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		return nil, false
	}
	return buf[:n], true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
