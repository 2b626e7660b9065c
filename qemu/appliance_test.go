package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/image"
)

// The acceptance test of the management plane: two appliances booted from
// the real image with no config. On each serial console the first-boot
// setup creates the administrator and the management address; then the
// test logs in over SSH (QEMU forwards a loopback port to the management
// port), configures the link (XPN-256, a CKN/CAK pair) and commits. The
// test process is the wire between the line ports and the hosts on the
// plaintext ports:
//
//	host A ~ [eth0 plain | appliance A | eth1 line] ~ wire ~ [eth1 line | appliance B | eth0 plain] ~ host B
//
// Frames cross the wire encrypted, and after `request system reboot` the
// config is back and the link secures again with no input.

const adminPassword = "first-boot secret"

// udpPort is one end of a QEMU dgram netdev as the test sees it: it
// receives what the guest NIC sends and sends frames into the NIC.
type udpPort struct {
	c    *net.UDPConn
	qemu *net.UDPAddr
}

func listenUDP(t *testing.T, local, qemuPort int) *udpPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPort{c: c, qemu: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: qemuPort}}
}

func (u *udpPort) send(frame []byte) { u.c.WriteToUDP(frame, u.qemu) }

type appliance struct {
	name        string
	disk        string
	vm          *VM
	sshPort     int
	plain, line *udpPort
}

// bootAppliance boots one appliance on a private copy of disk.img; base
// is the first of the loopback ports it uses. params are added to the
// image's kernel command line.
func bootAppliance(t *testing.T, name string, base int, disk string, params ...string) *appliance {
	t.Helper()
	dir := needQEMU(t)
	a := &appliance{name: name, sshPort: base + 4, disk: disk}
	s := Spec{ImageDir: dir, Disk: disk, Boot: BootKernel, MACPrefix: fmt.Sprintf("52:54:00:%02x:00", base%256)}
	if len(params) > 0 {
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		s.Cmdline = strings.TrimSpace(string(b)) + " " + strings.Join(params, " ")
	}
	s.Plain, _ = UDPLink(base, base+1)
	s.Line, _ = UDPLink(base+2, base+3)
	s.Mgmt = fmt.Sprintf("user,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", a.sshPort)
	a.plain = listenUDP(t, base+1, base)
	a.line = listenUDP(t, base+3, base+2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	logf, _ := os.Create(filepath.Join(filepath.Dir(disk), "console.log"))
	vm, err := Start(ctx, name, s, logf)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Stop(); cancel(); logf.Close() })
	a.vm = vm
	return a
}

func (a *appliance) expect(t *testing.T, s string) {
	t.Helper()
	if err := a.vm.ExpectString(s, promptWait); err != nil {
		t.Fatal(err)
	}
}

// firstBoot answers the first-boot setup on the serial console.
func (a *appliance) firstBoot(t *testing.T) {
	t.Helper()
	a.expect(t, "no administrator is configured")
	for _, qa := range [][2]string{
		{"Administrator name [admin]: ", "admin"},
		{"Password (8 to 72 characters): ", adminPassword},
		{"Retype password: ", adminPassword},
		{"Management address on eth2 for SSH", "10.0.2.15/24"},
	} {
		a.expect(t, qa[0])
		a.vm.Send(qa[1])
	}
	a.expect(t, "Administrator admin created")
	a.expect(t, "login: ")
	if strings.Contains(a.vm.Output(), adminPassword) {
		t.Fatal("the console echoed the password")
	}
}

// dial logs in over SSH, retrying while the appliance comes up.
func (a *appliance) dial(t *testing.T) *ssh.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Minute}
	var err error
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		var c *ssh.Client
		if c, err = ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", a.sshPort), cfg); err == nil {
			return c
		}
	}
	t.Fatalf("%s: no SSH login: %v\nconsole:\n%s", a.name, err, a.vm.tail(2000))
	return nil
}

// run runs one command line over SSH (commands separated by ';').
func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := s.CombinedOutput(cmd)
	return string(out)
}

func (a *appliance) waitSecured(t *testing.T, c *ssh.Client) string {
	t.Helper()
	var out string
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if out = run(t, c, "show mka"); strings.Contains(out, "SECURED") {
			return out
		}
	}
	t.Fatalf("%s: the CA never secured:\n%s", a.name, out)
	return ""
}

// wire relays the line ports' frames and records them.
type wire struct {
	mu     sync.Mutex
	frames [][]byte
}

func (w *wire) relay(from, to *udpPort) {
	buf := make([]byte, 65536)
	for {
		n, _, err := from.c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		f := append([]byte(nil), buf[:n]...)
		w.mu.Lock()
		w.frames = append(w.frames, f)
		w.mu.Unlock()
		to.send(f)
	}
}

// check fails on any frame on the line that is neither MACsec nor EAPOL,
// or that carries the plaintext marker, and returns the MACsec count.
func (w *wire) check(t *testing.T, marker []byte) int {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, f := range w.frames {
		if len(f) < 14 {
			continue
		}
		switch et := binary.BigEndian.Uint16(f[12:]); et {
		case 0x88e5:
			n++
		case 0x888e:
		default:
			t.Fatalf("a frame with EtherType %#04x crossed the line in clear: % x", et, f[:min(len(f), 64)])
		}
		if bytes.Contains(f, marker) {
			t.Fatalf("the plaintext marker crossed the line: % x", f)
		}
	}
	return n
}

