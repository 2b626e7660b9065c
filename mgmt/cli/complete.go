package cli

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/secwire/secwire/firmware/config"
)

// cand is one possible next word and what it means. A word in angle
// brackets is a placeholder for a value.
type cand struct{ word, help string }

// candidates lists what may follow the complete words of s, and the
// partial last word (what the candidates must start with).
func (sh *Shell) candidates(s string) ([]cand, token) {
	if cs, partial, ok := pipeCandidates(s); ok {
		return cs, partial
	}
	toks, trailing, err := tokenize(s)
	if err != nil {
		return nil, token{}
	}
	partial := token{pos: len(s)}
	if !trailing && len(toks) > 0 {
		partial = toks[len(toks)-1]
		toks = toks[:len(toks)-1]
	}
	cmds := sh.commands()
	for {
		if len(toks) == 0 {
			var out []cand
			for _, c := range cmds {
				if !c.admin || sh.sess.Role == config.RoleAdmin {
					out = append(out, cand{c.name, c.help})
				}
			}
			return filter(out, partial.s), partial
		}
		var c *cmd
		for _, x := range cmds {
			if n, err := match(toks[0], []string{x.name}, "command"); err == nil && n == x.name {
				c = x
			}
		}
		if c == nil {
			names := make([]string, len(cmds))
			for i, x := range cmds {
				names[i] = x.name
			}
			n, err := match(toks[0], names, "command")
			if err != nil {
				return nil, partial
			}
			for _, x := range cmds {
				if x.name == n {
					c = x
				}
			}
		}
		if c.admin && sh.sess.Role != config.RoleAdmin {
			return nil, partial
		}
		if c.name == "run" && sh.cand != nil {
			cmds, toks = sh.opCommands(), toks[1:]
			continue
		}
		if len(c.sub) > 0 && len(toks) == 1 {
			var out []cand
			for _, x := range c.sub {
				out = append(out, cand{x.name, x.help})
			}
			if c.run != nil {
				out = append(out, cand{"<[Enter]>", "Execute this command"})
			}
			return filter(out, partial.s), partial
		}
		if len(c.sub) > 0 {
			cmds, toks = c.sub, toks[1:]
			continue
		}
		var out []cand
		if c.words != nil {
			out = c.words(sh, toks[1:])
		}
		if c.arg != "" && !strings.HasPrefix(c.arg, "[") && (len(toks) == 1 || c.name == "set" || c.name == "delete") && len(out) == 0 {
			out = append(out, cand{c.arg, c.help})
		}
		if len(toks) == 1 && c.run != nil && (c.arg == "" || strings.HasPrefix(c.arg, "[")) {
			out = append(out, cand{"<[Enter]>", "Execute this command"})
		}
		return filter(out, partial.s), partial
	}
}

func filter(cs []cand, prefix string) []cand {
	var out []cand
	for _, c := range cs {
		if strings.HasPrefix(c.word, prefix) || strings.HasPrefix(c.word, "<") {
			out = append(out, c)
		}
	}
	return out
}

// schemaCands lists what may follow a configuration path.
func schemaCands(c *config.Config, args []token, forSet bool) []cand {
	work := c.Clone()
	cur, rest, err := descend(work, args, true)
	if err != nil {
		return nil
	}
	n := cur.n
	switch {
	case n.kind == list && !cur.inList:
		var out []cand
		for i := range cur.v.Len() {
			out = append(out, cand{leafString(cur.v.Index(i).Field(0)), "existing"})
		}
		if forSet {
			for _, v := range values(n) {
				out = append(out, cand{v, valueHelp(n, v)})
			}
			out = append(out, cand{"<" + n.key + ">", n.help()})
		}
		return out
	case n.kind == container || cur.inList:
		var out []cand
		for _, ch := range n.children {
			out = append(out, cand{ch.name, ch.help()})
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].word < out[j].word })
		if !forSet {
			out = append(out, cand{"<[Enter]>", "Execute this command"})
		}
		return out
	case len(rest) > 0 || !forSet:
		if n.kind == leafList && !forSet {
			var out []cand
			for i := range cur.v.Len() {
				out = append(out, cand{quote(cur.v.Index(i).String()), "existing"})
			}
			return append(out, cand{"<[Enter]>", "Execute this command"})
		}
		return []cand{{"<[Enter]>", "Execute this command"}}
	}
	var out []cand
	for _, v := range values(n) {
		out = append(out, cand{v, valueHelp(n, v)})
	}
	t := cur.v.Type()
	switch {
	case n.isSecret():
		out = append(out, cand{"<[Enter]>", "Prompt for it without echo"})
		if n.path == "system.users.password" {
			out = append(out, cand{"<hash>", "A bcrypt hash from 'secwire passwd'"})
		}
	case n.isFlag(t):
		out = append(out, cand{"<[Enter]>", "Turn it on"}, cand{"true", ""}, cand{"false", ""})
	case len(out) == 0:
		out = append(out, cand{"<" + strings.ReplaceAll(n.json, "_", "-") + ">", n.help()})
	}
	return out
}

// Help is the text '?' prints for the line so far.
func (sh *Shell) Help(s string) string {
	cs, _ := sh.candidates(s)
	if len(cs) == 0 {
		return "No valid completions\n"
	}
	var b strings.Builder
	b.WriteString("Possible completions:\n")
	w := 0
	for _, c := range cs {
		w = max(w, len(c.word))
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-*s  %s\n", w, c.word, c.help)
	}
	return b.String()
}

// Complete is Tab: it extends the word at the end of s. With one match
// the word is completed and a space added; with several it extends to
// their common prefix, and list is what to show when that adds nothing.
func (sh *Shell) Complete(s string) (completed string, list string) {
	cs, partial := sh.candidates(s)
	var words []string
	for _, c := range cs {
		if !strings.HasPrefix(c.word, "<") {
			words = append(words, c.word)
		}
	}
	switch {
	case len(words) == 0:
		return s, sh.Help(s)
	case len(words) == 1:
		return s[:partial.pos] + words[0] + " ", ""
	}
	p := words[0]
	for _, w := range words[1:] {
		for !strings.HasPrefix(w, p) {
			p = p[:len(p)-1]
		}
	}
	if len(p) > len(partial.s) {
		return s[:partial.pos] + p, ""
	}
	return s, sh.Help(s)
}

// valueHelp explains a fixed value of a leaf: a typed value describes
// itself (a cipher suite from the suite table, a policy, a role...).
func valueHelp(n *node, v string) string {
	if n.typ != nil && config.IsText(n.typ) {
		p := reflect.New(n.typ)
		if p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(v)) == nil {
			if d, ok := p.Elem().Interface().(interface{ Describe() string }); ok {
				return d.Describe()
			}
		}
	}
	return valueHelps[v]
}

// valueHelps explains the fixed values that are not a type's: the
// built-in protocols in clear.
var valueHelps = map[string]string{
	"lacp":  "LACP and Marker (802.1AX) to the slow protocols address",
	"lldp":  "LLDP (802.1AB) to its three group addresses",
	"pause": "Ethernet PAUSE and PFC to the MAC Control address",
}
