package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/secwire/secwire/firmware/sakexport"
	"github.com/secwire/secwire/offload/macsec"
)

const pcapUsage = `usage:
  secwire pcap decrypt --cipher C --key HEX [--ssci HEX --salt HEX] [--pn LOWEST]
                       [--offset 0|30|50] [--vlan-in-clear N] IN.pcap|IN.pcapng OUT.pcap
  secwire pcap decrypt --keys FILE [--offset 0|30|50] [--vlan-in-clear N] IN OUT

Decrypts the MACsec frames of an Ethernet capture and writes a pcap that
any Wireshark reads. With --key, one SAK for every SC and AN in it (static
keys); with --keys, the SAKs an MKA link exported ('request security mka
export-keys'), each on its AN, with its salt and each SC's SSCI. Frames that
are not MACsec, and MACsec frames that do not validate, are copied
unchanged; a summary with the reasons goes to standard error.
--pn is the lowest PN of the capture's first frames, default 1 (XPN
recovers the upper 32 bits of each PN from it)`

// pcapCmd dispatches `secwire pcap ...`.
func pcapCmd(args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "decrypt" {
		return errors.New(pcapUsage)
	}
	fs := flag.NewFlagSet("pcap decrypt", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var kf keyFlags
	kf.register(fs, "lowest PN in the capture")
	offset := fs.Int("offset", -1, "confidentiality offset 0, 30 or 50")
	vlans := fs.Int("vlan-in-clear", 0, "VLAN tags (0, 1 or 2) ahead of the SecTAG")
	keysFile := fs.String("keys", "", "SAK export file")
	if err := parseFlags(fs, args[1:], pcapUsage); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("need an input and an output file\n%s", pcapUsage)
	}
	if *vlans < 0 || *vlans > 2 {
		return fmt.Errorf("--vlan-in-clear %d: want 0, 1 or 2", *vlans)
	}
	var keys func(macsec.SCI, uint8) []macsec.SAParams
	var suite macsec.CipherSuite
	if *keysFile != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, n := range []string{"key", "cipher", "ssci", "salt", "pn"} {
			if set[n] {
				return fmt.Errorf("--%s: the --keys file gives the cipher suite and every key; leave out --key, --cipher, --ssci, --salt and --pn", n)
			}
		}
		f, err := sakexport.Read(*keysFile)
		if err != nil {
			return err
		}
		suite = f.Cipher
		if *offset < 0 {
			*offset = f.Offset
		}
		keys = func(sci macsec.SCI, an uint8) []macsec.SAParams { return f.Candidates(suite, sci, an) }
	} else {
		var sa macsec.SAParams
		var err error
		if suite, sa, err = kf.params(); err != nil {
			return err
		}
		defer sa.Key.Wipe()
		keys = staticKeys(sa)
	}
	d, err := newDecrypter(suite, keys, max(*offset, 0), *vlans)
	if err != nil {
		return err
	}
	sum, err := d.decryptFile(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	fmt.Fprint(stderr, sum.String())
	if sum.macsec > 0 && sum.decrypted == 0 {
		if *keysFile != "" {
			return fmt.Errorf("none of the %d MACsec frames validated: were these SAKs exported while the capture's frames were sent (a rekey since brings new ones)?", sum.macsec)
		}
		return fmt.Errorf("none of the %d MACsec frames validated: wrong key, cipher suite or (XPN) SSCI/salt/--pn?", sum.macsec)
	}
	return nil
}

// staticKeys gives the one static key for every SC and AN.
func staticKeys(sa macsec.SAParams) func(macsec.SCI, uint8) []macsec.SAParams {
	return func(_ macsec.SCI, an uint8) []macsec.SAParams {
		p := sa
		p.AN = an
		// Each SA gets its own copy: the SecY wipes a key when the SA goes.
		p.Key = macsec.NewKey(sa.Key.Bytes())
		return []macsec.SAParams{p}
	}
}

// decrypter validates frames of any SC: it adds a receive SC and SA the
// first time it sees an SCI and AN, with the first of the keys that
// validates a frame of them.
type decrypter struct {
	secy  *macsec.SecY
	keys  func(sci macsec.SCI, an uint8) []macsec.SAParams
	tried map[scAN]int // which candidate key the SC's SA on that AN has
	vlans int
	buf   []byte
}

type scAN struct {
	sci macsec.SCI
	an  uint8
}

func newDecrypter(suite macsec.CipherSuite, keys func(macsec.SCI, uint8) []macsec.SAParams, offset, vlans int) (*decrypter, error) {
	// Replay protection off: a capture may hold retransmissions, and
	// several captures may be merged out of order.
	s, err := macsec.NewSecY(macsec.Config{Suite: suite, Offset: offset, Validate: macsec.ValidateStrict, NoReplay: true})
	if err != nil {
		return nil, err
	}
	return &decrypter{secy: s, keys: keys, tried: map[scAN]int{}, vlans: vlans, buf: make([]byte, 0, 65536)}, nil
}

type pcapSummary struct {
	frames, macsec, decrypted int
	failed                    map[string]int
}

