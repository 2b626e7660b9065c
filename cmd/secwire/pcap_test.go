package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/secwire/secwire/firmware/sakexport"
	"github.com/secwire/secwire/offload/macsec"
)

// captureCase builds a capture the way a tap on the line would see it:
// frames protected by two SCs on two ANs, a plain ARP-like frame, an EAPOL
// frame, and one protected frame with a corrupted ICV.
type captured struct {
	wire, plain []byte
	ok          bool // expected to decrypt
}

func buildCapture(t testing.TB, suite macsec.CipherSuite, key []byte, vlan bool) []captured {
	t.Helper()
	var salt [12]byte
	copy(salt[:], bytes.Repeat([]byte{0x5a}, 12))
	var out []captured
	for i, mac := range [][]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}} {
		s, err := macsec.NewSecY(macsec.Config{Suite: suite, SCI: macsec.MakeSCI(mac, 1), SendSCI: i == 0, EndStation: i == 1})
		if err != nil {
			t.Fatal(err)
		}
		an := uint8(i * 3)
		pn := uint64(1)
		if suite.XPN() {
			pn = 1<<32 - 2 // the capture crosses 2^32: the tool must recover the upper half
		}
		if err := s.InstallTxSA(macsec.SAParams{AN: an, Key: macsec.NewKey(key), PN: pn, SSCI: 0x01020304, Salt: salt}); err != nil {
			t.Fatal(err)
		}
		s.SetEncodingSA(int(an))
		for n := range 4 {
			f := make([]byte, 14+20+n*300)
			copy(f, []byte{2, 0, 0, 0, 0, 9})
			copy(f[6:], mac)
			binary.BigEndian.PutUint16(f[12:], 0x0800)
			for j := 14; j < len(f); j++ {
				f[j] = byte(j * (n + 1))
			}
			p, err := s.Protect(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			if vlan {
				p = append(append(append([]byte(nil), p[:12]...), 0x81, 0x00, 0x00, 0x64), p[12:]...)
				f = append(append(append([]byte(nil), f[:12]...), 0x81, 0x00, 0x00, 0x64), f[12:]...)
			}
			out = append(out, captured{p, f, true})
		}
	}
	plain, _ := hex.DecodeString("ffffffffffff020000000001080600010800060400010200000000010a000001000000000000000a000002")
	eapol, _ := hex.DecodeString("0180c2000003020000000001888e0305000000")
	out = append(out, captured{plain, plain, false}, captured{eapol, eapol, false})
	bad := append([]byte(nil), out[1].wire...)
	bad[len(bad)-1] ^= 0x80
	out = append(out, captured{bad, bad, false})
	return out
}

func writeCapture(t testing.TB, path string, frames []captured, ng bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var write func(gopacket.CaptureInfo, []byte) error
	if ng {
		w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Flush()
		write = w.WritePacket
	} else {
		w := pcapgo.NewWriter(f)
		if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		write = w.WritePacket
	}
	for i, c := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(c.wire), Length: len(c.wire)}
		if err := write(ci, c.wire); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPcapDecrypt(t *testing.T) {
	for _, c := range []struct {
		name  string
		suite macsec.CipherSuite
		ng    bool
		vlan  bool
	}{
		{"gcm-aes-128/pcap", macsec.GCMAES128, false, false},
		{"gcm-aes-256/pcapng", macsec.GCMAES256, true, false},
		{"gcm-aes-xpn-128/pcapng", macsec.GCMAESXPN128, true, false},
		{"gcm-aes-xpn-256/pcap/vlan-in-clear", macsec.GCMAESXPN256, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := bytes.Repeat([]byte{0x11, 0x22}, c.suite.KeyLen()/2)
			frames := buildCapture(t, c.suite, key, c.vlan)
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.cap"), filepath.Join(dir, "out.pcap")
			writeCapture(t, in, frames, c.ng)
			args := []string{"decrypt", "--cipher", c.suite.String(), "--key", hex.EncodeToString(key)}
			if c.suite.XPN() {
				args = append(args, "--ssci", "01020304", "--salt", strings.Repeat("5a", 12), "--pn", "0xfffffffe")
			}
			if c.vlan {
				args = append(args, "--vlan-in-clear", "1")
			}
			var stderr bytes.Buffer
			if err := pcapCmd(append(args, in, out), &stderr); err != nil {
				t.Fatal(err)
			}
			summary := stderr.String()
			for _, want := range []string{"11 frames: 9 MACsec, 8 decrypted, 3 copied unchanged", "1 not validated: bad ICV"} {
				if !strings.Contains(summary, want) {
					t.Errorf("summary lacks %q:\n%s", want, summary)
				}
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcapgo.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range frames {
				data, ci, err := r.ReadPacketData()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(data, want.plain) {
					t.Errorf("frame %d:\n got %x\nwant %x", i, data, want.plain)
				}
				if ci.Length != len(want.plain) {
					t.Errorf("frame %d: original length %d, want %d", i, ci.Length, len(want.plain))
				}
			}
			if _, _, err := r.ReadPacketData(); err != io.EOF {
				t.Errorf("extra frames in output: %v", err)
			}
			if tshark, err := exec.LookPath("tshark"); err == nil {
				// Wireshark's own reader agrees: 8 frames are IPv4 now.
				o, err := exec.Command(tshark, "-r", out, "-Y", "ip", "-T", "fields", "-e", "frame.number").Output()
				if err != nil {
					t.Fatalf("tshark: %v", err)
				}
				if n := len(strings.Fields(string(o))); n != 8 {
					t.Errorf("tshark sees %d IPv4 frames, want 8:\n%s", n, o)
				}
			}
		})
	}
}

