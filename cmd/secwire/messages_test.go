package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secwire/secwire/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/messages.txt with the actual output")

// The command line's messages, as a transcript (testdata/messages.txt):
// each "$ secwire ..." line runs the binary in a scratch directory that
// holds the files the commands name, and the transcript holds what it
// printed and its exit status. Help exits 0 on standard output; mistakes
// are said in network terms, without Go's wording.
func TestCommandLineMessages(t *testing.T) {
	bin := secwireBinary(t)
	dir := t.TempDir()
	files := map[string]string{
		"typo.json": `{"system": {"hostnme": "enc-a"}, "links": [{"name": "l0", "plain": "eth0", "line": "eth1", "polcy": "must-secure",
  "mka": {"key_chain": [{"ckn": "0a0b", "cak_file": "cak.hex"}]}}]}`,
		"cak.hex": strings.Repeat("ab", 16),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil { // cak.hex too open on purpose
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/messages.txt")
	if err != nil && !*update {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, l := range strings.Split(string(want), "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
			got.WriteString(l + "\n")
		case strings.HasPrefix(l, "$ secwire"):
			got.WriteString(l + "\n")
			cmd := exec.Command(bin, strings.Fields(strings.TrimPrefix(l, "$ secwire"))...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			got.WriteString(strings.ReplaceAll(string(out), dir, "$DIR"))
			fmt.Fprintf(&got, "[exit %d]\n", code)
		}
	}
	if *update {
		os.WriteFile("testdata/messages.txt", []byte(got.String()), 0o644)
		return
	}
	if got.String() != string(want) {
		t.Errorf("messages differ (go test ./cmd/secwire -run CommandLineMessages -update rewrites them; review the diff):\n%s", golden.Diff(string(want), got.String()))
	}
}
