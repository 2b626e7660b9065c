// Package modroot finds the secwire module's directory, for the tools and
// tests that read or build files relative to it (go generate, go test and
// go run all start in a package directory somewhere below it).
package modroot

import (
	"errors"
	"os"
	"path/filepath"
)

// Dir is the nearest directory at or above the working directory that
// holds a go.mod.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory: run it inside the secwire module")
		}
		dir = up
	}
}
