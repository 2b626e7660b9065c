package cli

import (
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/secwire/secwire/firmware/config"
)

// token is one word of a command line and where it starts.
type token struct {
	s   string
	pos int
}

// tokenize splits a line into words; double quotes group a word with
// spaces. open reports an unterminated quote.
func tokenize(s string) (toks []token, trailingSpace bool, err error) {
	i := 0
	for i < len(s) {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		start := i
		if s[i] == '"' {
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return toks, false, &posError{start, "unterminated quote"}
			}
			w, uerr := strconv.Unquote(s[i : j+1])
			if uerr != nil {
				return toks, false, &posError{start, "bad quoted word"}
			}
			toks = append(toks, token{w, start})
			i = j + 1
			continue
		}
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		toks = append(toks, token{s[start:i], start})
	}
	return toks, len(s) > 0 && unicode.IsSpace(rune(s[len(s)-1])), nil
}

// posError is an error about the word at pos of the line.
type posError struct {
	pos int
	msg string
}

func (e *posError) Error() string { return e.msg }

func errAt(t token, f string, a ...any) error { return &posError{t.pos, fmt.Sprintf(f, a...)} }

// match finds the one name word is a unique prefix of (or equals).
func match(t token, names []string, what string) (string, error) {
	var hits []string
	for _, n := range names {
		if n == t.s {
			return n, nil
		}
		if strings.HasPrefix(n, t.s) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return "", errAt(t, "unknown %s %q; expected one of: %s", what, t.s, strings.Join(names, ", "))
	default:
		return "", errAt(t, "%q is ambiguous: %s", t.s, strings.Join(hits, ", "))
	}
}

func childNames(n *node) []string {
	var s []string
	for _, c := range n.children {
		s = append(s, c.name)
	}
	return s
}

// cursor is a position in the configuration while a path is resolved.
type cursor struct {
	n      *node
	v      reflect.Value // addressable; may be a nil pointer when not allocating
	path   string        // JSON path with indexes, as Check reports errors
	words  []string      // resolved words, for messages
	inList bool          // n is a list and v is one of its entries
	keyTok *token        // the list key word that made the entry
	keyPth string
	list   reflect.Value // inList: the slice that holds the entry
	index  int           // inList: the entry's index in it
}

// descend resolves toks from the root of c. With alloc, missing containers
// and list entries are created (set); without, a missing one is an error
// (delete, show). It stops at a leaf and returns the words left (the value).
func descend(c *config.Config, toks []token, alloc bool) (cursor, []token, error) {
	cur := cursor{n: root, v: reflect.ValueOf(c).Elem()}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		n := cur.n
		switch {
		case n.kind == container || cur.inList:
			name, err := match(t, childNames(n), "word")
			if err != nil {
				return cur, nil, err
			}
			ch := n.child(name)
			v := cur.v
			if v.Kind() == reflect.Pointer {
				if v.IsNil() {
					if !alloc {
						return cur, nil, errAt(t, "%s is not configured", strings.Join(append(cur.words, name), " "))
					}
					v.Set(reflect.New(v.Type().Elem()))
				}
				v = v.Elem()
			}
			cur = cursor{n: ch, v: v.Field(ch.field), path: strings.TrimPrefix(cur.path+"."+ch.json, "."), words: append(slices.Clip(cur.words), name),
				keyTok: cur.keyTok, keyPth: cur.keyPth}
			if ch.kind == leaf || ch.kind == leafList {
				return cur, toks[i+1:], nil
			}
		case n.kind == list:
			key, err := parseLeaf(cur.v.Type().Elem().Field(0).Type, t.s)
			if err != nil {
				return cur, nil, errAt(t, "%s: %v", n.key, err)
			}
			word := t.s
			if config.IsText(key.Type()) {
				word = leafString(key) // as the key's type writes it: 0A0B is CKN 0a0b
			}
			idx := -1
			for j := range cur.v.Len() {
				if leafString(cur.v.Index(j).Field(0)) == word {
					idx = j
				}
			}
			if idx < 0 {
				if !alloc {
					return cur, nil, errAt(t, "%s %s is not configured", strings.Join(cur.words, " "), t.s)
				}
				e := reflect.New(cur.v.Type().Elem()).Elem()
				e.Field(0).Set(key)
				cur.v.Set(reflect.Append(cur.v, e))
				idx = cur.v.Len() - 1
			}
			tk := t
			p := fmt.Sprintf("%s[%d]", cur.path, idx)
			cur = cursor{n: n, v: cur.v.Index(idx), path: p, words: append(slices.Clip(cur.words), t.s), inList: true, keyTok: &tk, keyPth: p + "." + n.key,
				list: cur.v, index: idx}
		}
	}
	return cur, nil, nil
}

