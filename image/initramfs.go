package image

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"

	"github.com/secwire/secwire/drivers"
)

// RescueCommands are the u-root tools in the image. There is deliberately
// no /bin/sh or /bin/defaultsh: if the firmware ever exits, u-root's init
// finds no shell and the kernel reboots (panic=), rather than leaving an
// unauthenticated root shell on the console.
var RescueCommands = []string{
	"github.com/u-root/u-root/cmds/core/init",
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/lsmod",
}

// InitramfsSpec is what goes into the initramfs.
type InitramfsSpec struct {
	Kernel    *Kernel
	Board     *drivers.Board
	BoardFile string
	Secwire   string // the static linux/amd64 secwire binary
	Out       string // initramfs.cpio to write
	TempDir   string
	Extra     []string // more mkuimage file specs ("host:guest")
}

// BuildInitramfs stages the board's modules (with dependencies, and a
// modules.dep/modules.alias that list only them) and builds the initramfs
// with mkuimage.
func BuildInitramfs(s InitramfsSpec, logf func(string, ...any)) error {
	files, err := ModuleFiles(s.Kernel, s.Board.Modules, s.TempDir)
	if err != nil {
		return fmt.Errorf("board %s: %w", s.Board.Name, err)
	}
	logf("board %s: %d module files with dependencies", s.Board.Name, len(files)-2)
	files = append(files,
		s.Secwire+":bin/secwire",
		s.BoardFile+":etc/secwire/board.json",
	)
	files = append(files, s.Extra...)
	logger := llog.New(slog.LevelWarn, func(format string, a ...any) { logf(format, a...) })
	logf("building initramfs with mkuimage (u-root init, secwire uinit, %d rescue tools)", len(RescueCommands)-1)
	return uimage.Create(logger,
		uimage.WithEnv(golang.DisableCGO(), golang.WithGOARCH("amd64"), golang.WithGOOS("linux")),
		uimage.WithBusyboxCommands(RescueCommands...),
		uimage.WithInit("init"),
		uimage.WithUinit("/bin/secwire", "boot"),
		uimage.WithFiles(files...),
		uimage.WithSkipLDD(),
		uimage.WithTempDir(s.TempDir),
		uimage.WithCPIOOutput(s.Out),
	)
}

// ModuleFiles returns mkuimage file specs ("host:guest") for the named
// kernel modules and everything they depend on, plus a modules.dep and
// modules.alias that list only those, so drivers.Loader works in the guest.
func ModuleFiles(k *Kernel, names []string, tempDir string) ([]string, error) {
	ix, err := drivers.OpenModuleIndex(k.Modules)
	if err != nil {
		return nil, err
	}
	mods, err := ix.Closure(names...)
	if err != nil {
		return nil, err
	}
	modDir := "lib/modules/" + k.Pin.Release
	var files []string
	keep := map[string]bool{}
	for _, m := range mods {
		rel := ix.File(m)
		keep[rel] = true
		files = append(files, filepath.Join(k.Modules, rel)+":"+modDir+"/"+rel)
	}
	stage := filepath.Join(tempDir, "modindex")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"modules.dep", "modules.alias"} {
		if err := filterIndex(filepath.Join(k.Modules, f), filepath.Join(stage, f), keep, f == "modules.alias", ix); err != nil {
			return nil, err
		}
		files = append(files, filepath.Join(stage, f)+":"+modDir+"/"+f)
	}
	return files, nil
}

// TestInitramfsSpec is an initramfs for a test or peer VM: u-root's init,
// a few u-root tools, Debian binaries with their shared libraries, kernel
// modules, and a uinit to run.
type TestInitramfsSpec struct {
	Kernel    *Kernel
	Modules   []string // kernel modules to stage (with dependencies)
	Files     []string // mkuimage file specs, "host" or "host:guest"; ELF files bring their libraries
	Uinit     string   // guest path of the program u-root's init runs
	UinitArgs []string
	Out       string
	TempDir   string
}

// BuildTestInitramfs builds an initramfs for a test or peer VM.
func BuildTestInitramfs(s TestInitramfsSpec, logf func(string, ...any)) error {
	files, err := ModuleFiles(s.Kernel, s.Modules, s.TempDir)
	if err != nil {
		return err
	}
	files = append(files, s.Files...)
	logger := llog.New(slog.LevelError, func(format string, a ...any) { logf(format, a...) })
	return uimage.Create(logger,
		uimage.WithEnv(golang.DisableCGO(), golang.WithGOARCH("amd64"), golang.WithGOOS("linux")),
		uimage.WithBusyboxCommands(RescueCommands...),
		uimage.WithInit("init"),
		uimage.WithUinit(s.Uinit, s.UinitArgs...),
		uimage.WithFiles(files...),
		uimage.WithTempDir(s.TempDir),
		uimage.WithCPIOOutput(s.Out),
	)
}

// filterIndex copies the lines of a depmod index that concern kept modules.
func filterIndex(src, dst string, keep map[string]bool, isAlias bool, ix *drivers.ModuleIndex) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var b strings.Builder
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		var ok bool
		if isAlias {
			f := strings.Fields(l)
			ok = len(f) == 3 && keep[ix.File(f[2])]
		} else {
			file, _, _ := strings.Cut(l, ":")
			ok = keep[file]
		}
		if ok {
			b.WriteString(l + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return os.WriteFile(dst, []byte(b.String()), 0o644)
}
