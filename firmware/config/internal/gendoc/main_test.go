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

func TestParseDoc(t *testing.T) {
	for _, c := range []struct {
		doc, help, def, details, err string
	}{
		{doc: "Cipher suite.\n", help: "Cipher suite"},
		{doc: "Cipher suite.\nDefault: `gcm-aes-128`\n", help: "Cipher suite", def: "`gcm-aes-128`"},
		{doc: "MTU.\nDefault: `1500`\n\nThe line needs\nmore.\n\nFrames are dropped.\n",
			help: "MTU", def: "`1500`", details: "The line needs more. Frames are dropped."},
		{doc: "MTU.\n\nDetails first.\n\nDefault: `1500`\n", help: "MTU", def: "`1500`", details: "Details first."},
		{doc: "", err: "no doc comment"},
		{doc: "Help that runs\nover two lines.\n", err: "first line is the CLI's help"},
		{doc: "Help.\nDefault: a\n\nDefault: b\n", err: "two Default:"},
		{doc: "Help.\n\na | b\n", err: "'|'"},
	} {
		var f field
		err := f.parseDoc(c.doc)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one with %q", c.doc, err, c.err)
			}
			continue
		}
		if err != nil || f.help != c.help || f.def != c.def || f.details != c.details {
			t.Errorf("%q: help %q, default %q, details %q, err %v; want %q, %q, %q",
				c.doc, f.help, f.def, f.details, err, c.help, c.def, c.details)
		}
	}
}
