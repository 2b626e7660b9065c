// Package drivers finds the appliance's NICs: it loads kernel modules in
// dependency order (from modules.dep), coldplugs devices by their modalias,
// and reports the inventory of ports with their MACsec offload capability.
// It never programs MACsec.
package drivers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModuleIndex is what depmod wrote for one kernel: every module's file and
// dependencies, and the modalias patterns that select modules.
type ModuleIndex struct {
	Dir     string              // /lib/modules/<release>
	files   map[string]string   // module name -> path relative to Dir
	deps    map[string][]string // module name -> dependency names, in modules.dep order
	aliases []alias
}

type alias struct{ pattern, module string }

// ModuleName turns a path or file name into a module name the way kmod does:
// "kernel/drivers/net/virtio_net.ko.xz" -> "virtio_net", dashes as underscores.
func ModuleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// OpenModuleIndex reads modules.dep and modules.alias from dir.
func OpenModuleIndex(dir string) (*ModuleIndex, error) {
	ix := &ModuleIndex{Dir: dir, files: map[string]string{}, deps: map[string][]string{}}
	dep, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("module index: %w (was depmod run for this kernel?)", err)
	}
	defer dep.Close()
	if err := ix.readDep(dep); err != nil {
		return nil, err
	}
	if al, err := os.Open(filepath.Join(dir, "modules.alias")); err == nil {
		defer al.Close()
		ix.readAlias(al)
	}
	return ix, nil
}

func (ix *ModuleIndex) readDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := ModuleName(file)
		ix.files[name] = file
		for _, d := range strings.Fields(rest) {
			ix.deps[name] = append(ix.deps[name], ModuleName(d))
		}
	}
	return sc.Err()
}

func (ix *ModuleIndex) readAlias(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" {
			ix.aliases = append(ix.aliases, alias{f[1], strings.ReplaceAll(f[2], "-", "_")})
		}
	}
}

// Has reports whether the index knows the module.
func (ix *ModuleIndex) Has(name string) bool { _, ok := ix.files[ModuleName(name)]; return ok }

// File is the module's path relative to Dir.
func (ix *ModuleIndex) File(name string) string { return ix.files[ModuleName(name)] }

// Closure returns names and all their dependencies, each once, dependencies
// before the modules that need them: the order to load them in.
func (ix *ModuleIndex) Closure(names ...string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		n = ModuleName(n)
		if seen[n] {
			return nil
		}
		if _, ok := ix.files[n]; !ok {
			if len(chain) == 0 {
				return fmt.Errorf("module %s is not in %s/modules.dep", n, ix.Dir)
			}
			return fmt.Errorf("module %s (needed by %s) is not in modules.dep", n, strings.Join(chain, " <- "))
		}
		seen[n] = true
		// modules.dep lists the full closure; visiting it recursively
		// still puts every dependency before its user.
		for _, d := range ix.deps[n] {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Match returns the modules whose alias patterns match a device's modalias.
func (ix *ModuleIndex) Match(modalias string) []string {
	var out []string
	for _, a := range ix.aliases {
		if ok, _ := path.Match(a.pattern, modalias); ok && ix.Has(a.module) {
			out = append(out, a.module)
		}
	}
	return out
}

// Loader loads modules into the running kernel.
type Loader struct {
	Index  *ModuleIndex
	loaded map[string]bool
	// Logf reports each module loaded; nil is silent.
	Logf func(format string, args ...any)
}

// NewLoader returns a loader that knows which modules are already in.
func NewLoader(ix *ModuleIndex) *Loader {
	l := &Loader{Index: ix, loaded: map[string]bool{}}
	if b, err := os.ReadFile("/proc/modules"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				l.loaded[f[0]] = true
			}
		}
	}
	return l
}

// Load loads the named modules and their dependencies, dependencies first.
// A module that is already loaded is skipped.
func (l *Loader) Load(names ...string) error {
	order, err := l.Index.Closure(names...)
	if err != nil {
		return err
	}
	for _, n := range order {
		if l.loaded[n] {
			continue
		}
		if err := l.insert(n); err != nil {
			return err
		}
		l.loaded[n] = true
		if l.Logf != nil {
			l.Logf("module %s loaded", n)
		}
	}
	return nil
}

func (l *Loader) insert(name string) error {
	p := filepath.Join(l.Index.Dir, l.Index.File(name))
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: finit_module: %w", name, err)
	}
	return nil
}

// Coldplug loads the modules for every device the kernel has already found:
// it reads each modalias under sysfs (PCI, virtio, ACPI, platform ...) and
// loads what matches. It repeats until no new module appears, since a loaded
// bus driver can reveal new devices (virtio_pci then virtio_net). Errors of
// single modules are returned together; the rest still load.
func (l *Loader) Coldplug(sysfs string) error {
	var errs []error
	for round := 0; round < 4; round++ {
		before := len(l.loaded)
		for _, ma := range modaliases(sysfs) {
			for _, m := range l.Index.Match(ma) {
				if !l.loaded[m] {
					if err := l.Load(m); err != nil {
						errs = append(errs, err)
						l.loaded[m] = true // do not retry a failing module
					}
				}
			}
		}
		if len(l.loaded) == before {
			break
		}
	}
	return errors.Join(errs...)
}

func modaliases(sysfs string) []string {
	var out []string
	seen := map[string]bool{}
	for _, bus := range []string{"pci", "virtio", "acpi", "platform", "usb"} {
		devs, _ := filepath.Glob(filepath.Join(sysfs, "bus", bus, "devices", "*", "modalias"))
		for _, p := range devs {
			b, err := os.ReadFile(p)
			ma := strings.TrimSpace(string(b))
			if err == nil && ma != "" && !seen[ma] {
				seen[ma] = true
				out = append(out, ma)
			}
		}
	}
	return out
}
