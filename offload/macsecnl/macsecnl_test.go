package macsecnl_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/qemu/guest"
)

// The build machines' kernel has no macsec driver: Dial must say so.
func TestDialWithoutMACsec(t *testing.T) {
	if guest.Inside() {
		t.Skip("host-only check")
	}
	if _, err := os.Stat("/sys/module/macsec"); err == nil {
		t.Skip("this kernel has the macsec driver loaded; TestKernel covers it")
	}
	c, err := macsecnl.Dial()
	if err == nil {
		c.Close()
		t.Skip("this kernel loaded the macsec driver on demand; TestKernel covers it")
	}
	if !errors.Is(err, macsecnl.ErrNoMACsec) || !strings.Contains(err.Error(), "macsec module") {
		t.Fatalf("Dial without macsec: %v", err)
	}
}

func veth(t *testing.T, a, b string) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", a, "address", "02:5e:00:00:0a:01", "type", "veth", "peer", "name", b},
		{"link", "set", a, "up"}, {"link", "set", b, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", a).Run() })
}

// TestKernel drives the real macsec driver of the pinned Debian kernel in
// a QEMU guest: create, configure, read back, error paths, delete.
func TestKernel(t *testing.T) {
	if guest.Run(t, guest.Config{Modules: guest.MACsecModules, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	veth(t, "nl0", "nl1")
	c, err := macsecnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mac, _ := net.ParseMAC("02:5e:00:00:0a:01")
	sci := macsecnl.MakeSCI(mac, 7)
	idx, err := c.AddLink(macsecnl.Link{
		Name: "nlsec0", Parent: "nl0", SCI: sci, Cipher: macsec.GCMAESXPN256,
		Encrypt: false, Protect: true, SendSCI: true, Replay: true, Window: 32,
		Validate: macsecnl.ValidateCheck,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Get(idx)
	if err != nil {
		t.Fatal(err)
	}
	if s.SCI != sci || s.Cipher != macsec.GCMAESXPN256 || s.ICVLen != 16 || s.Window != 32 || !s.Replay ||
		s.Validate != macsecnl.ValidateCheck || s.Encrypt || !s.Protect || !s.SendSCI || s.Offload != macsecnl.OffloadOff || s.Oper {
		t.Fatalf("read back %+v", s)
	}

	key := bytes.Repeat([]byte{0xab}, 32)
	salt := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tx := macsecnl.SA{AN: 0, Active: true, PN: 1<<32 + 5, Key: key, KeyID: [16]byte{0xaa}, XPN: true, SSCI: 0x01020304, Salt: salt}
	if err := c.AddTxSA(idx, tx); err != nil {
		t.Fatal(err)
	}
	peer := macsecnl.MakeSCI(net.HardwareAddr{2, 0x5e, 0, 0, 0xb, 1}, 1)
	if err := c.AddRxSC(idx, peer, true); err != nil {
		t.Fatal(err)
	}
	rx := macsecnl.SA{AN: 3, Active: true, PN: 9, Key: key, KeyID: [16]byte{0xbb}, XPN: true, SSCI: 2, Salt: salt}
	if err := c.AddRxSA(idx, peer, rx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetProtect(idx, true, 0); err != nil {
		t.Fatal(err)
	}
	s, err = c.Get(idx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.TxSAs) != 1 || s.TxSAs[0].PN != 1<<32+5 || s.TxSAs[0].SSCI != 0x01020304 || s.TxSAs[0].KeyID != tx.KeyID || !s.TxSAs[0].Active {
		t.Errorf("TX SA read back %+v", s.TxSAs)
	}
	if len(s.RxSCs) != 1 || s.RxSCs[0].SCI != peer || !s.RxSCs[0].Active || len(s.RxSCs[0].SAs) != 1 ||
		s.RxSCs[0].SAs[0].AN != 3 || s.RxSCs[0].SAs[0].PN != 9 || s.RxSCs[0].SAs[0].SSCI != 2 {
		t.Errorf("RX SC read back %+v", s.RxSCs)
	}
	if !s.Oper {
		t.Error("SecY not operational with its encoding SA installed")
	}
	// Updates.
	window, validate, encrypt := uint32(128), macsecnl.ValidateStrict, true
	if err := c.UpdateLink(idx, macsecnl.LinkUpdate{Window: &window, Validate: &validate, Encrypt: &encrypt}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get(idx); s.Window != 128 || s.Validate != macsecnl.ValidateStrict || !s.Encrypt || s.SCI != sci {
		t.Errorf("link update not applied: %+v", s)
	}
	if err := c.UpdateTxSA(idx, macsecnl.SA{AN: 0, Active: true, PN: 1 << 40, XPN: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateRxSC(idx, peer, false); err != nil {
		t.Fatal(err)
	}
	s, _ = c.Get(idx)
	if s.TxSAs[0].PN != 1<<40 || s.RxSCs[0].Active {
		t.Errorf("updates not applied: TX PN %#x, RX SC active %v", s.TxSAs[0].PN, s.RxSCs[0].Active)
	}

	// Error paths: each names what failed, and the kernel's errno survives.
	errCases := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"20-byte key", c.AddTxSA(idx, macsecnl.SA{AN: 1, Key: make([]byte, 20), XPN: true}), "key is 20 bytes", nil},
		{"16-byte key on a 256-bit SecY", c.AddTxSA(idx, macsecnl.SA{AN: 1, Key: make([]byte, 16), XPN: true, SSCI: 1}), "16 or 32 bytes", syscall.EINVAL},
		{"XPN SA without salt attributes", c.AddTxSA(idx, macsecnl.SA{AN: 1, Key: key}), "add TX SA 1", syscall.EINVAL},
		{"AN in use", c.AddTxSA(idx, tx), "on add, free", syscall.EBUSY},
		{"AN 4", c.AddTxSA(idx, macsecnl.SA{AN: 4, Key: key}), "AN 4 is out of range", nil},
		{"unknown RX SC", c.DeleteRxSC(idx, macsecnl.MakeSCI(mac, 99)), "delete RX SC", syscall.ENODEV},
		{"offload on a veth", c.SetOffload(idx, macsecnl.OffloadMAC), "set offload mac", syscall.EOPNOTSUPP},
		{"name in use", func() error {
			_, err := c.AddLink(macsecnl.Link{Name: "nlsec0", Parent: "nl0", Cipher: macsec.GCMAES128})
			return err
		}(), "create link nlsec0", syscall.EEXIST},
		{"no parent", func() error {
			_, err := c.AddLink(macsecnl.Link{Name: "nlsec9", Parent: "nope", Cipher: macsec.GCMAES128})
			return err
		}(), "parent nope", nil},
	}
	for _, e := range errCases {
		switch {
		case e.err == nil:
			t.Errorf("%s: no error", e.name)
		case !strings.Contains(e.err.Error(), e.want):
			t.Errorf("%s: %q does not say %q", e.name, e.err, e.want)
		case e.is != nil && !errors.Is(e.err, e.is):
			t.Errorf("%s: %v is not %v", e.name, e.err, e.is)
		default:
			t.Logf("%s: %v", e.name, e.err)
		}
	}
	for _, e := range errCases {
		if e.err != nil && strings.Contains(e.err.Error(), "abab") {
			t.Errorf("an error shows key bytes: %v", e.err)
		}
	}

	// A 128-bit non-XPN link takes 32-bit PNs only.
	idx2, err := c.AddLink(macsecnl.Link{Name: "nlsec1", Parent: "nl1", Cipher: macsec.GCMAES128, Protect: true, Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddTxSA(idx2, macsecnl.SA{AN: 0, Key: key[:16], PN: 1 << 33}); err == nil || !strings.Contains(err.Error(), "32 bits") {
		t.Errorf("a 33-bit PN on a non-XPN SA: %v", err)
	}
	if err := c.AddTxSA(idx2, macsecnl.SA{AN: 0, Key: key[:16], PN: 0xfffffff0, Active: true}); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get(idx2); len(s.TxSAs) != 1 || s.TxSAs[0].PN != 0xfffffff0 {
		t.Errorf("non-XPN PN read back %+v", s.TxSAs)
	}
	for _, i := range []int{idx, idx2} {
		if err := c.DeleteLink(i); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(i); err == nil {
			t.Errorf("ifindex %d still a macsec link after delete", i)
		}
	}
}