func TestPcapDecryptWrongKey(t *testing.T) {
	key := bytes.Repeat([]byte{0x33}, 16)
	frames := buildCapture(t, macsec.GCMAES128, key, false)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	writeCapture(t, in, frames, false)
	var stderr bytes.Buffer
	err := pcapCmd([]string{"decrypt", "--key", strings.Repeat("44", 16), in, out}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "none of the 9 MACsec frames validated") {
		t.Fatalf("want a wrong-key error, got %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "9 not validated: bad ICV") {
		t.Errorf("summary:\n%s", stderr.String())
	}
	if err := pcapCmd([]string{"decrypt", "--key", "00", in, out}, &stderr); err == nil || strings.Contains(err.Error(), "00") {
		t.Errorf("a short key must be refused without echoing it: %v", err)
	}
}

// A capture of an MKA XPN link across a rekey: two SCs with their own
// SSCIs share a SAK on AN 0 (KN 1), then a new SAK on AN 1 (KN 2). The
// export file of both SAKs decrypts every frame; an export without the
// second SAK leaves its frames encrypted and says why.
func TestPcapDecryptWithExportedKeys(t *testing.T) {
	suite := macsec.GCMAESXPN256
	salt := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	keys := [][]byte{bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 32)}
	macs := [][]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
	var frames []captured
	for kn, key := range keys {
		for i, mac := range macs {
			s, err := macsec.NewSecY(macsec.Config{Suite: suite, SCI: macsec.MakeSCI(mac, 1), SendSCI: true})
			if err != nil {
				t.Fatal(err)
			}
			an := uint8(kn)
			if err := s.InstallTxSA(macsec.SAParams{AN: an, Key: macsec.NewKey(key), PN: 1<<32 + 5, SSCI: uint32(i + 1), Salt: salt}); err != nil {
				t.Fatal(err)
			}
			s.SetEncodingSA(int(an))
			f := make([]byte, 80)
			copy(f, []byte{2, 0, 0, 0, 0, 9})
			copy(f[6:], mac)
			binary.BigEndian.PutUint16(f[12:], 0x0800)
			copy(f[14:], "SECWIRE-EXPORT-TEST")
			p, err := s.Protect(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, captured{p, f, true})
		}
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "line.pcapng")
	writeCapture(t, in, frames, true)
	export := func(name string, kns int) string {
		f := &sakexport.File{Link: "l0", Cipher: suite}
		for kn := range kns {
			sak := sakexport.SAK{CKN: "0a0b", KN: uint32(kn + 1), AN: uint8(kn), Key: hex.EncodeToString(keys[kn]), Salt: hex.EncodeToString(salt[:])}
			for i, mac := range macs {
				sak.SCs = append(sak.SCs, sakexport.SC{SCI: macsec.MakeSCI(mac, 1).String(), SSCI: fmt.Sprintf("%08x", i+1), PN: 1<<32 + 100})
			}
			f.SAKs = append(f.SAKs, sak)
		}
		p := filepath.Join(dir, name)
		if err := sakexport.Write(p, f); err != nil {
			t.Fatal(err)
		}
		if err := sakexport.Write(p, f); err == nil {
			t.Fatal("an export replaced a file")
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("export file mode %v", fi.Mode())
		}
		return p
	}
	var stderr bytes.Buffer
	out := filepath.Join(dir, "clear.pcap")
	if err := pcapCmd([]string{"decrypt", "--keys", export("both.json", 2), in, out}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "4 frames: 4 MACsec, 4 decrypted") {
		t.Fatalf("summary:\n%s", stderr.String())
	}
	got := readFrames(t, out)
	for i := range frames {
		if !bytes.Equal(got[i], frames[i].plain) {
			t.Errorf("frame %d not decrypted: %x", i, got[i][:32])
		}
	}
	stderr.Reset()
	if err := pcapCmd([]string{"decrypt", "--keys", export("first.json", 1), in, filepath.Join(dir, "half.pcap")}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "4 frames: 4 MACsec, 2 decrypted") || !strings.Contains(stderr.String(), "no key for AN 1") {
		t.Fatalf("summary with the first SAK only:\n%s", stderr.String())
	}
	if err := pcapCmd([]string{"decrypt", "--keys", filepath.Join(dir, "both.json"), "--key", "00", in, out}, &stderr); err == nil || !strings.Contains(err.Error(), "leave out --key") {
		t.Fatalf("--keys with --key: %v", err)
	}
}

func readFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := openCapture(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		d, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), d...))
	}
}

// FuzzPcapDecrypt feeds arbitrary capture files (pcap and pcapng, frames
// of any content) to the reader and decrypter of `secwire pcap decrypt`.
// Nothing may panic, and when a capture is read to its end the output is
// a pcap with the same number of frames.
func FuzzPcapDecrypt(f *testing.F) {
	key := bytes.Repeat([]byte{0x11, 0x22}, 8)
	for _, c := range []struct {
		suite macsec.CipherSuite
		ng    bool
		vlan  bool
	}{{macsec.GCMAES128, false, false}, {macsec.GCMAES128, true, false}, {macsec.GCMAESXPN128, true, true}, {macsec.GCMAESXPN128, false, false}} {
		// Small seeds (two SCs, one frame each, and a frame in clear):
		// the fuzzer minimizes every new input, which is slow on big ones.
		all := buildCapture(f, c.suite, key, c.vlan)
		p := filepath.Join(f.TempDir(), "seed.cap")
		writeCapture(f, p, []captured{all[0], all[4], all[8]}, c.ng)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, c.suite.XPN(), c.vlan)
	}
	var salt [12]byte
	copy(salt[:], bytes.Repeat([]byte{0x5a}, 12))
	f.Fuzz(func(t *testing.T, capture []byte, xpn, vlan bool) {
		suite, sa := macsec.GCMAES128, macsec.SAParams{Key: macsec.NewKey(key), PN: 1}
		if xpn {
			suite, sa.SSCI, sa.Salt, sa.PN = macsec.GCMAESXPN128, 0x01020304, salt, 1<<32-2
		}
		d, err := newDecrypter(suite, staticKeys(sa), 0, map[bool]int{true: 1}[vlan])
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		sum, err := d.decrypt(bytes.NewReader(capture), &out)
		if err != nil {
			return
		}
		if sum.decrypted > sum.macsec || sum.macsec > sum.frames {
			t.Fatalf("summary does not add up: %+v", sum)
		}
		r, err := pcapgo.NewReader(&out)
		if err != nil {
			t.Fatalf("output is not a pcap: %v", err)
		}
		n := 0
		for {
			if _, _, err := r.ReadPacketData(); err != nil {
				if err != io.EOF {
					t.Fatalf("output frame %d: %v", n+1, err)
				}
				break
			}
			n++
		}
		if n != sum.frames {
			t.Fatalf("output has %d frames, the input %d", n, sum.frames)
		}
	})
}
