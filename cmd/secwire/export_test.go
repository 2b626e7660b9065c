package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/firmware/sakexport"
	"github.com/secwire/secwire/offload/macsec"
)

// The README's way to read an MKA link's capture: two daemons secure an
// XPN-256 link with MKA; a capture of the line holds pings in MACsec.
// Over an interactive SSH session A's admin exports the link's SAKs
// (confirmed), and `secwire pcap decrypt --keys` turns the capture into
// the pings in clear. The export is in the audit log, without the keys;
// without a terminal to confirm on, the export is refused.
func TestExportedKeysDecryptAnMKACapture(t *testing.T) {
	tp := newTopo(t, macsec.GCMAESXPN256)
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	chain := []config.CAKEntry{cak("export", 32, "6d")}
	cfgA := tp.startWithSSH("a", tp.mkaConfig("a", chain, nil), []config.User{{Name: "admin", Role: "admin", Password: hash}})
	tp.start("b", tp.mkaConfig("b", chain, nil))
	tp.waitMKA("CA secured", 20*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	pcapng := filepath.Join(tp.dir, "line.pcapng")
	stop := capture(t, tp.b, "line", pcapng)
	if !tp.waitPing("10.9.0.2") || !tp.ping("10.9.0.2", 5) {
		t.Fatalf("no ping across the link\n%s", tp.log("a"))
	}
	frames := stop()
	checkLine(t, frames)

	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	out, _ := s.CombinedOutput("request security mka export-keys link0 file batch.json")
	if !strings.Contains(string(out), "needs a confirmation") {
		t.Fatalf("export without a terminal:\n%s", out)
	}
	in, scr := interactiveShell(t, c)
	scr.WaitFor(t, "admin@secwire> ")
	io.WriteString(in, "request security mka export-keys link0 file line-keys.json\r")
	scr.WaitFor(t, "Export these keys? [yes,no] ")
	io.WriteString(in, "yes\r")
	scr.WaitFor(t, "written to")
	if !regexp.MustCompile(`1 SAK\(s\) of link link0 IN CLEAR to \S+line-keys.json: KN 1 \(AN 0\)`).MatchString(scr.String()) {
		t.Fatalf("export dialogue:\n%s", scr.String())
	}
	keys := filepath.Join(filepath.Dir(cfgA), "files", "line-keys.json")
	f, err := sakexport.Read(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.SAKs) == 0 || f.SAKs[0].Salt == "" || len(f.SAKs[0].SCs) != 2 {
		t.Fatalf("export: %+v", f)
	}

	clearPcap := filepath.Join(tp.dir, "clear.pcap")
	dec, err := exec.Command(secwireBinary(t), "pcap", "decrypt", "--keys", keys, pcapng, clearPcap).CombinedOutput()
	if err != nil {
		t.Fatalf("pcap decrypt --keys: %v\n%s", err, dec)
	}
	t.Logf("pcap decrypt --keys: %s", dec)
	m := regexp.MustCompile(`(\d+) MACsec, (\d+) decrypted`).FindStringSubmatch(string(dec))
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("not every MACsec frame decrypted:\n%s", dec)
	}
	clearFrames := readFrames(t, clearPcap)
	pings := 0
	for _, fr := range clearFrames {
		if bytes.Contains(fr, marker) {
			pings++
		}
	}
	if pings < 5 { // the echo requests A sent (B's own frames skip B's capture taps)
		t.Fatalf("%d frames with the ping pattern after decryption", pings)
	}
	audit, _ := os.ReadFile(filepath.Join(filepath.Dir(cfgA), "audit.log"))
	if !regexp.MustCompile(`user=admin from=ssh \S+ request security mka export-keys link0: KN 1 \(AN 0\) written to \S+line-keys.json`).Match(audit) ||
		strings.Contains(string(audit), f.SAKs[0].Key) {
		t.Fatalf("audit log:\n%s", audit)
	}
}
