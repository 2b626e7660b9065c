package cli

import (
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
)

// Every configurable leaf has help text, so '?' never shows an empty line.
func TestEveryLeafHasHelp(t *testing.T) {
	var walkNodes func(n *node)
	walkNodes = func(n *node) {
		if n != root && help[n.path] == "" {
			t.Errorf("%s (%s) has no help text", n.path, n.name)
		}
		for _, c := range n.children {
			walkNodes(c)
		}
	}
	walkNodes(root)
}

// Wrong input of every kind is refused with an error and leaves the
// candidate exactly as it was.
func TestWrongInputChangesNothing(t *testing.T) {
	c := &config.Config{Links: []config.Link{{Name: "l0", Plain: "p", Line: "q", Cipher: macsec.GCMAESXPN256, ReplayWindow: 64,
		MKA: &config.MKA{KeyChain: []config.CAKEntry{{CKN: config.Hex{0x01}, CAK: strings.Repeat("ab", 16)}}}}}}
	want := flatten(c)
	secrets := []string{strings.Repeat("a", 40), strings.Repeat("a", 40)}
	ask := func(string) (string, error) { s := secrets[0]; secrets = append(secrets[1:], s); return s, nil }
	for _, in := range []string{
		"set bogus 1", "set links l0 cipher gcm-aes-512", "set links l0 replay-window 1073741825",
		"set links l0 replay-window x", "set links l0 mtu 100", "set links l0 mka key-chain 123 cak",
		"set links l0 mka key-chain 01 cak", "set links l0 mka key-chain 01 start yesterday",
		"set links l0 mka eapol-destination 01:80:c2", "set links l0 eapol-ethertype 0x05ff",
		"set links l0 line p", "set system hostname -bad-", "set system management address 10.0.0.1",
		"set system users Root role admin", "set system users bob ssh-keys \"ssh-rsa notakey\"",
		"set system users bob password plaintext", "set links l0 vlans-in-clear 3", "set links l0 send-sci maybe",
		"delete links l0 mka key-chain 02", "delete system management", "set links l0 datapath fastest",
	} {
		toks, _, _ := tokenize(in)
		work := c.Clone()
		var err error
		if toks[0].s == "set" {
			err = set(work, toks[1:], len(in), ask, io.Discard)
		} else {
			err = del(work, toks[1:], len(in))
		}
		if err == nil {
			t.Errorf("%q was accepted", in)
			continue
		}
		if got := flatten(work); !reflect.DeepEqual(got, want) && toks[0].s == "delete" {
			t.Errorf("%q changed the candidate", in)
		}
		if strings.Contains(err.Error(), "abab") || strings.Contains(err.Error(), "aaaa") {
			t.Errorf("%q: error shows key material: %v", in, err)
		}
	}
	if !reflect.DeepEqual(flatten(c), want) {
		t.Fatal("the original candidate changed")
	}
}