func (s pcapSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d frames: %d MACsec, %d decrypted, %d copied unchanged\n",
		s.frames, s.macsec, s.decrypted, s.frames-s.decrypted)
	reasons := make([]string, 0, len(s.failed))
	for r := range s.failed {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, "  %d not validated: %s\n", s.failed[r], r)
	}
	return b.String()
}

// packetReader is what pcapgo's pcap and pcapng readers share.
type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

func openCapture(r io.Reader) (packetReader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture file: %w", err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		return pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	}
	return pcapgo.NewReader(br)
}

func (d *decrypter) decryptFile(in, out string) (pcapSummary, error) {
	f, err := os.Open(in)
	if err != nil {
		return pcapSummary{}, err
	}
	defer f.Close()
	o, err := os.Create(out)
	if err != nil {
		return pcapSummary{}, err
	}
	sum, err := d.decrypt(f, o)
	if err != nil {
		o.Close()
		return sum, fmt.Errorf("%s: %w", in, err)
	}
	return sum, o.Close()
}

// decrypt reads a capture from r and writes the decrypted pcap to w.
func (d *decrypter) decrypt(r io.Reader, w io.Writer) (pcapSummary, error) {
	sum := pcapSummary{failed: map[string]int{}}
	pr, err := openCapture(r)
	if err != nil {
		return sum, err
	}
	if pr.LinkType() != layers.LinkTypeEthernet {
		return sum, fmt.Errorf("link type %s; only Ethernet captures carry MACsec", pr.LinkType())
	}
	bw := bufio.NewWriter(w)
	pw := pcapgo.NewWriter(bw)
	if err := pw.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		return sum, err
	}
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("frame %d: %w", sum.frames+1, err)
		}
		sum.frames++
		outData, isMACsec, verr := d.frame(data, ci.CaptureLength < ci.Length)
		if isMACsec {
			sum.macsec++
			if verr != nil {
				reason := verr
				if de := (*macsec.DropError)(nil); errors.As(verr, &de) {
					reason = de.Err // the reason without per-frame detail
				}
				sum.failed[reason.Error()]++
			} else {
				sum.decrypted++
				ci.Length -= len(data) - len(outData)
				ci.CaptureLength = len(outData)
				data = outData
			}
		}
		if err := pw.WritePacket(ci, data); err != nil {
			return sum, err
		}
	}
	return sum, bw.Flush()
}

// validate validates a frame as sent, trying the SC's candidate keys for
// its AN until one validates it.
func (d *decrypter) validate(frame []byte) ([]byte, error) {
	tag, err := macsec.ParseSecTAG(frame, 12)
	if err != nil {
		return d.secy.Validate(d.buf[:0], frame) // counted as the codec counts it
	}
	sci := tag.SCI
	if !tag.HasSCI() {
		sci = macsec.MakeSCI(frame[6:12], 1)
	}
	if d.secy.RxSC(sci) == nil {
		d.secy.AddRxSC(sci)
	}
	k := scAN{sci, tag.AN}
	cands := d.keys(sci, tag.AN)
	defer func() {
		for _, c := range cands {
			c.Key.Wipe()
		}
	}()
	if len(cands) == 0 {
		return nil, fmt.Errorf("no key for AN %d of SC %s in the key file", tag.AN, sci)
	}
	first, ok := d.tried[k]
	if !ok {
		first = -1
	}
	var verr error
	for i := range cands {
		n := (max(first, 0) + i) % len(cands)
		if n != first {
			p := cands[n]
			p.Key = macsec.NewKey(cands[n].Key.Bytes()) // the SecY keeps its own copy
			if err := d.secy.InstallRxSA(sci, p); err != nil {
				return nil, err
			}
			d.tried[k] = n
			first = n
		}
		pt, err := d.secy.Validate(d.buf[:0], frame)
		if err == nil {
			return pt, nil
		}
		verr = err
	}
	return nil, verr
}

// frame decrypts one captured frame. It returns the plaintext frame,
// whether the frame was MACsec at all, and why it did not validate.
func (d *decrypter) frame(data []byte, truncated bool) ([]byte, bool, error) {
	tags := 0
	for tags < d.vlans && len(data) >= 12+4*(tags+1)+2 {
		et := binary.BigEndian.Uint16(data[12+4*tags:])
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		tags++
	}
	at := 12 + 4*tags
	if len(data) < at+2 || binary.BigEndian.Uint16(data[at:]) != macsec.EtherType {
		return nil, false, nil
	}
	if truncated {
		return nil, true, errors.New("frame truncated by the capture's snap length")
	}
	// The codec sees the frame as sent, without the tags in clear.
	frame := data
	if tags > 0 {
		frame = append(append(make([]byte, 0, len(data)), data[:12]...), data[at:]...)
	}
	pt, err := d.validate(frame)
	if err != nil {
		return nil, true, err
	}
	if tags > 0 {
		// Put the tags in clear back where they were.
		return append(append(append([]byte(nil), pt[:12]...), data[12:at]...), pt[12:]...), true, nil
	}
	return append([]byte(nil), pt...), true, nil
}
