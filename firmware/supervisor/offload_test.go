package supervisor_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/qemu/guest"
)

// TestOffloadSelectionOnNetdevsim boots the netdevsim test kernel
// (image/testkernel: Debian's linux-source with netdevsim's MACsec
// offload) and checks the backend selection on a netdevsim port:
//
//   - auto picks offload mac, and the SAs are programmed into the
//     offloaded SecY (read back over netlink);
//   - a suite the driver table says the NIC cannot offload (XPN) falls
//     back to kernel software, and says why;
//   - when the kernel refuses offload (the port's SecY slots are full)
//     auto falls back to kernel software, and says why;
//   - a forced backend the kernel refuses is an error, not a fallback.
func TestOffloadSelectionOnNetdevsim(t *testing.T) {
	var k string
	if !guest.Inside() {
		var err error
		if k, err = guest.NetdevsimKernel(); err != nil {
			t.Skip(err)
		}
	}
	if guest.Run(t, guest.Config{Kernel: k, Files: []string{"/usr/bin/ip"}}) {
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	must(t, os.WriteFile("/sys/bus/netdevsim/new_device", []byte("1 1"), 0o200))
	var line string
	for range 50 {
		if m, _ := filepath.Glob("/sys/bus/netdevsim/devices/netdevsim1/net/*"); len(m) == 1 {
			line = filepath.Base(m[0])
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if line == "" {
		t.Fatal("netdevsim created no port")
	}
	run(t, "ip", "link", "set", line, "mtu", "1600", "up")
	run(t, "ip", "link", "add", "plain0", "type", "veth", "peer", "name", "host0")
	t.Logf("netdevsim port %s", line)

	start := func(t *testing.T, cipher, datapath string) (*supervisor.Supervisor, error) {
		key := strings.Repeat("5a", 16)
		if strings.HasSuffix(cipher, "256") {
			key = strings.Repeat("5a", 32)
		}
		sa := config.SA{AN: 0, Key: key, PN: 100}
		if strings.Contains(cipher, "xpn") {
			sa.SSCI, sa.Salt = "00000001", "0102030405060708090a0b0c"
		}
		cfg := &config.Config{Links: []config.Link{{
			Name: "l0", Plain: "plain0", Line: line, Cipher: cipher, Datapath: datapath,
			Static: &config.StaticKeys{TX: sa, RX: []config.RxSC{{SCI: "025e00000b010001", SAs: []config.SA{sa}}}},
		}}}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		return supervisor.Start(context.Background(), cfg, supervisor.Options{Log: log, StateDir: t.TempDir()})
	}
	nl, err := macsecnl.Dial()
	must(t, err)
	defer nl.Close()
	kernelSecY := func(t *testing.T) *macsecnl.SecY {
		ifc, err := net.InterfaceByName("ms" + line)
		if err != nil {
			t.Fatalf("no macsec link: %v", err)
		}
		s, err := nl.Get(ifc.Index)
		must(t, err)
		return s
	}

	t.Run("auto picks offload mac", func(t *testing.T) {
		sup, err := start(t, "gcm-aes-128", "")
		must(t, err)
		defer sup.Stop()
		st := sup.Status().Links[0]
		t.Logf("datapath: %s", st.Datapath)
		if st.Backend != "offload-mac" || !strings.HasPrefix(st.Datapath, "offload mac") {
			t.Fatalf("backend %q (%s), want offload-mac", st.Backend, st.Datapath)
		}
		s := kernelSecY(t)
		if s.Offload != macsecnl.OffloadMAC {
			t.Fatalf("kernel SecY offload %s", s.Offload)
		}
		if len(s.TxSAs) != 1 || s.TxSAs[0].AN != 0 || s.TxSAs[0].PN != 100 || !s.TxSAs[0].Active {
			t.Errorf("offloaded TX SAs %+v", s.TxSAs)
		}
		if len(s.RxSCs) != 1 || len(s.RxSCs[0].SAs) != 1 || s.RxSCs[0].SAs[0].PN != 100 {
			t.Errorf("offloaded RX SCs %+v", s.RxSCs)
		}
		if len(st.TxSAs) != 1 || st.TxSAs[0].Key != "sha256:"+fmt.Sprintf("%x", s.TxSAs[0].KeyID[:4]) {
			t.Errorf("status TX SAs %+v", st.TxSAs)
		}
	})

	t.Run("XPN is not offloaded by netdevsim", func(t *testing.T) {
		sup, err := start(t, "gcm-aes-xpn-256", "")
		must(t, err)
		defer sup.Stop()
		st := sup.Status().Links[0]
		t.Logf("datapath: %s", st.Datapath)
		if st.Backend != "kernel" || !strings.Contains(st.Datapath, "netdevsim offload has no gcm-aes-xpn-256") {
			t.Fatalf("backend %q (%s), want kernel with the reason", st.Backend, st.Datapath)
		}
		if s := kernelSecY(t); s.Offload != macsecnl.OffloadOff || len(s.TxSAs) != 1 || s.TxSAs[0].SSCI != 1 {
			t.Errorf("kernel SecY %+v", s)
		}
	})

	t.Run("offload refused by the kernel", func(t *testing.T) {
		// netdevsim offloads three SecYs per port: take them all.
		for i := range 3 {
			idx, err := nl.AddLink(macsecnl.Link{Name: fmt.Sprintf("hog%d", i), Parent: line, Port: uint16(10 + i),
				Cipher: macsecnl.GCMAES128, Protect: true, Offload: macsecnl.OffloadMAC})
			must(t, err)
			defer nl.DeleteLink(idx)
		}
		sup, err := start(t, "gcm-aes-128", "")
		must(t, err)
		defer sup.Stop()
		st := sup.Status().Links[0]
		t.Logf("datapath: %s", st.Datapath)
		if st.Backend != "kernel" || !strings.Contains(st.Datapath, "offload-mac: ") || !strings.Contains(st.Datapath, "no space left") {
			t.Fatalf("backend %q (%s), want kernel after the refusal", st.Backend, st.Datapath)
		}
		if s := kernelSecY(t); s.Offload != macsecnl.OffloadOff || len(s.TxSAs) != 1 {
			t.Errorf("kernel SecY %+v", s)
		}
	})

	t.Run("forced offload phy is refused", func(t *testing.T) {
		sup, err := start(t, "gcm-aes-128", "offload-phy")
		if err == nil {
			sup.Stop()
			t.Fatal("offload phy on a port without a MACsec PHY started")
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "datapath offload-phy") || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("error %q does not name the backend and the kernel's refusal", err)
		}
		if _, err := net.InterfaceByName("ms" + line); err == nil {
			t.Error("a failed start left its macsec link")
		}
	})
}
