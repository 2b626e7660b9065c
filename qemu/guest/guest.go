// Package guest runs a Go test inside a QEMU guest that boots the pinned
// Debian kernel, for tests that need kernel features the build machine's
// own kernel lacks (macsec, netdevsim) or real Debian tools (ip,
// wpa_supplicant). A test starts with
//
//	if guest.Run(t, guest.Config{Modules: []string{"macsec", "veth"}, Files: []string{"/usr/bin/ip"}}) {
//		return // it ran in the VM; the result is reported on the host
//	}
//	// from here on the test is inside the guest, as root, modules loaded
//
// and the package's TestMain calls Main, so that the guest's last lines of
// output reach the host before the guest stops.
//
// On the host, Run compiles the package's test binary, builds an initramfs
// with it as u-root's uinit, boots it, streams the guest's test output into
// the host test's log and fails the host test if the guest test failed.
package guest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/image"
	"github.com/secwire/secwire/internal/modroot"
	"github.com/secwire/secwire/qemu"
)

// marker is a file only guest initramfs images have; its content lists the
// modules to load before the test runs.
const marker = "/etc/secwire-guest-test"

// Config says what the guest needs.
type Config struct {
	Modules []string // kernel modules, loaded with dependencies before the test runs
	// Files are host files copied into the guest at the same path (or
	// "host:guest"); ELF binaries bring their shared libraries along.
	Files    []string
	MemoryMB int           // default 768
	Timeout  time.Duration // whole VM run, default 10 minutes
	Extra    []string      // extra QEMU arguments (NICs for peer tests)
	// Kernel boots this kernel image instead of the pinned Debian one;
	// it must have every driver the test needs built in (Modules empty).
	Kernel string
}

// NetdevsimKernel is the test kernel with netdevsim's MACsec offload
// (image/testkernel), or an error saying how to build it.
func NetdevsimKernel() (string, error) {
	root, err := modroot.Dir()
	if err != nil {
		return "", err
	}
	p, err := image.TestKernelPath(root)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("netdevsim test kernel %s is not built: `make testkernel` builds it (make test does)", p)
	}
	return p, nil
}

// MACsecModules are what the kernel's macsec driver needs on veths in a
// guest: it asks for "gcm(aes)" by name when an SA is added, and with no
// modprobe in the guest the crypto modules are loaded up front.
var MACsecModules = []string{"macsec", "veth", "gcm", "ghash-generic", "aesni-intel", "ghash-clmulni-intel"}

// KernelDatapathModules add the bridge the kernel datapath joins its
// macsec link and plaintext port with.
var KernelDatapathModules = append(MACsecModules[:len(MACsecModules):len(MACsecModules)], "bridge")

// Main runs the package's tests (from TestMain). Inside a guest the test
// binary is init: when it exits the kernel panics and QEMU stops at once,
// and the verdict lines still queued on the serial console were lost (a
// passing guest test then read as a failure on the host). Main waits for
// the console to send everything before it exits. The cleanups run after
// the tests, before the exit that skips every defer.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if Inside() {
		unix.IoctlSetInt(int(os.Stdout.Fd()), unix.TCSBRK, 1) // tcdrain
		os.Stdout.Sync()
		time.Sleep(500 * time.Millisecond)
	}
	os.Exit(code)
}

// Inside reports whether this process is the test binary inside a guest.
func Inside() bool {
	_, err := os.Stat(marker)
	return err == nil
}

var loadOnce sync.Once
var loadErr error

// Run runs the calling top-level test in a guest and returns true on the
// host; inside the guest it loads the modules and returns false so the
// test body runs there.
func Run(t *testing.T, c Config) bool {
	t.Helper()
	if Inside() {
		loadOnce.Do(func() { loadErr = loadModules() })
		if loadErr != nil {
			t.Fatalf("guest: loading modules: %v", loadErr)
		}
		return false
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatal("guest.Run must be called from a top-level test")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 missing: `make test` installs it (Debian package qemu-system-x86)")
	}
	for _, f := range c.Files {
		host, _, _ := strings.Cut(f, ":")
		if _, err := os.Stat(host); err != nil {
			t.Skipf("%s missing on the host (it is copied into the guest): `make test` installs it", host)
		}
	}
	runVM(t, c)
	return true
}

func loadModules() error {
	b, err := os.ReadFile(marker)
	if err != nil {
		return err
	}
	names := strings.Fields(string(b))
	if len(names) == 0 {
		return nil
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return err
	}
	ix, err := drivers.OpenModuleIndex("/lib/modules/" + strings.TrimSpace(string(release)))
	if err != nil {
		return err
	}
	return drivers.NewLoader(ix).Load(names...)
}