func TestHistoryMasksSecrets(t *testing.T) {
	const cak = "00112233445566778899aabbccddeeff"
	// The CAK under every unique prefix of its keyword (and of the words
	// before it, and of set itself), and prefixes that are ambiguous.
	for _, kw := range []string{"c", "ca", "cak"} {
		for _, path := range []string{"set links l0 mka key-chain 01 ", "se li l0 mk key 01 ", "s l l0 m k 01 "} {
			in := path + kw + " " + cak
			if got, want := maskSecrets(in), path+kw+" <secret>"; got != want {
				t.Errorf("maskSecrets(%q) = %q, want %q", in, got, want)
			}
		}
	}
	for in, want := range map[string]string{
		`set system users bob password "$2a$10$abc def"`:        "set system users bob password <secret>",
		`set system users bob pa "$2a$10$abc def"`:              "set system users bob pa <secret>",
		`set sy u bob p $2a$10$abc`:                             "set sy u bob p <secret>",
		`set system users bob password "$2a$10$abc def`:         "set system users bob password <secret>", // open quote
		"set links l0 mka key-chain 01 cak " + cak + " extra":   "set links l0 mka key-chain 01 cak <secret>",
		"set links l0 mka key-chain 01 cak   " + cak:            "set links l0 mka key-chain 01 cak   <secret>",
		"set links l0 mka key-chain 01 ca \"" + cak + "\"":      "set links l0 mka key-chain 01 ca <secret>",
		"set links l0 mka key-chain 01 cak":                     "set links l0 mka key-chain 01 cak",
		"set links l0 mka fallback-key c " + cak:                "set links l0 mka fallback-key c <secret>",
		"se li l0 mk fa ca " + cak:                              "se li l0 mk fa ca <secret>",
		"set links l0 cipher gcm-aes-128":                       "set links l0 cipher gcm-aes-128",
		"set links l0 mka key-chain 01 start 2026-01-01T00:00Z": "set links l0 mka key-chain 01 start 2026-01-01T00:00Z",
		"show links l0 mka":                                     "show links l0 mka",
	} {
		if got := maskSecrets(in); got != want {
			t.Errorf("maskSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTerminalKeys drives the line editor as a user would: Tab completes,
// '?' lists, the up arrow recalls, a secret is not echoed, Ctrl-D leaves.
func TestTerminalKeys(t *testing.T) {
	h := newHarness(t, time.Now())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	term := NewTerminal(struct {
		io.Reader
		io.Writer
	}{inR, outW})
	sh := New(h.env, Session{User: "admin", Role: "admin", Out: term, AskSecret: term.AskSecret, AskLine: term.AskLine})
	var screen safeBuffer
	go io.Copy(&screen, outR)
	done := make(chan error, 1)
	go func() { done <- term.Serve(sh) }()
	type step struct{ keys, want string }
	for _, s := range []step{
		{"sh\t", "show "},
		{"conf\t\r", "(no configuration committed yet"},
		{"configure\r", "[edit]"},
		{"set links l0 mka key-chain 01 cak\r", "CAK (32 or 64 hex digits): "},
		{"00112233445566778899aabbccddeeff\r", "Retype CAK"},
		{"00112233445566778899aabbccddeeff\r", "admin@secwire# "},
		{"show links l0 mka ?", "Possible completions:"},
		{"\x15show\r", "cak \"sha256:"},
		{"\x1b[A\x1b[A\r", "set links l0 mka key-chain 01 cak\r\nCAK"}, // the history recalls the command, never the key
		{"00112233445566778899aabbccddeeff\r0\r", "the two entries differ"},
	} {
		inW.Write([]byte(s.keys))
		if !screen.waitFor(s.want, 5*time.Second) {
			t.Fatalf("after %q the screen lacks %q:\n%s", s.keys, s.want, screen.String())
		}
	}
	if strings.Contains(screen.String(), "00112233445566778899aabbccddeeff") {
		t.Fatal("the CAK was echoed")
	}
	inW.Write([]byte("exit discard\rexit\r"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exit did not end the session")
	}
}

// The NOC settings from the CLI, as docs/config.md shows them.
func TestNOCSettingsFromTheCLI(t *testing.T) {
	c := &config.Config{}
	for _, in := range []string{
		"set system ntp server 192.0.2.123", "set system ntp server 192.0.2.124 nts",
		"set system ntp server 192.0.2.124 ca-file nts-ca.pem",
		"set system syslog host 192.0.2.50", "set system syslog host 192.0.2.51 transport tcp",
		"set system syslog host 192.0.2.51 port 10514", "set system syslog host 192.0.2.51 severity warning",
		"set system syslog buffer 5000", "set system metrics port 9100",
	} {
		toks, _, _ := tokenize(in)
		if err := set(c, toks[1:], len(in), nil, io.Discard); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
	}
	if errs := c.Check(); len(errs) > 0 {
		t.Fatal(errs)
	}
	s := c.System
	if len(s.NTP.Server) != 2 || !s.NTP.Server[1].NTS || s.NTP.Server[1].CAFile != "nts-ca.pem" ||
		s.Syslog.Host[1] != (config.SyslogHost{Address: netip.MustParseAddr("192.0.2.51"), Transport: "tcp", Port: 10514, Severity: "warning"}) ||
		s.Syslog.Buffer != 5000 || s.Metrics.Port != 9100 {
		t.Fatalf("got %+v %+v %+v", s.NTP, s.Syslog, s.Metrics)
	}
	for _, in := range []string{"set system syslog host 192.0.2.51 transport relp", "set system syslog host 192.0.2.51 severity loud"} {
		toks, _, _ := tokenize(in)
		if err := set(c.Clone(), toks[1:], len(in), nil, io.Discard); err == nil {
			t.Errorf("%q was accepted", in)
		}
	}
}

// Typed leaves are parsed when they are set, list keys of a typed field
// name the same entry however they are spelled, and the candidate shows
// them as the config file writes them.
func TestTypedValuesInTheCLI(t *testing.T) {
	c := &config.Config{}
	run := func(in string) error {
		toks, _, _ := tokenize(in)
		return set(c, toks[1:], len(in), nil, io.Discard)
	}
	for _, in := range []string{
		"set system ntp server 192.0.2.1",
		"set system ntp server 192.0.2.1 nts",
		"set links l0 mka key-chain 0A0B start 2026-12-01T00:00:00Z",
		"set links l0 mka key-chain 0a0b end 2026-12-02T00:00:00+01:00",
		"set links l0 mka transmit-interval 500ms",
		"set links l0 mka rekey-interval 1440m",
		"set links l0 validate strict",
		"set links l0 cipher gcm-aes-256",
		"set system management address 192.0.2.10/24",
		"set system management gateway 192.0.2.1",
	} {
		if err := run(in); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
	l := c.Links[0]
	if n := c.System.NTP.Server; len(n) != 1 || !n[0].NTS {
		t.Errorf("ntp servers %+v, want one with nts", n)
	}
	if k := l.MKA.KeyChain; len(k) != 1 || k[0].Start.IsZero() || k[0].End.IsZero() {
		t.Errorf("key chain %+v, want one entry with start and end", k)
	}
	if l.MKA.Hello() != 500*time.Millisecond || l.MKA.Interval() != 24*time.Hour || l.Validate == nil || *l.Validate != macsec.ValidateStrict ||
		l.Suite() != macsec.GCMAES256 || c.System.Management.Gateway != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("link %+v", l)
	}
	var got []string
	for _, ln := range flatten(c) {
		got = append(got, ln.String())
	}
	for _, want := range []string{
		"links l0 cipher gcm-aes-256", "links l0 validate strict", "links l0 mka key-chain 0a0b start 2026-12-01T00:00:00Z",
		"links l0 mka key-chain 0a0b end 2026-12-02T00:00:00+01:00", "links l0 mka transmit-interval 500ms",
		"links l0 mka rekey-interval 24h", "system ntp server 192.0.2.1 nts", "system management address 192.0.2.10/24",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("candidate lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if err := run("set links l0 mka transmit-interval 10s"); err == nil || !strings.Contains(err.Error(), `"10s": want 500ms to 6s`) {
		t.Errorf("transmit-interval 10s: %v", err)
	}
}

// A delete prunes the sections it leaves empty, and leaves typed values
// (addresses, SCIs) alone: pruning into a netip.Addr's insides panicked
// and ended the session.
func TestDeleteBesideTypedValues(t *testing.T) {
	c := &config.Config{
		System: config.System{Management: &config.Management{Interface: "eth2", Address: netip.MustParsePrefix("10.0.2.15/24")}},
		Links: []config.Link{{Name: "l0", Plain: "p", Line: "q",
			Static: &config.StaticKeys{TX: config.SA{AN: 0, Key: "d1ce"}, RX: []config.RxSC{{SCI: 0x525400aa00010001, SAs: []config.SA{{AN: 0, Key: "d1ce"}}}}}}},
	}
	for _, in := range []string{"delete links l0", "delete system management gateway", "delete system management"} {
		toks, _, _ := tokenize(in)
		if err := del(c, toks[1:], len(in)); err != nil && !strings.Contains(err.Error(), "not configured") {
			t.Errorf("%s: %v", in, err)
		}
		if in == "delete links l0" && (len(c.Links) != 0 || c.System.Management == nil || c.System.Management.Address.String() != "10.0.2.15/24") {
			t.Errorf("after %q: links %v, management %+v", in, c.Links, c.System.Management)
		}
	}
	if c.System.Management != nil {
		t.Errorf("management left after its delete: %+v", c.System.Management)
	}
}
