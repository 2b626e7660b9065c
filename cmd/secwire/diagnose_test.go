package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/offload/macsec"
)

var updateDiag = flag.Bool("update-diagnosis", false, "rewrite testdata/diagnosis/*.txt with the actual output")

// "Why is it not secured": for each cause `show mka` names, two daemons
// misconfigured the way a real circuit goes wrong, and the status lines of
// `secwire show mka` on the side that sees it, compared with a golden
// transcript (testdata/diagnosis; -update-diagnosis rewrites them).
func TestMKADiagnosisTranscripts(t *testing.T) {
	chain := []config.CAKEntry{cak("diag", 16, "d1")}
	group := func(fromA bool, f []byte) bool { return bytes.Equal(f[:6], mka.DefaultDestination) }
	cases := []struct {
		name  string
		side  string // whose show mka tells
		wire  func(fromA bool, f []byte) bool
		a, b  func(l *config.Link)
		vlans bool // h1 sends VLAN-tagged frames
		want  string
	}{
		{name: "provider-filters-group-address", side: "a", wire: group, want: "no MKPDU heard"},
		{name: "ckn-mismatch", side: "a",
			b:    func(l *config.Link) { l.MKA.KeyChain = []config.CAKEntry{cak("other", 16, "d1")} },
			want: "CKN mismatch"},
		{name: "cak-mismatch", side: "a",
			b:    func(l *config.Link) { l.MKA.KeyChain = []config.CAKEntry{cak("diag", 16, "e2")} },
			want: "CAK mismatch"},
		{name: "cipher-suite-mismatch", side: "b",
			a:    func(l *config.Link) { l.Cipher = macsec.GCMAESXPN256 },
			want: "cipher suite or offset mismatch"},
		{name: "offset-mismatch", side: "b",
			a:    func(l *config.Link) { l.Offset = 30 },
			want: "cipher suite or offset mismatch"},
		{name: "one-way-circuit", side: "b", wire: func(fromA bool, f []byte) bool { return !fromA },
			want: "does not answer our MI"},
		{name: "vlans-in-clear-mismatch", side: "b", vlans: true,
			a:    func(l *config.Link) { l.VLANsInClear = 1 },
			want: "data frames fail validation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tp *topo
			if c.wire != nil {
				needTools(t, "ip", "ping", "ethtool")
				w := &wire{}
				w.setDrop(c.wire)
				tp = newTopoNoTools(t, macsec.GCMAES128, w)
			} else {
				tp = newTopo(t, macsec.GCMAES128)
			}
			tp.start("a", tp.mkaConfig("a", chain, c.a))
			tp.start("b", tp.mkaConfig("b", chain, c.b))
			deadline := time.Now().Add(30 * time.Second)
			var diag string
			for time.Now().Before(deadline) {
				if c.vlans {
					tp.sendTagged(10, 20)
				}
				st, err := ctl.Status(tp.socket(c.side))
				if err == nil && len(st.Links) == 1 {
					if diag = st.Links[0].Diagnosis; strings.Contains(diag, c.want) {
						break
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !strings.Contains(diag, c.want) {
				t.Fatalf("%s's diagnosis %q, want %q\nA:\n%s\nB:\n%s", c.side, diag, c.want, tp.log("a"), tp.log("b"))
			}
			var out bytes.Buffer
			if err := showCmd([]string{"mka", "--socket", tp.socket(c.side)}, &out); err != nil {
				t.Fatal(err)
			}
			got := "# " + c.name + ": `secwire show mka` on " + c.side + "\n" + statusLines(out.String())
			file := filepath.Join("testdata", "diagnosis", c.name+".txt")
			if *updateDiag {
				os.MkdirAll(filepath.Dir(file), 0o755)
				os.WriteFile(file, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (go test ./cmd/secwire -run MKADiagnosis -update-diagnosis writes it)\ngot:\n%s", err, got)
			}
			if got != string(want) {
				t.Errorf("show mka differs from %s:\ngot:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

var (
	hexRun = regexp.MustCompile(`\b[0-9a-f]{24}\b`) // member identifiers
	// counts and durations that vary from run to run
	counts = regexp.MustCompile(`\b\d+ so far|\+\d+|for (\d+m)?\d+s\b`)
)

// statusLines keeps the lines of `show mka` that say why, with member
// identifiers and counts masked.
func statusLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "status:") || strings.Contains(l, "  CA CKN") {
			l = hexRun.ReplaceAllString(l, "MI")
			l = counts.ReplaceAllStringFunc(l, func(n string) string {
				return regexp.MustCompile(`\d+`).ReplaceAllString(n, "N")
			})
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// sendTagged sends n frames tagged with VLAN vid from h1 into A's
// plaintext port (the host kernel may have no 8021q module for a VLAN
// interface).
func (tp *topo) sendTagged(vid uint16, n int) {
	t := tp.t
	var fd int
	if err := tp.h1.Do(func() error {
		var err error
		fd, err = rawSocket("eth0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	f := make([]byte, 100)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, byte(vid >> 8), byte(vid), 0x08, 0x00})
	for range n {
		unix.Write(fd, f) // ENOBUFS while A holds its plaintext port down
	}
}

// A circuit that passes no 802.1 group address: with eapol_destination
// auto both ends find broadcast, secure, keep it, and traffic crosses.
func TestMKAAutoDestination(t *testing.T) {
	needTools(t, "ip", "ping", "ethtool")
	w := &wire{}
	w.setDrop(func(_ bool, f []byte) bool { return bytes.Equal(f[:5], []byte{0x01, 0x80, 0xc2, 0x00, 0x00}) })
	tp := newTopoNoTools(t, macsec.GCMAES256, w)
	chain := []config.CAKEntry{cak("auto", 32, "a7")}
	auto := func(l *config.Link) { l.MKA.Destination = config.Destination{Auto: true} }
	tp.start("a", tp.mkaConfig("a", chain, auto))
	tp.start("b", tp.mkaConfig("b", chain, auto))
	took := tp.waitMKA("CA secured over broadcast", 60*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	t.Logf("secured after %s", took.Round(time.Second))
	for _, side := range []string{"a", "b"} {
		if m := tp.mkaStatus(side); m.Destination != "ff:ff:ff:ff:ff:ff" || !m.AutoDest {
			t.Errorf("%s sends MKPDUs to %s (auto %v)", side, m.Destination, m.AutoDest)
		}
	}
	if !tp.waitPing("10.9.0.2") {
		t.Fatal("no ping across the secured link")
	}
	time.Sleep(15 * time.Second) // two life times: the address found is kept
	if m := tp.mkaStatus("a"); !secured(m) || m.Destination != "ff:ff:ff:ff:ff:ff" {
		t.Errorf("after 15 s: secured %v, destination %s", secured(m), m.Destination)
	}
}
