package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// RepoRoot finds the repository root (the directory with go.mod) above the
// current directory.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = p
	}
}

// Image builds the qemu board's image once per test binary (make image
// BOARD=qemu; make skips the work when it is up to date) and returns its
// directory.
func Image() (string, error) {
	buildOnce.Do(func() {
		root, err := RepoRoot()
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
