package qemu

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/secwire/secwire/internal/modroot"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Image builds the qemu board's image once per test binary (make image
// BOARD=qemu; make skips the work when it is up to date) and returns its
// directory.
func Image() (string, error) {
	buildOnce.Do(func() {
		root, err := modroot.Dir()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("make", "-C", root, "image", "BOARD=qemu")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make image: %v\n%s", err, out)
			return
		}
		buildDir = filepath.Join(root, "build", "qemu")
	})
	return buildDir, buildErr
}
