package kernel_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secwire/secwire/offload/kernel"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/offload/secytest"
	"github.com/secwire/secwire/qemu/guest"
)

// TestKernelSecYConformance runs the SecY seam's conformance suite (the
// one the Go codec passes in firmware/mka) against the kernel backend, on
// the pinned Debian kernel's macsec driver in a QEMU guest. Each SecY is a
// real datapath: a macsec link on a veth, bridged to another.
func TestKernelSecYConformance(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.KernelDatapathModules, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	n := 0
	secytest.Run(t, func(t *testing.T, suite macsec.CipherSuite) macsec.Seam {
		n++
		plain, line := fmt.Sprintf("cp%d", n), fmt.Sprintf("cl%d", n)
		for _, args := range [][]string{
			{"link", "add", plain, "type", "veth", "peer", "name", plain + "p"},
			{"link", "add", line, "mtu", "1600", "type", "veth", "peer", "name", line + "p"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
		d, err := kernel.Start(kernel.Options{
			Plain: plain, Line: line, Name: "ms" + line, PlainMTU: 1500,
			SecY: macsec.Config{Suite: suite, SCI: 0x025e00000a010001, SendSCI: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			d.Stop()
			if _, err := os.Stat("/sys/class/net/ms" + line); err == nil {
				t.Errorf("macsec link ms%s left after Stop", line)
			}
			if _, err := os.Stat("/sys/class/net/brms" + line); err == nil {
				t.Errorf("bridge brms%s left after Stop", line)
			}
			exec.Command("ip", "link", "del", plain).Run()
			exec.Command("ip", "link", "del", line).Run()
		})
		st, err := d.State()
		if err != nil || st.Offload != macsecnl.OffloadOff || st.Cipher != suite {
			t.Fatalf("kernel SecY %+v, %v", st, err)
		}
		return d
	})
}

// TestRemoveStale leaves a datapath behind as a killed daemon would (no
// Stop) and starts another on the same ports: the stale macsec link and
// bridge are replaced. Interfaces of those names that secwire did not
// create are refused and left untouched.
func TestRemoveStale(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.KernelDatapathModules, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("link", "add", "rp", "type", "veth", "peer", "name", "rpp")
	ip("link", "add", "rl", "mtu", "1600", "type", "veth", "peer", "name", "rlp")
	opts := kernel.Options{Plain: "rp", Line: "rl", Name: "msrl", PlainMTU: 1500,
		SecY: macsec.Config{Suite: macsec.GCMAES128, SCI: 0x025e00000a010001, SendSCI: true}}
	index := func(name string) int {
		b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
		if err != nil {
			return 0
		}
		var i int
		fmt.Sscan(string(b), &i)
		return i
	}
	master := func(name string) string {
		p, err := os.Readlink("/sys/class/net/" + name + "/master")
		if err != nil {
			return ""
		}
		return filepath.Base(p)
	}

	old, err := kernel.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	oldLink, oldBridge := old.Ifindex(), index("brmsrl")
	// old is abandoned, as by a SIGKILL: its link and bridge stay.
	d, err := kernel.Start(opts)
	if err != nil {
		t.Fatalf("start over a stale datapath: %v", err)
	}
	if d.Ifindex() == oldLink || index("msrl") != d.Ifindex() || index("brmsrl") == oldBridge || index("brmsrl") == 0 {
		t.Errorf("stale link %d / bridge %d not replaced: link %d, bridge %d", oldLink, oldBridge, index("msrl"), index("brmsrl"))
	}
	if master("rp") != "brmsrl" || master("msrl") != "brmsrl" {
		t.Errorf("ports not in the new bridge: plain %q, macsec %q", master("rp"), master("msrl"))
	}
	out, _ := exec.Command("ip", "-o", "link", "show", "type", "macsec").CombinedOutput()
	if n := len(strings.Split(strings.TrimSpace(string(out)), "\n")); n != 1 {
		t.Errorf("%d macsec links, want 1:\n%s", n, out)
	}
	d.Stop()

	t.Run("an interface with the link's name that is not ours", func(t *testing.T) {
		ip("link", "add", "msrl", "type", "veth", "peer", "name", "msrlp")
		defer ip("link", "del", "msrl")
		_, err := kernel.Start(opts)
		if err == nil || !strings.Contains(err.Error(), "interface msrl exists but is not a macsec link on line port rl") {
			t.Fatalf("error %v", err)
		}
		if index("msrl") == 0 {
			t.Error("the foreign interface was deleted")
		}
	})
	t.Run("a bridge of that name with a port we never add", func(t *testing.T) {
		ip("link", "add", "brmsrl", "type", "bridge")
		defer ip("link", "del", "brmsrl")
		ip("link", "set", "rpp", "master", "brmsrl")
		_, err := kernel.Start(opts)
		if err == nil || !strings.Contains(err.Error(), "bridge brmsrl has port rpp, which secwire never adds") {
			t.Fatalf("error %v", err)
		}
		if index("brmsrl") == 0 || master("rpp") != "brmsrl" {
			t.Error("the foreign bridge was touched")
		}
	})
}
