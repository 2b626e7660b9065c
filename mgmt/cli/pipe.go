package cli

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Output pipes, as on Junos: 'show mka | match live', '| except',
// '| count', '| last N', chained left to right.

var pipeCommands = []cand{
	{"count", "Count the lines"},
	{"except", "Hide the lines that match a regular expression"},
	{"last", "Show only the last N lines"},
	{"match", "Show only the lines that match a regular expression"},
}

// splitPipe cuts a line at its first '|' outside quotes. at is the
// position of the '|', -1 when there is none.
func splitPipe(s string) (cmdText, pipeText string, at int) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == '|' && !quoted:
			return s[:i], s[i+1:], i
		}
	}
	return s, "", -1
}

type lineFilter func([]string) []string

// parsePipes parses the text after the first '|'; base is its position in
// the line, for the caret under a bad word.
func parsePipes(text string, base int) ([]lineFilter, error) {
	var fs []lineFilter
	for {
		part, rest, at := splitPipe(text)
		toks, _, err := tokenize(part)
		if err != nil {
			return nil, err
		}
		for i := range toks {
			toks[i].pos += base
		}
		if len(toks) == 0 {
			return nil, &posError{base, "missing command after '|': " + pipeNames()}
		}
		names := make([]string, len(pipeCommands))
		for i, c := range pipeCommands {
			names[i] = c.word
		}
		name, err := match(toks[0], names, "pipe command")
		if err != nil {
			return nil, err
		}
		args := toks[1:]
		switch name {
		case "count":
			if len(args) > 0 {
				return nil, errAt(args[0], "unexpected %q: count takes nothing", args[0].s)
			}
			fs = append(fs, func(l []string) []string { return []string{fmt.Sprintf("Count: %d lines", len(l))} })
		case "last":
			if len(args) != 1 {
				return nil, &posError{base + len(part), "last takes the number of lines: | last 10"}
			}
			n, err := strconv.Atoi(args[0].s)
			if err != nil || n < 1 {
				return nil, errAt(args[0], "%q: want a number of lines, 1 or more", args[0].s)
			}
			fs = append(fs, func(l []string) []string { return l[max(0, len(l)-n):] })
		case "match", "except":
			if len(args) != 1 {
				return nil, &posError{base + len(part), name + " takes one regular expression (quote it if it has spaces): | " + name + " \"a|b\""}
			}
			re, err := regexp.Compile(args[0].s)
			if err != nil {
				return nil, errAt(args[0], "%q is not a regular expression", args[0].s)
			}
			keep := name == "match"
			fs = append(fs, func(l []string) []string {
				var out []string
				for _, x := range l {
					if re.MatchString(x) == keep {
						out = append(out, x)
					}
				}
				return out
			})
		}
		if at < 0 {
			return fs, nil
		}
		text, base = rest, base+at+1
	}
}

func pipeNames() string {
	var n []string
	for _, c := range pipeCommands {
		n = append(n, c.word)
	}
	return strings.Join(n, ", ")
}

// applyPipes runs out's lines through the filters.
func applyPipes(out []byte, fs []lineFilter) []byte {
	text := strings.TrimSuffix(string(out), "\n")
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	for _, f := range fs {
		lines = f(lines)
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}

// pipeCandidates are what may follow the last '|' of s.
func pipeCandidates(s string) ([]cand, token, bool) {
	_, after, at := splitPipe(s)
	if at < 0 {
		return nil, token{}, false
	}
	base := at + 1
	for {
		_, rest, next := splitPipe(after)
		if next < 0 {
			break
		}
		base += next + 1
		after = rest
	}
	toks, trailing, err := tokenize(after)
	if err != nil {
		return nil, token{}, true
	}
	partial := token{pos: len(s)}
	if !trailing && len(toks) > 0 {
		partial = toks[len(toks)-1]
		partial.pos += base
		toks = toks[:len(toks)-1]
	}
	switch {
	case len(toks) == 0:
		return filter(pipeCommands, partial.s), partial, true
	case len(toks) == 1 && (toks[0].s == "match" || toks[0].s == "except"):
		return []cand{{"<regex>", "Regular expression (quote it if it has spaces)"}}, partial, true
	case len(toks) == 1 && toks[0].s == "last":
		return []cand{{"<lines>", "How many of the last lines"}}, partial, true
	}
	return []cand{{"<[Enter]>", "Execute this command"}, {"|", "Pipe through another command"}}, partial, true
}
