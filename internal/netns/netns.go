// Package netns gives tests and tools named Linux network namespaces: it
// creates them with iproute2 (so `ip netns exec` and tshark can join them),
// runs Go code inside one on a locked OS thread, and runs commands in them.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (/run/netns/Name).
type NS struct{ Name string }

// Add creates a namespace with loopback up.
func Add(name string) (*NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	ns := &NS{Name: name}
	if err := ns.IP("link", "set", "dev", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	// No IPv6 autoconfiguration chatter: tests count frames exactly.
	err := ns.Do(func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ns.Delete()
		return nil, fmt.Errorf("netns %s: disabling IPv6: %w", name, err)
	}
	return ns, nil
}

// Delete removes the namespace; interfaces in it go with it.
func (ns *NS) Delete() error {
	return exec.Command("ip", "netns", "del", ns.Name).Run()
}

// IP runs `ip -n NAME args...`.
func (ns *NS) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn with the calling goroutine's OS thread inside the namespace.
// Sockets fn opens stay in the namespace after Do returns.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread cannot go home: keep it locked so the runtime
		// retires it instead of reusing it elsewhere.
		runtime.LockOSThread()
		return fmt.Errorf("setns back: %w", err)
	}
	return ferr
}

// Veth creates a veth pair with one end in each namespace, both up.
func Veth(a *NS, aName string, b *NS, bName string) error {
	if err := a.IP("link", "add", "name", aName, "type", "veth", "peer", "name", bName, "netns", b.Name); err != nil {
		return err
	}
	if err := a.IP("link", "set", "dev", aName, "up"); err != nil {
		return err
	}
	return b.IP("link", "set", "dev", bName, "up")
}