// traffic sends marked frames from each host and checks the other host
// gets them, bounded in count and time.
func traffic(t *testing.T, a, b *appliance, round string) {
	t.Helper()
	for _, dir := range []struct {
		from, to *appliance
		src, dst net.HardwareAddr
	}{
		{a, b, net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}},
		{b, a, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, net.HardwareAddr{2, 0, 0, 0, 0, 0xa}},
	} {
		marker := []byte("SECWIRE-PLAINTEXT-" + round + "-" + dir.from.name)
		frame := append(append(append([]byte{}, dir.dst...), dir.src...), 0x88, 0xb5)
		frame = append(frame, marker...)
		frame = append(frame, make([]byte, 60)...)
		got := make(chan bool, 1)
		go func() {
			buf := make([]byte, 65536)
			dir.to.plain.c.SetReadDeadline(time.Now().Add(90 * time.Second))
			defer dir.to.plain.c.SetReadDeadline(time.Time{})
			for {
				n, _, err := dir.to.plain.c.ReadFromUDP(buf)
				if err != nil {
					got <- false
					return
				}
				if bytes.Contains(buf[:n], marker) {
					got <- true
					return
				}
			}
		}()
		ok := false
		for i := 0; i < 60 && !ok; i++ { // at most 60 frames, one a second
			dir.from.plain.send(frame)
			select {
			case ok = <-got:
				if !ok {
					t.Fatalf("%s: host %s never received host %s's frame", round, dir.to.name, dir.from.name)
				}
			case <-time.After(time.Second):
			}
		}
		if !ok {
			t.Fatalf("%s: host %s never received host %s's frame", round, dir.to.name, dir.from.name)
		}
	}
}

func TestTwoAppliancesConfiguredOverSSH(t *testing.T) {
	dir := needQEMU(t)
	var apps []*appliance
	for i, name := range []string{"A", "B"} {
		tmp := t.TempDir()
		disk, err := PrivateCopy(filepath.Join(dir, "disk.img"), tmp)
		if err != nil {
			t.Fatal(err)
		}
		apps = append(apps, bootAppliance(t, name, 22000+10*i, disk))
	}
	a, b := apps[0], apps[1]
	w := &wire{}
	go w.relay(a.line, b.line)
	go w.relay(b.line, a.line)

	cak := strings.Repeat("5e", 32)
	for _, x := range apps {
		x.firstBoot(t)
	}
	clients := map[string]*ssh.Client{}
	for i, x := range apps {
		c := x.dial(t)
		defer c.Close()
		clients[x.name] = c
		out := run(t, c, "configure; set system hostname enc-"+strings.ToLower(x.name)+
			"; set links l0 plain eth0; set links l0 line eth1; set links l0 cipher gcm-aes-xpn-256"+
			"; set links l0 mka key-chain 0a0b0c0d cak "+cak+fmt.Sprintf("; set links l0 mka priority %d", 10+i)+"; commit")
		if !strings.Contains(out, "commit complete") {
			t.Fatalf("%s: commit over SSH:\n%s\nconsole:\n%s", x.name, out, x.vm.tail(3000))
		}
	}
	for _, x := range apps {
		out := x.waitSecured(t, clients[x.name])
		t.Logf("%s: show mka:\n%s", x.name, out)
		if strings.Contains(out, cak) {
			t.Fatal("show mka printed the CAK")
		}
	}
	t.Logf("A: show macsec:\n%s", run(t, clients["A"], "show macsec"))
	traffic(t, a, b, "before-reboot")
	if n := w.check(t, []byte("SECWIRE-PLAINTEXT")); n == 0 {
		t.Fatal("no MACsec frames on the line")
	}
	// Wrong input over SSH changes nothing.
	out := run(t, clients["A"], "configure; set links l0 replay-window 99999999999; set links l0 mka key-chain 0a0 cak 00; compare")
	if !strings.Contains(out, "error: replay-window") || !strings.Contains(out, "error: ckn: not hex") || !strings.Contains(out, "no differences") {
		t.Fatalf("wrong input over SSH:\n%s", out)
	}

	// Reboot A from an interactive session; it comes back configured.
	s, _ := clients["A"].NewSession()
	s.RequestPty("vt100", 24, 80, ssh.TerminalModes{})
	in, _ := s.StdinPipe()
	var scr bytes.Buffer
	var mu sync.Mutex
	s.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return scr.Write(p) })
	s.Shell()
	io.WriteString(in, "request system reboot\r")
	time.Sleep(2 * time.Second)
	io.WriteString(in, "yes\r")
	a.expect(t, "secwire: booting")
	a.expect(t, "enc-a login: ")
	if strings.Contains(a.vm.Output()[strings.LastIndex(a.vm.Output(), "secwire: booting"):], "first-boot") {
		t.Fatal("the appliance ran the first-boot setup again after a reboot")
	}
	c := a.dial(t)
	defer c.Close()
	out = a.waitSecured(t, c)
	t.Logf("A after reboot: show mka:\n%s", out)
	if !strings.Contains(run(t, c, "show configuration"), "cipher gcm-aes-xpn-256;") {
		t.Fatal("the configuration did not survive the reboot")
	}
	traffic(t, a, b, "after-reboot")
	w.check(t, []byte("SECWIRE-PLAINTEXT"))
	a.vm.Stop()
	// On the config partition the CAK is sealed, never in clear.
	stored, err := image.ReadConfig(a.disk)
	if err != nil || !strings.Contains(string(stored), `"cak": "sealed:`) || strings.Contains(string(stored), cak) {
		t.Fatalf("stored config (%v):\n%s", err, stored)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
