package kernel_test

import (
	"fmt"
	"os"
	"os/exec"
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
	secytest.Run(t, func(t *testing.T, suite macsec.CipherSuite) secytest.SecY {
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
		if err != nil || st.Offload != macsecnl.OffloadOff || st.Cipher != macsecnl.CipherSuite(suite.ID()) {
			t.Fatalf("kernel SecY %+v, %v", st, err)
		}
		return d
	})
}
