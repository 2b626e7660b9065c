// Package image builds the bootable artefacts of a board: the pinned Debian
// kernel with the board's modules, the u-root initramfs with the secwire
// firmware as uinit, and a GPT disk image that boots under UEFI. It is a
// build-time package; nothing in the appliance imports it.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/secwire/secwire/drivers"
)

// KernelPin is image/kernel.json: the exact Debian kernel package.
type KernelPin struct {
	Package string `json:"package"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Release string `json:"release"` // uname -r, the /lib/modules directory
}

// LoadKernelPin reads the pin file.
func LoadKernelPin(path string) (KernelPin, error) {
	var k KernelPin
	b, err := os.ReadFile(path)
	if err != nil {
		return k, err
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("%s: %w", path, err)
	}
	if k.Package == "" || k.Version == "" || len(k.SHA256) != 64 || k.Release == "" {
		return k, fmt.Errorf("%s: package, version, sha256 and release are all required", path)
	}
	return k, nil
}

// DebFile is the package's file name as apt-get download writes it.
func (k KernelPin) DebFile() string {
	v := strings.ReplaceAll(k.Version, ":", "%3a")
	return fmt.Sprintf("%s_%s_amd64.deb", k.Package, v)
}

// Kernel is an unpacked kernel package.
type Kernel struct {
	Pin     KernelPin
	Root    string // unpacked package root
	Vmlinuz string
	Modules string // Root/lib/modules/<release>, with depmod's index
}

// FetchKernel downloads the pinned package into cache with apt-get
// download (once), checks its SHA-256, unpacks it and runs depmod on it.
func FetchKernel(pin KernelPin, cache string, logf func(string, ...any)) (*Kernel, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	deb := filepath.Join(cache, pin.DebFile())
	if _, err := os.Stat(deb); err != nil {
		if _, err := exec.LookPath("apt-get"); err != nil {
			return nil, fmt.Errorf("apt-get not found: the kernel comes from Debian's %s=%s; on a non-Debian host download that .deb by hand into %s", pin.Package, pin.Version, cache)
		}
		logf("downloading %s=%s with apt-get (about 100 MB)", pin.Package, pin.Version)
		cmd := exec.Command("apt-get", "download", pin.Package+"="+pin.Version)
		cmd.Dir = cache
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s=%s: %v\n%s\n(is 'apt-get update' needed, or has Debian dropped this version? then update image/kernel.json)", pin.Package, pin.Version, err, out)
		}
	}
	sum, err := fileSHA256(deb)
	if err != nil {
		return nil, err
	}
	if sum != pin.SHA256 {
		os.Remove(deb)
		return nil, fmt.Errorf("%s: SHA-256 %s does not match the pin %s; removed it", deb, sum, pin.SHA256)
	}
	root := filepath.Join(cache, "kernel-"+pin.Release)
	k := &Kernel{
		Pin:     pin,
		Root:    root,
		Vmlinuz: filepath.Join(root, "boot", "vmlinuz-"+pin.Release),
		Modules: filepath.Join(root, "lib", "modules", pin.Release),
	}
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep")); err == nil {
		return k, nil
	}
	logf("unpacking %s", filepath.Base(deb))
	os.RemoveAll(root)
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	logf("running depmod for %s", pin.Release)
	if out, err := exec.Command("depmod", "-b", root, pin.Release).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("depmod (Debian package kmod): %v\n%s", err, out)
	}
	return k, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Cmdline is the kernel command line for a board: its serial console, a
// reboot 10 s after a panic (if the firmware ever dies), quiet kernel logs.
// mkimage writes it into the boot entry and beside the image as `cmdline`,
// which direct kernel boot in QEMU uses.
func Cmdline(b *drivers.Board) string {
	return b.ConsoleArg() + " panic=10 loglevel=4"
}

// TestKernelPath is where image/testkernel/build.sh leaves the netdevsim
// test kernel: keyed by the pinned source version and the files that
// decide the build, exactly as image/testkernel/path.sh computes it.
func TestKernelPath(root string) (string, error) {
	pin, err := LoadKernelPin(filepath.Join(root, "image", "kernel.json"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"image/kernel.json", "image/testkernel/netdevsim.config", "image/testkernel/source.sha256"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:12]
	return filepath.Join(root, ".cache", "testkernel", pin.Version+"-"+key, "bzImage"), nil
}
