package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	fwboot "github.com/secwire/secwire/firmware/boot"
)

// The watchdog acceptance test of issue 14, on the real image: two
// appliances secure a link; A's KaY is hung through the test hook (the
// kernel command line enables test hooks on A only). A stops feeding its
// i6300esb watchdog and says why on the serial console, QEMU's watchdog
// resets it, and it boots again, secures the CA with B and carries
// traffic both ways, with no input.
func TestWatchdogResetsWedgedAppliance(t *testing.T) {
	dir := needQEMU(t)
	base := 23000 + os.Getpid()%50*20 // other worktrees may boot VMs at the same time
	var apps []*appliance
	for i, name := range []string{"A", "B"} {
		disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var params []string
		if name == "A" {
			params = []string{fwboot.TestHooksParam}
		}
		apps = append(apps, bootAppliance(t, name, base+10*i, disk, params...))
	}
	a, b := apps[0], apps[1]
	w := &wire{}
	go w.relay(a.line, b.line)
	go w.relay(b.line, a.line)
	cak := strings.Repeat("6d", 16)
	for _, x := range apps {
		x.firstBoot(t)
	}
	if !strings.Contains(a.vm.Output(), "test hooks enabled") || strings.Contains(b.vm.Output(), "test hooks enabled") {
		t.Fatal("test hooks must be on for A only (kernel command line)")
	}
	if !strings.Contains(a.vm.Output(), "fed while the links, MKA and management make progress") {
		t.Fatalf("A did not arm its watchdog:\n%s", a.vm.tail(3000))
	}
	clients := map[string]*ssh.Client{}
	for i, x := range apps {
		c := x.dial(t)
		defer c.Close()
		clients[x.name] = c
		out := run(t, c, "configure; set system hostname wd-"+strings.ToLower(x.name)+
			"; set links l0 plain eth0; set links l0 line eth1; set links l0 cipher gcm-aes-128"+
			"; set links l0 mka key-chain 0a0b cak "+cak+fmt.Sprintf("; set links l0 mka priority %d", 10+i)+"; commit")
		if !strings.Contains(out, "commit complete") {
			t.Fatalf("%s: commit over SSH:\n%s", x.name, out)
		}
	}
	for _, x := range apps {
		x.waitSecured(t, clients[x.name])
	}
	traffic(t, a, b, "before-stall")
	// B has no test hooks: the command does not exist there.
	if out := run(t, clients["B"], "request system test-hook stall-mka l0 600"); !strings.Contains(out, "error") {
		t.Fatalf("B accepted a test hook:\n%s", out)
	}
	out := run(t, clients["A"], "request system test-hook stall-mka l0 3600")
	if !strings.Contains(out, "stalls for 3600 s") {
		t.Fatalf("stall-mka on A:\n%s", out)
	}
	stalled := time.Now()
	a.expect(t, "watchdog: not fed: links: link l0 MKA has made no progress")
	t.Logf("A stopped feeding its watchdog %s after the stall", time.Since(stalled).Round(time.Second))
	a.expect(t, "secwire: booting")
	t.Logf("A was reset and boots again %s after the stall", time.Since(stalled).Round(time.Second))
	a.expect(t, "wd-a login: ")
	c := a.dial(t)
	defer c.Close()
	a.waitSecured(t, c)
	t.Logf("A secured again %s after the stall", time.Since(stalled).Round(time.Second))
	traffic(t, a, b, "after-reset")
	w.check(t, []byte("SECWIRE-PLAINTEXT"))
}
