package cli

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
)

// The configuration hierarchy is the config model itself: every JSON
// field of config.Config is a keyword (underscores become dashes), slices
// of structs are lists keyed by their first field, and everything else is
// a leaf. So the CLI can set exactly what the config file holds, and a new
// field appears in the CLI with its doc comment's first line as help.

type kind int

const (
	container kind = iota
	list           // []struct keyed by its first field
	leaf
	leafList // []string
)

type node struct {
	name     string // CLI keyword
	json     string // JSON field name
	path     string // dotted JSON path without indexes, the key of help
	kind     kind
	field    int // index in the parent struct
	children []*node
	key      string       // list: the key field's JSON name
	typ      reflect.Type // leaf: the value's type, pointers removed
}

// help (help_gen.go) is one line per configuration path, generated from
// the doc comments of firmware/config; TestEveryLeafHasHelp (cli_test.go)
// checks every node has one. A leaf's values, when it has a fixed set,
// come from values.

// hidden are config-file-only fields: file references and static keys.
var hidden = map[string]bool{
	"links.static_keys":               true,
	"links.mka.key_chain.cak_file":    true,
	"links.mka.fallback_key.cak_file": true,
}

// secret leaves are never shown or echoed; they are entered at a prompt.
var secret = map[string]bool{
	"links.mka.key_chain.cak":    true,
	"links.mka.fallback_key.cak": true,
	"system.users.password":      true,
}

// choices is a typed value with a fixed set of spellings (a cipher suite,
// a policy, a role...): the CLI offers them.
type choices interface{ Choices() []string }

// values are the fixed values of a leaf: its type's choices, or the few
// numbers and names that are fixed by a rule rather than a type.
func values(n *node) []string {
	if n.typ != nil {
		if c, ok := reflect.Zero(n.typ).Interface().(choices); ok {
			return c.Choices()
		}
	}
	switch n.path {
	case "links.confidentiality_offset":
		return []string{"0", "30", "50"}
	case "links.vlans_in_clear":
		return []string{"0", "1", "2"}
	case "links.protocols_in_clear":
		return config.BuiltinProtocolsInClear
	}
	return nil
}

var root = buildNode(reflect.TypeOf(config.Config{}), "", "")

func buildNode(t reflect.Type, name, path string) *node {
	n := &node{name: name, path: path}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case config.IsText(t):
		n.kind, n.typ = leaf, t
		return n
	case t.Kind() == reflect.Struct:
		n.kind = container
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		n.kind = list
		t = t.Elem()
		n.key = jsonName(t.Field(0))
	case t.Kind() == reflect.Slice:
		n.kind = leafList
		return n
	default:
		n.kind, n.typ = leaf, t
		return n
	}
	for i := range t.NumField() {
		f := t.Field(i)
		j := jsonName(f)
		if j == "" || j == n.key {
			continue
		}
		p := strings.TrimPrefix(path+"."+j, ".")
		if hidden[p] {
			continue
		}
		c := buildNode(f.Type, strings.ReplaceAll(j, "_", "-"), p)
		c.json, c.field = j, i
		n.children = append(n.children, c)
	}
	return n
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (n *node) help() string { return help[n.path] }

func (n *node) isSecret() bool { return secret[n.path] }

// isFlag: a bool leaf that `set` without a value turns on.
func (n *node) isFlag(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return n.kind == leaf && t.Kind() == reflect.Bool
}

// parseLeaf converts a CLI word to the leaf's Go type.
func parseLeaf(t reflect.Type, word string) (reflect.Value, error) {
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	v := reflect.New(base).Elem()
	switch {
	case config.IsText(base):
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(word)); err != nil {
			return v, err
		}
	case base.Kind() == reflect.String:
		v.SetString(word)
	case base.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(word)
		if err != nil {
			return v, fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case base.Kind() == reflect.Int || base.Kind() == reflect.Int64:
		i, err := strconv.ParseInt(word, 10, 64)
		if err != nil {
			return v, fmt.Errorf("want a whole number")
		}
		v.SetInt(i)
	case base.Kind() == reflect.Uint32 || base.Kind() == reflect.Uint64:
		i, err := strconv.ParseUint(word, 10, base.Bits())
		if err != nil {
			return v, fmt.Errorf("want a whole number from 0 to %d", uint64(1)<<base.Bits()-1)
		}
		v.SetUint(i)
	default:
		return v, fmt.Errorf("cannot set a %s from the CLI", base)
	}
	if t.Kind() == reflect.Pointer {
		p := reflect.New(base)
		p.Elem().Set(v)
		return p, nil
	}
	return v, nil
}

// leafString shows a leaf's value, "" when unset. A set pointer is shown
// even when it points at a zero value (send-sci false, validate strict).
// Typed values are shown as the config file writes them.
func leafString(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	} else if v.IsZero() {
		return ""
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return fmt.Sprint(v.Interface())
		}
		return string(b)
	}
	return fmt.Sprint(v.Interface())
}

// fingerprint is how a secret is shown.
func fingerprint(n *node, v string) string {
	if n.path == "links.mka.key_chain.cak" || n.path == "links.mka.fallback_key.cak" {
		if k, err := macsec.ParseKeyHex(v, 16, 32); err == nil {
			defer k.Wipe()
			return k.Fingerprint()
		}
	}
	return macsec.NewKey([]byte(v)).Fingerprint()
}

// line is one configuration statement: its words and value.
type line struct {
	words  []string // keywords and list keys
	value  string   // "" for a flag that is on
	secret bool
}

func (l line) String() string {
	s := strings.Join(quoteAll(l.words), " ")
	if l.value != "" {
		s += " " + quote(l.value)
	}
	return s
}

// flatten lists every statement of c in schema order.
func flatten(c *config.Config) []line {
	var out []line
	walk(root, reflect.ValueOf(c).Elem(), nil, &out)
	return out
}

func walk(n *node, v reflect.Value, words []string, out *[]line) {
	for v.Kind() == reflect.Pointer && n.kind != leaf {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch n.kind {
	case container:
		for _, c := range n.children {
			walk(c, v.Field(c.field), append(slices.Clip(words), c.name), out)
		}
	case list:
		for i := range v.Len() {
			e := v.Index(i)
			key := leafString(e.Field(0))
			before := len(*out)
			for _, c := range n.children {
				walk(c, e.Field(c.field), append(slices.Clip(words), key, c.name), out)
			}
			if len(*out) == before { // an entry with nothing else set
				*out = append(*out, line{words: append(slices.Clip(words), key)})
			}
		}
	case leaf:
		s := leafString(v)
		if s == "" {
			return
		}
		l := line{words: words, value: s}
		if n.isSecret() {
			l.value, l.secret = fingerprint(n, s), true
		}
		if v.Kind() == reflect.Bool && v.Bool() {
			l.value = "" // a flag: present means on
		}
		*out = append(*out, l)
	case leafList:
		for i := range v.Len() {
			*out = append(*out, line{words: words, value: v.Index(i).String()})
		}
	}
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"';{}") {
		return strconv.Quote(s)
	}
	return s
}

func quoteAll(w []string) []string {
	out := make([]string, len(w))
	for i, s := range w {
		out[i] = quote(s)
	}
	return out
}
