package qemu

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/internal/modroot"
)

// The `make qemu` path as a new user walks it, on a copy of the source
// tree (the test edits a source file): build and first boot with the
// administrator setup, a link configured over SSH; then a source change,
// `make qemu` again, and the appliance comes back with the same user,
// SSH host key and link config, running the new build. `make qemu
// FRESH=1` then starts blank.
func TestMakeQemuKeepsTheAppliance(t *testing.T) {
	if _, err := os.Stat("/usr/bin/qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 missing: `make test` installs it (Debian package qemu-system-x86)")
	}
	root, err := modroot.Dir()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "secwire")
	if err := copySourceTree(root, src); err != nil {
		t.Fatal(err)
	}
	const base = 23000 // plaintext 23000/1, line 23002/3, SSH 23004
	plain, _ := UDPLink(base, base+1)
	line, _ := UDPLink(base+2, base+3)
	sshPort := base + 4
	makeQemu := func(round string, extra ...string) *VM {
		t.Helper()
		args := append([]string{"-C", src, "qemu", "PLAIN_NETDEV=" + plain, "LINE_NETDEV=" + line,
			fmt.Sprintf("MGMT_NETDEV=user,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", sshPort)}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		logf, _ := os.Create(filepath.Join(filepath.Dir(src), round+".log"))
		vm, err := StartCommand(ctx, "make qemu ("+round+")", exec.Command("make", args...), logf)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Stop(); cancel(); logf.Close() })
		return vm
	}
	buildWait := promptWait + 5*time.Minute // make image on a fresh tree, then the boot
	expect := func(vm *VM, s string, within time.Duration) {
		t.Helper()
		if err := vm.ExpectString(s, within); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Build, first boot, setup, a link over SSH.
	vm := makeQemu("first")
	for _, qa := range [][2]string{
		{"Administrator name [admin]: ", "admin"},
		{"Password (8 to 72 characters): ", adminPassword},
		{"Retype password: ", adminPassword},
		{"Management address on eth2 for SSH", "10.0.2.15/24"},
	} {
		expect(vm, qa[0], buildWait)
		vm.Send(qa[1])
	}
	expect(vm, "login: ", promptWait)
	var hostKey ssh.PublicKey
	c := dialSSH(t, vm, sshPort, func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil })
	out := run(t, c, "configure; set system hostname keep-me; set links l0 plain eth0; set links l0 line eth1"+
		"; set links l0 cipher gcm-aes-xpn-256; set links l0 mka key-chain 0a0b0c0d cak "+strings.Repeat("5e", 32)+"; commit")
	c.Close()
	if !strings.Contains(out, "commit complete") {
		t.Fatalf("commit over SSH:\n%s", out)
	}
	vm.Stop()

	// 2. A source change, and make qemu again: a rebuild.
	marker := "+rebuilt-by-test"
	if err := os.WriteFile(filepath.Join(src, "cmd", "secwire", "zz_rebuilt.go"),
		[]byte("package main\n\nfunc init() { version += \""+marker+"\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm = makeQemu("rebuilt")
	expect(vm, "firmware updated", buildWait)
	expect(vm, "keep-me login: ", promptWait)
	if strings.Contains(vm.Output(), "Administrator name") {
		t.Fatalf("the rebuilt appliance ran the first-boot setup:\n%s", vm.tail(3000))
	}
	c = dialSSH(t, vm, sshPort, ssh.FixedHostKey(hostKey)) // same host key, same password
	sys := run(t, c, "show system")
	conf := run(t, c, "show configuration")
	c.Close()
	if !strings.Contains(sys, marker) {
		t.Fatalf("the appliance does not run the rebuilt firmware:\n%s", sys)
	}
	if !strings.Contains(conf, "cipher gcm-aes-xpn-256;") || !strings.Contains(conf, "line eth1;") || !strings.Contains(conf, "0a0b0c0d") {
		t.Fatalf("the link config did not survive the rebuild:\n%s", conf)
	}
	vm.Stop()

	// 3. FRESH=1: a blank box.
	vm = makeQemu("fresh", "FRESH=1")
	expect(vm, "FRESH: blank disk", buildWait)
	expect(vm, "Administrator name [admin]: ", promptWait)
	vm.Stop()
}

// dialSSH logs in as admin through the forwarded port, retrying while the
// appliance comes up.
func dialSSH(t *testing.T, vm *VM, port int, hostKey ssh.HostKeyCallback) *ssh.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: hostKey, Timeout: time.Minute}
	var err error
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		var c *ssh.Client
		if c, err = ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg); err == nil {
			return c
		}
		if strings.Contains(err.Error(), "host key mismatch") {
			break
		}
	}
	t.Fatalf("no SSH login: %v\nconsole:\n%s", err, vm.tail(2000))
	return nil
}

// copySourceTree copies the repository without build/ and .git; .cache
// (the pinned kernel packages) is linked, not copied.
func copySourceTree(root, dst string) error {
	cache := filepath.Join(root, ".cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	cache, err := filepath.EvalSymlinks(cache)
	if err != nil {
		return err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == "build" || rel == ".git" || rel == ".cache":
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case strings.HasSuffix(rel, ".test"):
			return nil
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, fi.Mode().Perm())
	})
	if err != nil {
		return err
	}
	return os.Symlink(cache, filepath.Join(dst, ".cache"))
}
