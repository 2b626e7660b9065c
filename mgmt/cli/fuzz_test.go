package cli

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
)

// FuzzCLILine feeds arbitrary command lines to the tokenizer and to `set`
// and `delete` on a candidate that holds a CAK, and to '?', Tab and the
// history's secret masking in configuration mode. Nothing may panic;
// tokens lie where the tokenizer says; no error, help or rendering shows
// the candidate's CAK. Lines are never run as commands (a fuzzed commit
// could start a datapath on the host's interfaces).
func FuzzCLILine(f *testing.F) {
	for _, file := range []string{"edit.txt", "help.txt", "confirmed.txt", "operator.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^(?:[a-z]+@[a-z0-9-]+[>#] |\?> |tab> )(.*)$`).FindAllStringSubmatch(string(b), -1) {
			f.Add(m[1])
		}
	}
	for _, s := range []string{
		`set links l0 mka key-chain 01 ca 00112233445566778899aabbccddeeff`, `set system users bob password "$2a$10$x"`,
		`set links "l 0" plain "a\"b"`, `set links l0 mka key-chain 01 cak`, `delete links l0 mka key-chain 01`,
		`set system users x ssh-keys "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"`,
	} {
		f.Add(s)
	}
	const cak = "5ec2e75ec2e75ec2e75ec2e75ec2e75e"
	const typed = "0123456789abcdef0123456789abcdef"
	// Typed values (an address, a cipher suite) beside the CAK: edits walk
	// past them.
	base := &config.Config{
		System: config.System{Management: &config.Management{Interface: "m0", Address: netip.MustParsePrefix("192.0.2.10/24")}},
		Links: []config.Link{{Name: "l0", Plain: "p", Line: "q", Cipher: macsec.GCMAESXPN256,
			MKA: &config.MKA{KeyChain: []config.CAKEntry{{CKN: config.Hex{0x01}, CAK: cak}}}}}}
	dir := f.TempDir()
	m, err := commit.Open(context.Background(), commit.Options{ConfigPath: filepath.Join(dir, "secwire.json"), StateDir: filepath.Join(dir, "state")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(m.Stop)
	ask := func(string) (string, error) { return typed, nil }
	sh := New(&Env{Manager: m}, Session{User: "admin", Role: "admin", Out: io.Discard, AskSecret: ask, AskLine: ask})
	f.Fuzz(func(t *testing.T, line string) {
		toks, _, terr := tokenize(line)
		for _, tk := range toks {
			if tk.pos < 0 || tk.pos >= len(line) || line[tk.pos] != '"' && !strings.HasPrefix(line[tk.pos:], tk.s) {
				t.Fatalf("token %q at %d is not there in %q", tk.s, tk.pos, line)
			}
		}
		if masked := maskSecrets(line); strings.Contains(line, " cak ") && strings.Contains(masked, cak) {
			t.Fatalf("history keeps the CAK: %q", masked)
		}
		showsCAK := func(s string) bool { return strings.Contains(s, cak) && !strings.Contains(line, cak) }
		sh.cand, sh.base = base.Clone(), base.Clone()
		if h := sh.Help(line); showsCAK(h) {
			t.Fatalf("help shows the CAK:\n%s", h)
		}
		if done, list := sh.Complete(line); showsCAK(done + list) {
			t.Fatalf("completion shows the CAK:\n%s%s", done, list)
		}
		if terr != nil || len(toks) == 0 {
			return
		}
		for _, op := range []string{"set", "delete"} {
			c := base.Clone()
			var err error
			if op == "set" {
				err = set(c, toks, len(line), ask, io.Discard)
			} else {
				err = del(c, toks, len(line))
			}
			if err != nil {
				if showsCAK(err.Error()) {
					t.Fatalf("%s error shows the CAK: %v", op, err)
				}
				continue
			}
			var out bytes.Buffer
			render(&out, root, reflect.ValueOf(c).Elem(), false, "")
			for _, l := range flatten(c) {
				out.WriteString(l.String() + "\n")
			}
			if showsCAK(out.String()) || strings.Contains(out.String(), typed) && !strings.Contains(line, typed) {
				t.Fatalf("after %s %q the candidate shows a secret:\n%s", op, line, out.String())
			}
			c.Check()
		}
	})
}
