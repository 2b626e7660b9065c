package qemu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/image"
)

// configPartition is the config partition's bytes, read raw from
// disk.img (deleted files and free space included).
func configPartition(t *testing.T, disk string) []byte {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	table, err := d.GetPartitionTable()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	parts := table.GetPartitions()
	if len(parts) < image.ConfigPartNum {
		t.Fatalf("%s has %d partitions", disk, len(parts))
	}
	p := parts[image.ConfigPartNum-1]
	start, size := p.GetStart(), p.GetSize()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < start+size {
		t.Fatalf("%s is %d bytes, shorter than its config partition's end", disk, len(b))
	}
	return b[start : start+size]
}

// An appliance provisioned with a static-key link (the SAK in clear in
// the file, as `make qemu CONFIG=` loads it) runs it (PN state), is
// logged into and reconfigured for MKA over SSH (a CAK, audit entries),
// then zeroized from an interactive session. It reboots into the
// first-boot setup, and the raw config partition holds no key, no audit
// entry and no PN state.
func TestZeroizeLeavesNothingOnTheConfigPartition(t *testing.T) {
	dir := needQEMU(t)
	disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hash, err := config.HashPassword(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	sak := strings.Repeat("d1ce", 8)
	cak := strings.Repeat("c0de", 8)
	cfg := config.Config{
		System: config.System{Users: []config.User{{Name: "admin", Role: "admin", Password: hash}},
			Management: &config.Management{Interface: "eth2", Address: netip.MustParsePrefix("10.0.2.15/24")}},
		Links: []config.Link{{Name: "l0", Plain: "eth0", Line: "eth1", Datapath: "software",
			Static: &config.StaticKeys{TX: config.SA{AN: 0, Key: sak},
				RX: []config.RxSC{{SCI: 0x525400aa00010001, SAs: []config.SA{{AN: 0, Key: sak}}}}}}},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := image.WriteConfig(disk, b); err != nil {
		t.Fatal(err)
	}
	sakBytes, _ := hex.DecodeString(sak)
	cakBytes, _ := hex.DecodeString(cak)
	// What must be gone afterwards. The PN state file holds the ceiling
	// PN 1 + 2^24 in decimal.
	secrets := map[string][]byte{
		"the SAK in hex": []byte(sak), "the SAK": sakBytes, "the CAK in hex": []byte(cak), "the CAK": cakBytes,
		"an audit entry": []byte("user=admin"), "a login record": []byte("login (password"), "a sealed value": []byte("sealed:"),
		"PN state": []byte("16777217\n"), "the SSH host key": []byte("OPENSSH PRIVATE KEY"),
	}
	if !bytes.Contains(configPartition(t, disk), []byte(sak)) {
		t.Fatal("the scan does not find the provisioned SAK before boot: it would prove nothing")
	}

	a := bootAppliance(t, "Z", 22200, disk)
	a.expect(t, "login: ")
	c := a.dial(t)
	defer c.Close()
	if out := run(t, c, "show macsec"); !strings.Contains(out, "l0") {
		t.Fatalf("the static-key link does not run:\n%s", out)
	}
	out := run(t, c, "configure; delete links l0; set links l0 plain eth0; set links l0 line eth1; set links l0 datapath software; "+
		"set links l0 mka key-chain 0a0b cak "+cak+"; commit")
	if !strings.Contains(out, "commit complete") {
		t.Fatalf("commit over SSH:\n%s\nconsole:\n%s", out, a.vm.tail(3000))
	}
	if audit := run(t, c, "show log audit"); !strings.Contains(audit, "user=admin") {
		t.Fatalf("no audit entries to erase:\n%s", audit)
	}

	// The scan finds what it looks for while it is there.
	before := configPartition(t, disk)
	for _, what := range []string{"the SAK in hex", "an audit entry", "a login record", "a sealed value", "PN state", "the SSH host key"} {
		if !bytes.Contains(before, secrets[what]) {
			t.Errorf("before zeroize the scan does not find %s: it would prove nothing", what)
		}
	}

	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.RequestPty("vt100", 24, 80, ssh.TerminalModes{})
	in, _ := s.StdinPipe()
	s.Stdout = io.Discard
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "request system zeroize\r")
	time.Sleep(2 * time.Second)
	io.WriteString(in, "yes\r")
	a.expect(t, "secwire: booting")
	a.expect(t, "no administrator is configured")
	a.vm.Stop()

	part := configPartition(t, disk)
	for what, needle := range secrets {
		if i := bytes.Index(part, needle); i >= 0 {
			t.Errorf("after zeroize the config partition still holds %s at offset %#x", what, i)
		}
	}
}