// expected describes what may follow the cursor.
func (cur cursor) expected() string {
	switch {
	case cur.n.kind == list && !cur.inList:
		return fmt.Sprintf("a %s name", strings.TrimSuffix(cur.n.name, "s"))
	case cur.n.kind == container || cur.inList:
		return "one of: " + strings.Join(childNames(cur.n), ", ")
	}
	return "a value: " + cur.n.help()
}

// secretReader reads a secret without echo.
type secretReader func(prompt string) (string, error)

// set applies one `set` to c (a candidate copy). It returns the JSON paths
// a new Check error may point at to reject the change.
func set(c *config.Config, toks []token, end int, ask secretReader, out io.Writer) error {
	if len(toks) == 0 {
		return &posError{end, "incomplete: expected " + cursor{n: root}.expected()}
	}
	before := map[string]bool{}
	for _, e := range c.Check() {
		before[e.Error()] = true
	}
	cur, rest, err := descend(c, toks, true)
	if err != nil {
		return err
	}
	n := cur.n
	var valTok token
	switch {
	case n.kind == leaf && len(rest) == 0:
		switch {
		case n.isSecret():
			// A bad list key (a CKN of odd length) is refused before
			// the secret is asked for.
			for _, e := range c.Check() {
				if !before[e.Error()] && cur.keyTok != nil && e.Path == cur.keyPth {
					return errAt(*cur.keyTok, "%s: %s", cliName(cur.keyPth), cliMsg(c, e.Msg))
				}
			}
			s, err := askSecret(n, ask)
			if err != nil {
				return err
			}
			cur.v.Set(reflect.ValueOf(s))
		case n.isFlag(cur.v.Type()):
			v, _ := parseLeaf(cur.v.Type(), "true")
			cur.v.Set(v)
		default:
			return &posError{end, "missing value: " + n.help()}
		}
		valTok = token{pos: end}
	case n.kind == leaf:
		if len(rest) > 1 {
			return errAt(rest[1], "unexpected %q: %s takes one value (quote a value with spaces)", rest[1].s, n.name)
		}
		valTok = rest[0]
		v, err := parseLeaf(cur.v.Type(), valTok.s)
		vs := values(n)
		// A value of a fixed set is named exactly as the set spells it.
		if vs != nil && !slices.Contains(vs, valTok.s) && (err == nil || config.IsText(n.typ)) {
			return errAt(valTok, "%s %q: want one of %s", n.name, valTok.s, strings.Join(vs, ", "))
		}
		if err != nil {
			// The range the config accepts, not the Go type's.
			if r := numberRange.FindString(n.help()); r != "" {
				return errAt(valTok, "%s %q: want a whole number, %s", n.name, valTok.s, r)
			}
			return errAt(valTok, "%s: %v", n.name, err)
		}
		cur.v.Set(v)
	case n.kind == leafList:
		if len(rest) != 1 {
			return &posError{end, "give one " + n.name + " value (quote it if it has spaces)"}
		}
		valTok = rest[0]
		if !slices.Contains(cur.v.Interface().([]string), valTok.s) {
			cur.v.Set(reflect.Append(cur.v, reflect.ValueOf(valTok.s)))
		}
	case cur.inList:
		valTok = *cur.keyTok // `set links l0`: an entry with only its name
	default:
		return &posError{end, "incomplete: expected " + cur.expected()}
	}
	for _, e := range c.Check() {
		if before[e.Error()] {
			continue
		}
		switch {
		case e.Path == cur.path || strings.HasPrefix(e.Path, cur.path+"["):
			return errAt(valTok, "%s: %s", n.name, cliMsg(c, e.Msg))
		case cur.keyTok != nil && e.Path == cur.keyPth:
			return errAt(*cur.keyTok, "%s: %s", cliName(cur.keyPth), cliMsg(c, e.Msg))
		}
	}
	return nil
}

