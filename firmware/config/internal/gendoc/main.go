// Command gendoc writes what the configuration fields' doc comments say
// into the two places that repeat it: the CLI's help map
// (mgmt/cli/help_gen.go) and the field tables of docs/config.md. The doc
// comment above each field of firmware/config is the one source:
//
//	// Plaintext MTU, 576..9150 (default 1500).
//	// Default: `1500`
//	//
//	// The line needs `mtu` + 24 ...
//	MTU int `json:"mtu,omitempty"`
//
// The first line is the CLI's help (its final period dropped). A paragraph
// starting "Default:", right after it or later, fills the docs table's
// default column; the other paragraphs follow the first line in its
// meaning column. Fields are found
// by their JSON names and the structs they nest, never by their Go types,
// so a field may change type without touching this. A field whose type
// has a fixed set of values (Choices, such as the cipher suite table)
// gets them listed in the docs from the type, unless its comment already
// names every one.
//
// Run it with `go generate ./...` (firmware/config carries the directive);
// its test fails while the committed files differ from what it writes.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/internal/modroot"
)

// The files gendoc reads and writes, relative to the module root.
const (
	configDir = "firmware/config"
	helpFile  = "mgmt/cli/help_gen.go"
	docsFile  = "docs/config.md"
)

func main() {
	root, err := modroot.Dir()
	if err == nil {
		err = generate(root, func(name string, data []byte) error {
			return os.WriteFile(filepath.Join(root, name), data, 0o644)
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

// generate builds both outputs from the sources under root and hands
// each to write.
func generate(root string, write func(name string, data []byte) error) error {
	fields, err := readModel(root, configDir)
	if err != nil {
		return err
	}
	addChoices(fields, reflect.TypeFor[config.Config]())
	help, err := helpSource(fields)
	if err != nil {
		return err
	}
	docs, err := os.ReadFile(filepath.Join(root, docsFile))
	if err != nil {
		return err
	}
	docs, err = fillTables(docs, fields)
	if err != nil {
		return fmt.Errorf("%s: %w", docsFile, err)
	}
	if err := write(helpFile, help); err != nil {
		return err
	}
	return write(docsFile, docs)
}

// field is one JSON field of the configuration model.
type field struct {
	path     string // dotted JSON path without indexes, as the CLI's help keys it
	name     string // JSON name
	list     bool   // a list of objects
	typ      string // the struct it holds, "" for a leaf
	help     string
	choices  []string // the values its type takes, when a fixed set
	def      string   // the docs' default column
	details  string   // the docs' meaning after the help line
	children []*field
}

// readModel parses the config package and returns the fields of Config,
// each with its nested fields.
func readModel(root, dir string) ([]*field, error) {
	fset := token.NewFileSet()
	structs := map[string]*ast.StructType{}
	files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		return nil, err
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range g.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok {
					if st, ok := ts.Type.(*ast.StructType); ok {
						structs[ts.Name.Name] = st
					}
				}
			}
		}
	}
	if structs["Config"] == nil {
		return nil, fmt.Errorf("%s: no type Config", dir)
	}
	var errs []error
	reported := map[string]bool{} // Type.Field: a struct nested twice is reported once
	var walk func(typ, path string, seen []string) []*field
	walk = func(typ, path string, seen []string) []*field {
		if slices.Contains(seen, typ) {
			errs = append(errs, fmt.Errorf("%s: type %s contains itself", path, typ))
			return nil
		}
		var out []*field
		for _, af := range structs[typ].Fields.List {
			name := jsonName(af)
			if name == "" {
				continue
			}
			f := &field{name: name, path: strings.TrimPrefix(path+"."+name, ".")}
			f.typ, f.list = nested(af.Type, structs)
			if err := f.parseDoc(af.Doc.Text()); err != nil && !reported[typ+"."+fieldName(af)] {
				reported[typ+"."+fieldName(af)] = true
				errs = append(errs, fmt.Errorf("%s: %s (%s.%s): %w", dir, f.path, typ, fieldName(af), err))
			}
			if f.typ != "" {
				f.children = walk(f.typ, f.path, append(seen, typ))
			}
			out = append(out, f)
		}
		return out
	}
	fields := walk("Config", "", nil)
	return fields, errors.Join(errs...)
}

// addChoices gives each field whose Go type (in the compiled model t)
// lists its values, such as the cipher suite, those values.
func addChoices(fields []*field, t reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	type chooser interface{ Choices() []string }
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		for _, f := range fields {
			if f.name != name {
				continue
			}
			ft := sf.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if c, ok := reflect.Zero(ft).Interface().(chooser); ok {
				f.choices = c.Choices()
			}
			addChoices(f.children, sf.Type)
		}
	}
}

// valuesNote lists the field's values for the docs, unless its text
// already names each of them.
func (f *field) valuesNote() string {
	text := f.help + " " + f.details
	named := true
	quoted := make([]string, len(f.choices))
	for i, c := range f.choices {
		quoted[i] = "`" + c + "`"
		named = named && regexp.MustCompile(`(^|[^a-z0-9-])`+regexp.QuoteMeta(c)+`($|[^a-z0-9-])`).MatchString(text)
	}
	if len(f.choices) == 0 || named {
		return ""
	}
	return "One of " + strings.Join(quoted, ", ") + "."
}

