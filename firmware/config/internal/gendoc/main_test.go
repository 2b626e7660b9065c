package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed help map and docs tables are what the doc comments say:
// a changed comment without `go generate ./...` fails here.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	wrote := 0
	err = generate(root, func(name string, want []byte) error {
		wrote++
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the doc comments of firmware/config say; run `go generate ./...` and commit the result:\n%s",
				name, firstDiff(string(got), string(want)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wrote != 2 {
		t.Fatalf("generate wrote %d files, want 2", wrote)
	}
}

// firstDiff shows the first line that differs.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  committed: %s\n  generated: %s", i+1, gl, wl)
		}
	}
	return "(only line endings differ)"
}