func askSecret(n *node, ask secretReader) (string, error) {
	if ask == nil {
		return "", fmt.Errorf("%s: this session cannot prompt for a secret", n.name)
	}
	label := "New " + n.name
	switch n.path {
	case "links.mka.key_chain.cak":
		label = "CAK (32 or 64 hex digits)"
	case "links.mka.fallback_key.cak":
		label = "Fallback CAK (32 or 64 hex digits)"
	}
	a, err := ask(label + ": ")
	if err != nil {
		return "", err
	}
	b, err := ask("Retype " + label + ": ")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", fmt.Errorf("%s: the two entries differ; nothing changed", n.name)
	}
	if n.path == "system.users.password" {
		return config.HashPassword(a)
	}
	return strings.ToLower(strings.TrimSpace(a)), nil
}

// del applies one `delete` to c.
func del(c *config.Config, toks []token, end int) error {
	if len(toks) == 0 {
		return &posError{end, "incomplete: name what to delete"}
	}
	cur, rest, err := descend(c, toks, false)
	if err != nil {
		return err
	}
	what := strings.Join(cur.words, " ")
	switch {
	case cur.inList:
		l, i := cur.list, cur.index
		l.Set(reflect.AppendSlice(l.Slice(0, i), l.Slice(i+1, l.Len())))
	case cur.n.kind == leafList && len(rest) == 1:
		l := cur.v.Interface().([]string)
		i := slices.Index(l, rest[0].s)
		if i < 0 {
			return errAt(rest[0], "%s %q is not configured", what, rest[0].s)
		}
		cur.v.Set(reflect.ValueOf(slices.Delete(slices.Clone(l), i, i+1)))
	case len(rest) > 0:
		return errAt(rest[0], "unexpected %q: delete takes no value here", rest[0].s)
	default:
		if cur.v.IsZero() {
			return &posError{end, what + " is not configured"}
		}
		cur.v.Set(reflect.Zero(cur.v.Type()))
	}
	prune(reflect.ValueOf(c).Elem())
	return nil
}

// prune drops optional sections left empty by a delete. Typed values
// (an address, a MAC) are leaves: their insides are not sections, and
// their unexported fields cannot be set.
func prune(v reflect.Value) {
	if config.IsText(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		prune(v.Elem())
		if v.Elem().Kind() == reflect.Struct && v.Elem().IsZero() {
			v.Set(reflect.Zero(v.Type()))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				prune(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				prune(v.Index(i))
			}
		}
	}
}

// cliRef turns a Check path (links[1].mka.key_chain[0].ckn) into the
// words of the CLI (links l1 mka key-chain 0a1b ckn).
func cliRef(c *config.Config, path string) string {
	v := reflect.ValueOf(c).Elem()
	n := root
	var words []string
	for _, part := range strings.Split(path, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		var ch *node
		for _, x := range n.children {
			if x.json == name {
				ch = x
			}
		}
		if ch == nil || v.Kind() != reflect.Struct {
			words = append(words, strings.ReplaceAll(part, "_", "-"))
			continue
		}
		n, v = ch, v.Field(ch.field)
		words = append(words, ch.name)
		if hasIdx {
			i, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if v.Kind() == reflect.Slice && i < v.Len() {
				v = v.Index(i)
				words = append(words, leafString(v.Field(0)))
			}
		}
	}
	return strings.Join(words, " ")
}

func cliName(path string) string {
	return strings.ReplaceAll(path[strings.LastIndex(path, ".")+1:], "_", "-")
}

// numberRange is the range a numeric leaf's help gives, such as 0..255.
var numberRange = regexp.MustCompile(`\d+\.\.\d+`)

var pathInMsg = regexp.MustCompile(`\b(?:links|users|key_chain)\[\d+\](?:\.[a-z_]+(?:\[\d+\])?)*`)

// cliMsg rewrites the config-file paths inside a Check message as CLI words.
func cliMsg(c *config.Config, msg string) string {
	return pathInMsg.ReplaceAllStringFunc(msg, func(p string) string {
		if strings.HasPrefix(p, "users") {
			p = "system." + p
		}
		return cliRef(c, p)
	})
}