func jsonName(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	tag, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return ""
	}
	name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func hasJSONName(f *ast.Field) bool { return jsonName(f) != "" }

func fieldName(f *ast.Field) string {
	if len(f.Names) > 0 {
		return f.Names[0].Name
	}
	return "(embedded)"
}

// nested names the config object a field holds (through a pointer or as
// a list of them): a struct of the package with JSON fields. Any other
// type is a leaf, including a value type that is a struct without JSON
// fields (a duration, an address) and types of other packages.
func nested(e ast.Expr, structs map[string]*ast.StructType) (typ string, list bool) {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
			continue
		case *ast.ArrayType:
			if list || x.Len != nil {
				return "", false
			}
			e, list = x.Elt, true
			continue
		case *ast.Ident:
			if st := structs[x.Name]; st != nil && slices.ContainsFunc(st.Fields.List, hasJSONName) {
				return x.Name, list
			}
		}
		return "", false
	}
}

// parseDoc splits a field's doc comment: the first line, a "Default:"
// paragraph (right after it, or later), the rest.
func (f *field) parseDoc(doc string) error {
	doc = strings.TrimSpace(doc)
	if doc == "" {
		return errors.New("no doc comment: give it one above the field; its first line is the CLI's help")
	}
	first, rest, _ := strings.Cut(doc, "\n")
	f.help = strings.TrimSuffix(strings.TrimSpace(first), ".")
	if rest != "" && !strings.HasPrefix(rest, "\n") && !strings.HasPrefix(rest, "Default:") {
		return errors.New("the doc comment's first line is the CLI's help: end it there, then a \"Default:\" line or a blank comment line")
	}
	var details []string
	for _, p := range strings.Split(strings.TrimPrefix(rest, "\n"), "\n\n") {
		p = strings.Join(strings.Fields(p), " ")
		if d, ok := strings.CutPrefix(p, "Default:"); ok {
			if f.def != "" {
				return errors.New("two Default: paragraphs")
			}
			f.def = strings.TrimSpace(d)
		} else if p != "" {
			details = append(details, p)
		}
	}
	f.details = strings.Join(details, " ")
	if strings.Contains(f.help+f.def+f.details, "|") {
		return errors.New("a '|' would break the docs table: write \"or\"")
	}
	return nil
}

// helpSource is mgmt/cli/help_gen.go.
func helpSource(fields []*field) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by firmware/config/internal/gendoc from the doc comments of firmware/config; DO NOT EDIT.\n\n")
	b.WriteString("package cli\n\n")
	b.WriteString("// help is one line per configuration path: the first line of the\n")
	b.WriteString("// field's doc comment in firmware/config. Edit it there and run\n")
	b.WriteString("// `go generate ./...`.\n")
	b.WriteString("var help = map[string]string{\n")
	var add func([]*field)
	add = func(fs []*field) {
		for _, f := range fs {
			fmt.Fprintf(&b, "\t%q: %q,\n", f.path, f.help)
			add(f.children)
		}
	}
	add(fields)
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

// A generated table sits between these markers; the begin marker names
// the JSON path whose fields it lists.
var tableRE = regexp.MustCompile(`(?s)(<!-- begin fields ([a-z_.]+)[^>]*-->\n)(.*?)(<!-- end fields -->)`)

// fillTables rewrites every generated table of the docs. A table lists
// the fields under its path, nested ones as dotted names, except those a
// table of their own lists (by path, or by the struct they hold).
func fillTables(docs []byte, fields []*field) ([]byte, error) {
	byPath := map[string]*field{}
	var index func([]*field)
	index = func(fs []*field) {
		for _, f := range fs {
			byPath[f.path] = f
			index(f.children)
		}
	}
	index(fields)
	own := map[string]bool{} // paths and struct types with their own table
	for _, m := range tableRE.FindAllSubmatch(docs, -1) {
		f := byPath[string(m[2])]
		if f == nil || f.typ == "" {
			return nil, fmt.Errorf("generated table for %q: no such object in the config model", m[2])
		}
		own[f.path], own[f.typ] = true, true
	}
	out := tableRE.ReplaceAllFunc(docs, func(m []byte) []byte {
		sm := tableRE.FindSubmatch(m)
		var b bytes.Buffer
		b.Write(sm[1])
		b.WriteString("| field | default | meaning |\n|---|---|---|\n")
		var rows func(prefix string, fs []*field)
		rows = func(prefix string, fs []*field) {
			for _, f := range fs {
				name := prefix + f.name
				if f.list {
					name += "[]"
				}
				meaning := f.help
				for _, more := range []string{f.valuesNote(), f.details} {
					if more != "" {
						meaning = strings.TrimSuffix(meaning, ".") + ". " + more
					}
				}
				descend := f.typ != "" && !own[f.path] && !own[f.typ]
				if f.typ != "" && !descend {
					meaning = strings.TrimSuffix(meaning, ".") + ". Its fields are in their own table below."
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, f.def, meaning)
				if descend {
					rows(name+".", f.children)
				}
			}
		}
		rows("", byPath[string(sm[2])].children)
		b.Write(sm[4])
		return b.Bytes()
	})
	return out, nil
}
