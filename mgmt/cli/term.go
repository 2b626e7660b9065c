package cli

import (
	"errors"
	"io"
	"strings"

	"golang.org/x/term"

	"github.com/secwire/secwire/firmware/config"
)

// Terminal is a line editor (golang.org/x/term) on a serial console or an
// SSH channel: history with the arrow keys, Emacs keys, Tab completion and
// '?' help.
type Terminal struct {
	t *term.Terminal
}

// NewTerminal wraps rw. Ctrl-C clears the line (x/term would end the
// session).
func NewTerminal(rw io.ReadWriter) *Terminal {
	t := term.NewTerminal(ctrlC{rw}, "")
	t.History = &history{}
	return &Terminal{t: t}
}

type ctrlC struct{ io.ReadWriter }

func (c ctrlC) Read(p []byte) (int, error) {
	n, err := c.ReadWriter.Read(p)
	for i := range p[:n] {
		if p[i] == 3 {
			p[i] = 0x15 // Ctrl-U: kill the line
		}
	}
	return n, err
}

// SetSize is the window size (SSH pty requests and window changes).
func (t *Terminal) SetSize(w, h int) { t.t.SetSize(w, h) }

// Write prints above the prompt.
func (t *Terminal) Write(p []byte) (int, error) { return t.t.Write(p) }

// AskSecret reads a line without echo; it is not kept in the history.
func (t *Terminal) AskSecret(prompt string) (string, error) { return t.t.ReadPassword(prompt) }

// AskLine reads a line with echo.
func (t *Terminal) AskLine(prompt string) (string, error) {
	t.t.SetPrompt(prompt)
	return t.t.ReadLine()
}

// Serve runs sh until the user logs out or the terminal closes.
func (t *Terminal) Serve(sh *Shell) error {
	t.t.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		switch {
		case key == '\t':
			done, list := sh.Complete(line[:pos])
			if list != "" {
				io.WriteString(t.t, "\n"+list)
			}
			return done + line[pos:], len(done), true
		case key == '?' && strings.Count(line[:pos], `"`)%2 == 0:
			io.WriteString(t.t, line[:pos]+"?\n"+sh.Help(line[:pos]))
			return line, pos, true
		}
		return "", 0, false
	}
	defer func() { t.t.AutoCompleteCallback = nil }()
	defer sh.Watch()()
	for !sh.Done() {
		t.t.SetPrompt(sh.Prompt())
		l, err := t.t.ReadLine()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		sh.Exec(l)
	}
	return nil
}

// history keeps the last 200 lines, with secrets typed on the line (a CAK
// or password hash after its keyword) masked.
type history struct{ lines []string }

func (h *history) Add(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	h.lines = append(h.lines, maskSecrets(s))
	if len(h.lines) > 200 {
		h.lines = h.lines[1:]
	}
}
func (h *history) Len() int        { return len(h.lines) }
func (h *history) At(i int) string { return h.lines[len(h.lines)-1-i] }

// maskSecrets replaces a secret typed on a `set` line (a CAK or a
// password hash after its keyword, which may be abbreviated to any unique
// prefix) with <secret>. The line is resolved as `set` resolves it; a
// line that does not resolve is masked after any word that could be a
// secret keyword, to be safe.
func maskSecrets(s string) string {
	toks, _, err := tokenize(s)
	if err != nil {
		// An open quote: the rest of the line is one more word.
		var pe *posError
		if errors.As(err, &pe) {
			toks = append(toks, token{s[pe.pos:], pe.pos})
		}
	}
	if len(toks) < 2 || !strings.HasPrefix("set", toks[0].s) {
		return s // only set takes secrets
	}
	if err == nil {
		cur, rest, derr := descend(&config.Config{}, toks[1:], true)
		if derr == nil {
			if cur.n.isSecret() && len(rest) > 0 {
				return s[:rest[0].pos] + "<secret>"
			}
			return s
		}
	}
	for i, t := range toks[:len(toks)-1] {
		for k := range secret {
			if name := strings.ReplaceAll(k[strings.LastIndex(k, ".")+1:], "_", "-"); t.s != "" && strings.HasPrefix(name, t.s) {
				return s[:toks[i+1].pos] + "<secret>"
			}
		}
	}
	return s
}
