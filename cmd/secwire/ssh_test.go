package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/ctl"
	"github.com/secwire/secwire/firmware/mka"
	"github.com/secwire/secwire/internal/netns"
	"github.com/secwire/secwire/internal/termtest"
	"github.com/secwire/secwire/offload/macsec"
)

const sshPassword = "correct horse battery"

// startSSH runs side's daemon with only users configured and SSH on the
// namespace's loopback; its config, seal key, host key and audit log
// live in their own directory.
func (tp *topo) startSSH(side string, users []config.User) string {
	dir := filepath.Join(tp.dir, side+"-cfg")
	os.MkdirAll(dir, 0o700)
	b, _ := json.Marshal(config.Config{System: config.System{Users: users}})
	p := filepath.Join(dir, "secwire.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tp.t.Fatal(err)
	}
	tp.startArgs(side, p, "--ssh", "127.0.0.1:2222")
	return p
}

// dialSSH logs in to side's daemon with golang.org/x/crypto/ssh.
func dialSSH(t *testing.T, ns *netns.NS, user string, auth ssh.AuthMethod) (*ssh.Client, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		for range 50 {
			if c, err = net.Dial("tcp", "127.0.0.1:2222"); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	cc, chans, reqs, err := ssh.NewClientConn(c, "127.0.0.1:2222", &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the test made the server moments ago
		Timeout:         20 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// screen collects what an interactive session shows.
// interactiveShell opens a shell with a terminal, as an operator's SSH
// client does: what is typed goes to in, what the box prints to scr.
func interactiveShell(t *testing.T, c *ssh.Client) (in io.Writer, scr *screen) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if in, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	scr = &screen{}
	sess.Stdout = scr
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return in, scr
}

// screen collects what an interactive session shows.
type screen = termtest.Screen

// Two host daemons start with users only. A is configured over an
// interactive SSH session from golang.org/x/crypto/ssh (password login,
// the CAK typed at a no-echo prompt), B with OpenSSH's ssh (public key,
// one command line). The link then secures with XPN-256 and carries
// traffic encrypted.
func TestSSHConfiguresLinks(t *testing.T) {
	tp := newTopo(t, macsec.GCMAESXPN256)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("OpenSSH client missing: `make test` installs it (.ci/deps, openssh-client)")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " test@secwire"
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	users := []config.User{
		{Name: "admin", Role: "admin", Password: hash, SSHKeys: []string{authorized}},
		{Name: "olga", Role: "operator", Password: hash},
	}
	cfgA := tp.startSSH("a", users)
	cfgB := tp.startSSH("b", users)
	cakHex := strings.Repeat("c3", 32)

	// A: interactive, with a terminal.
	c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
	if err != nil {
		t.Fatalf("ssh to A: %v\n%s", err, tp.log("a"))
	}
	defer c.Close()
	in, scr := interactiveShell(t, c)
	scr.WaitFor(t, "admin@secwire> ")
	for _, step := range [][2]string{
		{"configure\r", "[edit]"},
		{"set links link0 plain plain\r", "# "},
		{"set links link0 line line\r", "# "},
		{"set links link0 cipher gcm-aes-xpn-256\r", "# "},
		{"set links link0 mka key-chain 01ab cak\r", "CAK (32 or 64 hex digits): "},
		{cakHex + "\r", "Retype CAK"},
		{cakHex + "\r", "# "},
		{"set links link0 mka priority 10\r", "# "},
		{"set links link0 mka priority 999\r", "error: priority: 999: want 0..255"},
		{"commit\r", "commit complete"},
		{"exit\r", "admin@secwire> "},
	} {
		io.WriteString(in, step[0])
		scr.WaitFor(t, step[1])
	}
	if strings.Contains(scr.String(), cakHex) {
		t.Fatal("the CAK was echoed on the SSH terminal")
	}

	// B: OpenSSH, public key, one command line (the CAK on the line).
	keyFile := filepath.Join(tp.dir, "id_ed25519")
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600)
	openssh := func(user string, cmd string) (string, error) {
		out, err := tp.b.Command("ssh", "-i", keyFile, "-p", "2222", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
			user+"@127.0.0.1", cmd).CombinedOutput()
		return string(out), err
	}
	out, err := openssh("admin", "configure; set links link0 plain plain; set links link0 line line; "+
		"set links link0 cipher gcm-aes-xpn-256; set links link0 mka key-chain 01ab cak "+cakHex+"; set links link0 mka priority 20; commit")
	if err != nil || !strings.Contains(out, "commit complete") {
		t.Fatalf("OpenSSH configure of B: %v\n%s\nB:\n%s", err, out, tp.log("b"))
	}

	took := tp.waitMKA("CA secured", 20*time.Second, func(a, b *mka.Status) bool { return secured(a) && secured(b) })
	t.Logf("CA secured %s after the commits", took.Round(time.Millisecond))
	stop := capture(t, tp.b, "line", filepath.Join(tp.dir, "line.pcapng"))
	if !tp.waitPing("10.9.0.2") || !tp.ping("10.9.0.2", 5) {
		t.Fatalf("no ping across the link configured over SSH\nA:\n%s\nB:\n%s", tp.log("a"), tp.log("b"))
	}
	checkLine(t, stop())

	// show mka over SSH on both ends.
	io.WriteString(in, "show mka\r")
	scr.WaitFor(t, "SECURED")
	out, err = openssh("admin", "show mka")
	if err != nil || !strings.Contains(out, "SECURED") || strings.Contains(out, cakHex) {
		t.Fatalf("show mka on B over OpenSSH: %v\n%s", err, out)
	}

	// ping out of A's plaintext port to host h1 (10.9.0.1).
	if out, err := openssh("admin", "show configuration"); err != nil || !strings.Contains(out, "links link0") {
		t.Fatalf("show configuration on B: %v\n%s", err, out)
	}
	s3, _ := c.NewSession()
	o3, _ := s3.CombinedOutput("ping 10.9.0.1 link link0 source 10.9.0.200 count 3")
	if !strings.Contains(string(o3), "3 packets transmitted, 3 received") {
		t.Fatalf("ping from A's plaintext side:\n%s", o3)
	}

	// An operator may look, not change; the exit status says so.
	op, err := dialSSH(t, tp.a, "olga", ssh.Password(sshPassword))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := op.NewSession()
	o, err := s2.CombinedOutput("configure")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 1 || !strings.Contains(string(o), "permission denied") {
		t.Fatalf("operator configure: %v\n%s", err, o)
	}
	op.Close()

	// The stored configs carry no CAK, only sealed values; the audit log
	// has the logins and the commit, without the CAK.
	for _, f := range []string{cfgA, cfgB} {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), cakHex) || !strings.Contains(string(b), "sealed:") {
			t.Fatalf("%s stores the CAK in clear:\n%s", f, b)
		}
		if _, err := os.Stat(f + ".1"); err != nil {
			t.Fatalf("no rollback copy of %s: %v", f, err)
		}
		audit, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "audit.log"))
		if !strings.Contains(string(audit), "user=admin from=ssh 127.0.0.1") || !strings.Contains(string(audit), " commit\n    + set links link0 plain plain") ||
			!strings.Contains(string(audit), "    + set links link0 mka key-chain 01ab cak sha256:") ||
			strings.Contains(string(audit), cakHex) {
			t.Fatalf("audit log of %s:\n%s", f, audit)
		}
	}

	// Failed logins from one address are limited: after five wrong
	// passwords even the right one is refused for a while.
	for range 5 {
		if _, err := dialSSH(t, tp.a, "admin", ssh.Password("wrong password")); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	if _, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword)); err == nil {
		t.Fatal("the right password was accepted right after five failures")
	}
	audit, _ := os.ReadFile(filepath.Join(filepath.Dir(cfgA), "audit.log"))
	if !strings.Contains(string(audit), "login failed (password)") || !strings.Contains(string(audit), "too many failed logins") {
		t.Fatalf("audit log lacks the failed logins:\n%s", audit)
	}
}

