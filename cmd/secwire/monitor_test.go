package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
)

// `monitor traffic interface line` over SSH shows the line port's frames
// in both directions, protected, while a ping crosses the link, and
// writes them to a pcap file; the capture is in the audit log.
func TestMonitorTrafficShowsBothDirections(t *testing.T) {
	tp := newTopo(t, macsec.GCMAES128)
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	cfgA := tp.startWithSSH("a", tp.config("a", tp.keyB, nil), []config.User{{Name: "admin", Role: "admin", Password: hash}})
	tp.start("b", tp.config("b", tp.keyA, nil))
	if !tp.waitPing("10.9.0.2") {
		t.Fatalf("no traffic across the link\n%s", tp.log("a"))
	}
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wait := tp.pingFlow(300) // 3 s of pings at 100 a second
	s, _ := c.NewSession()
	out, _ := s.CombinedOutput("monitor traffic interface line count 40 seconds 10 write-file line.pcap")
	wait()
	text := string(out)
	in := regexp.MustCompile(`(?m)^\S+ in  \S+ > \S+ MACsec AN 0 PN \d+ SCI 025e00000b010001 encrypted`)
	outgoing := regexp.MustCompile(`(?m)^\S+ out \S+ > \S+ MACsec AN 0 PN \d+ SCI 025e00000a010001 encrypted`)
	if !in.MatchString(text) || !outgoing.MatchString(text) || !strings.Contains(text, "40 frames captured") {
		t.Fatalf("monitor traffic on the line:\n%s", text)
	}
	if strings.Contains(text, "IPv4") {
		t.Fatalf("the line showed plaintext frames:\n%s", text)
	}
	// Each echo request leaves once, protected by A; each reply comes in
	// once, protected by B: nothing A sends on a port comes back in.
	if nIn, nOut := len(in.FindAllString(text, -1)), len(outgoing.FindAllString(text, -1)); nOut > nIn+2 || nIn > nOut+2 {
		t.Fatalf("%d frames in, %d out: frames are reflected\n%s", nIn, nOut, text)
	}
	pcap := filepath.Join(filepath.Dir(cfgA), "files", "line.pcap")
	f, err := os.Open(pcap)
	if err != nil {
		t.Fatalf("capture file: %v\n%s", err, text)
	}
	defer f.Close()
	r, err := openCapture(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != 40 {
		t.Errorf("the pcap file has %d frames, want 40", n)
	}
	audit, _ := os.ReadFile(filepath.Join(filepath.Dir(cfgA), "audit.log"))
	if !regexp.MustCompile(`user=admin from=ssh 127.0.0.1\S* monitor traffic interface line`).Match(audit) {
		t.Errorf("audit log:\n%s", audit)
	}
	t.Logf("monitor traffic:\n%s", text)
}
