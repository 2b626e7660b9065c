// Command mkimage builds a board's bootable artefacts into a directory:
// vmlinuz, initramfs.cpio and a flashable disk.img (see image/).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/image"
)

func main() {
	board := flag.String("board", "qemu", "board name: board/NAME.json")
	out := flag.String("out", "", "output directory (default build/BOARD)")
	cache := flag.String("cache", ".cache", "download and unpack cache")
	secwire := flag.String("secwire", "build/bin/linux-amd64/secwire", "static linux/amd64 secwire binary")
	config := flag.String("config", "", "config file to preload on the config partition")
	update := flag.String("update", "", "instead of a new disk.img, rewrite only the boot partition of this disk image (a firmware update: the config partition is kept)")
	flag.Parse()
	if *out == "" {
		*out = filepath.Join("build", *board)
	}
	start := time.Now()
	logf := func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "mkimage [%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(f, a...))
	}
	if err := run(*board, *out, *cache, *secwire, *config, *update, logf); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	logf("done: %s/{vmlinuz,initramfs.cpio,cmdline,disk.img}", *out)
}

func run(boardName, out, cache, secwire, config, update string, logf func(string, ...any)) error {
	boardFile := filepath.Join("board", boardName+".json")
	b, err := drivers.LoadBoard(boardFile)
	if err != nil {
		return err
	}
	pin, err := image.LoadKernelPin("image/kernel.json")
	if err != nil {
		return err
	}
	k, err := image.FetchKernel(pin, cache, logf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "secwire-mkimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cpio := filepath.Join(out, "initramfs.cpio")
	if err := image.BuildInitramfs(image.InitramfsSpec{
		Kernel: k, Board: b, BoardFile: boardFile, Secwire: secwire, Out: cpio, TempDir: tmp,
	}, logf); err != nil {
		return err
	}
	vmlinuz := filepath.Join(out, "vmlinuz")
	kb, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return err
	}
	if err := os.WriteFile(vmlinuz, kb, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "cmdline"), []byte(image.Cmdline(b)+"\n"), 0o644); err != nil {
		return err
	}
	if update != "" {
		logf("rewriting the boot partition of %s; its config partition is kept", update)
		return image.UpdateBoot(image.DiskSpec{Out: update, Vmlinuz: vmlinuz, Initramfs: cpio, Cmdline: image.Cmdline(b)})
	}
	var cfg []byte
	if config != "" {
		if cfg, err = os.ReadFile(config); err != nil {
			return err
		}
	}
	logf("writing disk.img (GPT: EFI system partition with systemd-boot, config partition)")
	return image.BuildDisk(image.DiskSpec{
		Out: filepath.Join(out, "disk.img"), Vmlinuz: vmlinuz, Initramfs: cpio,
		Cmdline: image.Cmdline(b), Config: cfg,
	})
}