// A daemon started from the parent directory with a relative --config
// (and then with an absolute one) takes a commit over SSH; the file keeps
// "cak_file": "keys/cak-aa" as written, and the daemon starts again from it.
func TestCommitKeepsKeyFilePaths(t *testing.T) {
	needTools(t, "ip", "ping", "ethtool")
	tp := newTopoNoTools(t, macsec.GCMAES128)
	hash, err := config.HashPassword(sshPassword)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(tp.dir, "a", "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(tp.dir, "a", "keys", "cak-aa"), []byte(strings.Repeat("aa", 16)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prio := 20
	b, _ := json.Marshal(config.Config{
		System: config.System{Users: []config.User{{Name: "admin", Role: "admin", Password: hash}}},
		Links: []config.Link{{Name: "link0", Plain: "plain", Line: "line",
			MKA: &config.MKA{KeyChain: []config.CAKEntry{{CKN: config.Hex{0x0a, 0x0b}, CAKFile: "keys/cak-aa"}}, Priority: &prio}}},
	})
	file := filepath.Join(tp.dir, "a", "secwire.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, cfgArg := range []string{"a/secwire.json", file, "a/secwire.json"} {
		tp.startIn(tp.dir, "a", cfgArg, "--ssh", "127.0.0.1:2222")
		st, err := ctl.Status(tp.socket("a"))
		if err != nil || len(st.Links) != 1 || st.Links[0].MKA == nil {
			t.Fatalf("start %d (--config %s): the link is not running (%v)\n%s", i, cfgArg, err, tp.log("a"))
		}
		c, err := dialSSH(t, tp.a, "admin", ssh.Password(sshPassword))
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, tp.log("a"))
		}
		s, _ := c.NewSession()
		out, _ := s.CombinedOutput(fmt.Sprintf("configure; set links link0 mka priority %d; commit", 30+i))
		c.Close()
		if !strings.Contains(string(out), "commit complete") {
			t.Fatalf("commit with --config %s:\n%s\n%s", cfgArg, out, tp.log("a"))
		}
		stored, _ := os.ReadFile(file)
		if !strings.Contains(string(stored), `"cak_file": "keys/cak-aa"`) || !strings.Contains(string(stored), fmt.Sprintf(`"priority": %d`, 30+i)) {
			t.Fatalf("after a commit with --config %s the file reads:\n%s", cfgArg, stored)
		}
		tp.stop("a")
	}
}

// startWithSSH runs side's daemon from a copy of the config at cfg with
// users added, in its own directory, with SSH on the namespace's loopback.
func (tp *topo) startWithSSH(side, cfg string, users []config.User) string {
	tp.t.Helper()
	var c config.Config
	b, err := os.ReadFile(cfg)
	if err != nil {
		tp.t.Fatal(err)
	}
	json.Unmarshal(b, &c)
	c.System.Users = users
	b, _ = json.Marshal(c)
	dir := filepath.Join(tp.dir, side+"-cfg")
	os.MkdirAll(dir, 0o700)
	p := filepath.Join(dir, "secwire.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tp.t.Fatal(err)
	}
	tp.startArgs(side, p, "--ssh", "127.0.0.1:2222")
	return p
}

// carrierChanges is how often a port's carrier went up or down.
func carrierChanges(t *testing.T, ns *netns.NS, port string) string {
	t.Helper()
	out, err := ns.Command("cat", "/sys/class/net/"+port+"/carrier_changes").CombinedOutput()
	if err != nil {
		t.Fatalf("carrier_changes of %s: %v %s", port, err, out)
	}
	return strings.TrimSpace(string(out))
}
