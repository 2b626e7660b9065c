// Command mkimage builds a board's bootable artefacts into a directory:
// vmlinuz, initramfs.cpio, the signed release bundle secwire.bundle and a
// flashable disk.img with the bundle in boot slot A (see image/).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/bundle"
	"github.com/secwire/secwire/image"
)

type options struct {
	board, out, cache, secwire, config, update string
	version, signingKey, trusted, bundleOut    string
	initramfsFrom, cmdlineExtra                string
	releaseOnly                                bool
}

func main() {
	var o options
	flag.StringVar(&o.board, "board", "qemu", "board name: board/NAME.json")
	flag.StringVar(&o.out, "out", "", "output directory (default build/BOARD)")
	flag.StringVar(&o.cache, "cache", ".cache", "download and unpack cache")
	flag.StringVar(&o.secwire, "secwire", "build/bin/linux-amd64/secwire", "static linux/amd64 secwire binary")
	flag.StringVar(&o.config, "config", "", "config file to preload on the config partition")
	flag.StringVar(&o.update, "update", "", "instead of a new disk.img, rewrite only the boot partition of this disk image (a re-flash: the config partition is kept)")
	flag.StringVar(&o.version, "version", "dev", "release version (the firmware binary must report the same: -ldflags -X main.version=)")
	flag.StringVar(&o.signingKey, "signing-key", "", "ed25519 signing key (PEM PKCS#8, openssl genpkey -algorithm ed25519); default: a development key made under build/keys")
	flag.StringVar(&o.trusted, "trusted-keys", "", "more public keys (PEM files, comma-separated) the image trusts, such as the next signing key")
	flag.StringVar(&o.bundleOut, "bundle", "", "where to write the release bundle (default OUT/"+image.BundleName+")")
	flag.StringVar(&o.initramfsFrom, "initramfs-from", "", "reuse this initramfs.cpio (a u-root base built earlier) with -secwire laid over it, instead of building one")
	flag.BoolVar(&o.releaseOnly, "release", false, "write only the release bundle, no disk image")
	flag.StringVar(&o.cmdlineExtra, "cmdline-extra", "", "more kernel command line for the bundle (such as secwire.health_timeout=60)")
	flag.Parse()
	if o.out == "" {
		o.out = filepath.Join("build", o.board)
	}
	start := time.Now()
	logf := func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "mkimage [%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(f, a...))
	}
	if err := run(o, logf); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(o options, logf func(string, ...any)) error {
	boardFile := filepath.Join("board", o.board+".json")
	b, err := drivers.LoadBoard(boardFile)
	if err != nil {
		return err
	}
	var extra []string
	if o.trusted != "" {
		extra = strings.Split(o.trusted, ",")
	}
	signer, err := image.LoadSigner(o.signingKey, extra, logf)
	if err != nil {
		return err
	}
	pin, err := image.LoadKernelPin("image/kernel.json")
	if err != nil {
		return err
	}
	k, err := image.FetchKernel(pin, o.cache, logf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "secwire-mkimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	trust := bundle.MarshalTrust(signer.Trust)
	spec := image.ReleaseSpec{Board: b.Name, Version: o.version, Cmdline: strings.TrimSpace(image.Cmdline(b) + " " + o.cmdlineExtra), Vmlinuz: k.Vmlinuz, Signer: signer}
	if o.initramfsFrom != "" {
		bin, err := os.ReadFile(o.secwire)
		if err != nil {
			return err
		}
		logf("initramfs: %s with %s and the trusted keys laid over it", o.initramfsFrom, o.secwire)
		spec.Initramfs = o.initramfsFrom
		spec.Overlay = map[string][]byte{"bin/secwire": bin, image.TrustFile: trust}
	} else {
		trustFile := filepath.Join(tmp, "release-keys.json")
		if err := os.WriteFile(trustFile, trust, 0o644); err != nil {
			return err
		}
		cpio := filepath.Join(o.out, "initramfs.cpio")
		if err := image.BuildInitramfs(image.InitramfsSpec{
			Kernel: k, Board: b, BoardFile: boardFile, Secwire: o.secwire, Out: cpio, TempDir: tmp,
			Extra: []string{trustFile + ":" + image.TrustFile},
		}, logf); err != nil {
			return err
		}
		spec.Initramfs = cpio
		kb, err := os.ReadFile(k.Vmlinuz)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "vmlinuz"), kb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, "cmdline"), []byte(image.Cmdline(b)+"\n"), 0o644); err != nil {
			return err
		}
	}
	spec.Out = o.bundleOut
	if spec.Out == "" {
		spec.Out = filepath.Join(o.out, image.BundleName)
	}
	raw, err := image.WriteRelease(spec)
	if err != nil {
		return err
	}
	logf("release bundle %s: secwire %s for board %s, %.1f MB, signed by key %s (%s)", spec.Out, o.version, b.Name, float64(len(raw))/1e6, signer.Trust[0].ID, signer.Name)
	if o.releaseOnly {
		return nil
	}
	disk := image.DiskSpec{Out: filepath.Join(o.out, "disk.img"), Bundle: spec.Out, Logf: logf}
	if o.update != "" {
		logf("rewriting the boot partition of %s; its config partition is kept", o.update)
		disk.Out = o.update
		return image.UpdateBoot(disk)
	}
	if o.config != "" {
		if disk.Config, err = os.ReadFile(o.config); err != nil {
			return err
		}
	}
	logf("writing %s (GPT: EFI system partition with systemd-boot and boot slots A and B, config partition):", disk.Out)
	if err := image.BuildDisk(disk); err != nil {
		return err
	}
	logf("done: %s/{vmlinuz,initramfs.cpio,cmdline,%s,disk.img}", o.out, image.BundleName)
	return nil
}
