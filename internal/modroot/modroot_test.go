package modroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirFindsTheModule(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "module github.com/secwire/secwire\n") {
		t.Errorf("%s/go.mod is not the secwire module:\n%.80s", dir, b)
	}
}

func TestDirOutsideAModule(t *testing.T) {
	t.Chdir(t.TempDir())
	if dir, err := Dir(); err == nil {
		t.Errorf("Dir() = %q outside any module, want an error", dir)
	}
}
