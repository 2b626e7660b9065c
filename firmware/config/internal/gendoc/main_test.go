package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/internal/golden"
	"github.com/secwire/secwire/internal/modroot"
	"github.com/secwire/secwire/offload/macsec"
)

// The committed help map and docs tables are what the doc comments say:
// a changed comment without `go generate ./...` fails here.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := modroot.Dir()
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
				name, golden.Diff(string(want), string(got)))
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

// A field's kind comes from the structs of the package, not its Go type:
// typed leaves (a struct without JSON fields, another package's type)
// stay leaves, and help is keyed by JSON name.
func TestReadModelByJSONName(t *testing.T) {
	dir := t.TempDir()
	src := `package config

type Config struct {
	// Links.
	Links []Link ` + "`json:\"links\"`" + `
}

type Link struct {
	// Link name.
	// Default: (required)
	Name string ` + "`json:\"name\"`" + `
	// Hello time.
	Hello HelloTime ` + "`json:\"hello,omitzero\"`" + `
	// Peer.
	Peer netip.Addr ` + "`json:\"peer\"`" + `
	// Keys.
	Keys *Keys ` + "`json:\"keys,omitempty\"`" + `
	internal int
}

type HelloTime struct{ Duration }

type Keys struct {
	// Key number, 0..3.
	AN int ` + "`json:\"an\"`" + `
}
`
	if err := os.WriteFile(filepath.Join(dir, "config.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	fields, err := readModel(dir, ".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := helpSource(fields)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"links": "Links"`, `"links.name": "Link name"`, `"links.hello": "Hello time"`,
		`"links.peer": "Peer"`, `"links.keys": "Keys"`, `"links.keys.an": "Key number, 0..3"`} {
		if !strings.Contains(strings.Join(strings.Fields(string(got)), " "), want) {
			t.Errorf("help map lacks %s:\n%s", want, got)
		}
	}
	kinds := map[string]string{}
	for _, f := range fields[0].children {
		kinds[f.name] = f.typ
	}
	if kinds["hello"] != "" || kinds["peer"] != "" || kinds["keys"] != "Keys" {
		t.Errorf("objects: hello %q, peer %q, keys %q; want only keys (Keys)", kinds["hello"], kinds["peer"], kinds["keys"])
	}
}

// A typed field's values come from its type: the cipher suites from the
// suite table, listed in the docs unless the comment names them all.
func TestValuesComeFromTheTypes(t *testing.T) {
	root, err := modroot.Dir()
	if err != nil {
		t.Fatal(err)
	}
	fields, err := readModel(root, configDir)
	if err != nil {
		t.Fatal(err)
	}
	addChoices(fields, reflect.TypeFor[config.Config]())
	var cipher, validate *field
	for _, f := range fields {
		if f.name == "links" {
			for _, c := range f.children {
				switch c.name {
				case "cipher":
					cipher = c
				case "validate":
					validate = c
				}
			}
		}
	}
	if cipher == nil || validate == nil {
		t.Fatal("links.cipher or links.validate not in the model")
	}
	if !slices.Equal(cipher.choices, macsec.CipherSuiteNames()) {
		t.Errorf("cipher choices %v, want the suite table's %v", cipher.choices, macsec.CipherSuiteNames())
	}
	for _, name := range macsec.CipherSuiteNames() {
		if !strings.Contains(cipher.valuesNote(), "`"+name+"`") {
			t.Errorf("cipher's docs do not name %s: %q", name, cipher.valuesNote())
		}
	}
	if validate.valuesNote() != "" {
		t.Errorf("validate's comment names every mode, yet the docs add %q", validate.valuesNote())
	}
	f := &field{help: "Strict or check", choices: []string{"strict", "check", "disabled"}}
	if got, want := f.valuesNote(), "One of `strict`, `check`, `disabled`."; got != want {
		t.Errorf("a comment missing a value: note %q, want %q", got, want)
	}
}