// testBinary compiles the test binary of the package in the working
// directory once per host test process.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func buildTestBinary() (string, error) {
	binOnce.Do(func() {
		root, err := modroot.Dir()
		if err != nil {
			binErr = err
			return
		}
		wd, _ := os.Getwd()
		rel, _ := filepath.Rel(root, wd)
		binPath = filepath.Join(root, "build", "guest", strings.ReplaceAll(rel, "/", "_")+".test")
		cmd := exec.Command("go", "test", "-c", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go test -c: %v\n%s", err, out)
		}
	})
	return binPath, binErr
}

var (
	kernelOnce sync.Once
	kernel     *image.Kernel
	kernelErr  error
)

func pinnedKernel(logf func(string, ...any)) (*image.Kernel, error) {
	kernelOnce.Do(func() {
		root, err := modroot.Dir()
		if err != nil {
			kernelErr = err
			return
		}
		pin, err := image.LoadKernelPin(filepath.Join(root, "image", "kernel.json"))
		if err != nil {
			kernelErr = err
			return
		}
		kernel, kernelErr = image.FetchKernel(pin, filepath.Join(root, ".cache"), logf)
	})
	return kernel, kernelErr
}

// result matches the top-level test's verdict line, the last line a Go
// test binary prints, or a crash. The verdict line counts because the
// binary's final "PASS" can be lost: the kernel panics as soon as the
// binary (init) exits, possibly before the console has sent the line.
func result(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^--- (PASS|FAIL): ` + regexp.QuoteMeta(name) + ` \(|^(PASS|FAIL)\r?$|^panic: |Kernel panic`)
}

func runVM(t *testing.T, c Config) {
	bin, err := buildTestBinary()
	if err != nil {
		t.Fatal(err)
	}
	k, err := pinnedKernel(t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "marker"), []byte(strings.Join(c.Modules, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := append([]string{bin + ":bin/guest.test", filepath.Join(tmp, "marker") + ":" + marker[1:]}, c.Files...)
	initrd := filepath.Join(tmp, "initramfs.cpio")
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	err = image.BuildTestInitramfs(image.TestInitramfsSpec{
		Kernel:  k,
		Modules: c.Modules,
		Files:   files,
		Uinit:   "/bin/guest.test",
		UinitArgs: []string{"-test.v", "-test.run", "^" + regexp.QuoteMeta(t.Name()) + "$",
			"-test.timeout", (timeout - time.Minute).String()},
		Out:     initrd,
		TempDir: tmp,
	}, t.Logf)
	if err != nil {
		t.Fatalf("guest initramfs: %v", err)
	}
	mem := c.MemoryMB
	if mem == 0 {
		mem = 768
	}
	vmlinuz := k.Vmlinuz
	if c.Kernel != "" {
		vmlinuz = c.Kernel
	}
	spec := qemu.Spec{
		Boot: qemu.BootKernel, Kernel: vmlinuz, Initramfs: initrd, NoPorts: true, MemoryMB: mem,
		// panic=-1 and -no-reboot: if the test binary dies, QEMU exits.
		// no_timer_check: on a loaded host, emulated time is too slow for
		// the kernel's IO-APIC timer check, which then panics at boot.
		Cmdline: "console=ttyS0 panic=-1 loglevel=4 no_timer_check",
		Extra:   append([]string{"-no-reboot"}, c.Extra...),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log := &lineLogger{t: t}
	vm, err := qemu.Start(ctx, t.Name(), spec, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { vm.Stop(); log.close() }()
	m, err := vm.Expect(result(t.Name()), timeout)
	log.flush()
	if err != nil {
		t.Fatalf("guest test did not finish: %v", err)
	}
	if v := strings.TrimSpace(m); v != "PASS" && !strings.HasPrefix(v, "--- PASS:") {
		// Let a panic's stack reach the log before stopping.
		time.Sleep(time.Second)
		log.flush()
		t.Fatalf("guest test failed (%s): see the guest output above", strings.TrimSpace(m))
	}
}

// lineLogger copies guest console output into the test log line by line.
type lineLogger struct {
	t      *testing.T
	mu     sync.Mutex
	buf    []byte
	closed bool // the test has ended: t.Log would panic
}

func (l *lineLogger) close() {
	l.flush()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		l.t.Log("guest: " + strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log("guest: " + string(l.buf))
		l.buf = nil
	}
}
