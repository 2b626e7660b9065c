// Package config is secwire's one typed configuration model: what the
// appliance stores on its config partition and what `secwire daemon
// --config FILE` reads. Each value is parsed into its type once, when the
// config is decoded (types.go); Check adds the rules that span fields.
// Load reports every problem of both with its field path;
// docs/config.md describes the format.
package config

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/secwire/secwire/offload/macsec"
)

// Config is the whole configuration.
type Config struct {
	System System `json:"system"`
	Links  []Link `json:"links,omitempty"`

	// keyDir is where relative key_file and cak_file paths point: the
	// config file's directory. The paths themselves are kept as written,
	// so storing the config never rewrites them.
	keyDir string
}

// SetKeyDir sets the directory relative key file paths are read from
// (the config file's directory); "" is the working directory.
func (c *Config) SetKeyDir(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c.keyDir = dir
}

// KeyDir is the directory relative key file paths are read from.
func (c *Config) KeyDir() string { return c.keyDir }

// keyPath is where a key file path as written in the config points.
func keyPath(dir, file string) string {
	if file == "" || filepath.IsAbs(file) || dir == "" {
		return file
	}
	return filepath.Join(dir, file)
}

// Link is one plaintext/line port pair and its SecY.
type Link struct {
	Name  string `json:"name"`
	Plain string `json:"plain"` // interface towards the customer's router
	Line  string `json:"line"`  // interface towards the provider circuit

	Cipher        macsec.CipherSuite   `json:"cipher,omitempty"`        // default gcm-aes-128
	SendSCI       *bool                `json:"send_sci,omitempty"`      // default true
	Validate      *macsec.ValidateMode `json:"validate,omitempty"`      // strict (default), check, disabled
	ReplayWindow  uint32               `json:"replay_window,omitempty"` // default 0: strict order
	Offset        int                  `json:"confidentiality_offset,omitempty"`
	IntegrityOnly bool                 `json:"integrity_only,omitempty"`
	// Policy is must-secure (default: nothing crosses without SAs) or
	// should-secure (frames cross in clear while no SA is up).
	Policy Policy `json:"policy,omitempty"`
	// VLANsInClear is 0, 1 or 2 tags left ahead of the SecTAG for
	// provider circuits that switch on them; both ends must agree.
	VLANsInClear int `json:"vlans_in_clear,omitempty"`
	MTU          int `json:"mtu,omitempty"` // plaintext MTU, default 1500
	// LinkFault passes a line fault to the plaintext port (default true):
	// the plaintext port goes down while the line is down or unsecured.
	LinkFault *bool `json:"link_fault_passthrough,omitempty"`
	// Datapath is the backend: auto (default: hardware offload, else
	// kernel software, else the Go software datapath) or one of them forced.
	Datapath Datapath `json:"datapath,omitempty"`
	// EAPOLEtherType is an alternate EtherType for EAPOL, besides 0x888E.
	EAPOLEtherType EtherType `json:"eapol_ethertype,omitempty"`
	Workers        int       `json:"workers,omitempty"` // datapath workers per direction, default 1
	// ProtocolsInClear are control protocols that cross in clear both
	// ways (none by default); only the software datapath can do it.
	ProtocolsInClear []ProtocolInClear `json:"protocols_in_clear,omitempty"`

	// A link is keyed either by MKA (the normal case) or by static SAKs.
	MKA    *MKA        `json:"mka,omitempty"`
	Static *StaticKeys `json:"static_keys,omitempty"`
}

// StaticKeys gives SAKs directly, as `ip macsec` does, for labs and interop.
type StaticKeys struct {
	SCI macsec.SCI `json:"sci,omitempty"` // transmit SCI, default line MAC || 0001
	TX  SA         `json:"tx"`
	RX  []RxSC     `json:"rx"`
}

// RxSC is one peer's secure channel.
type RxSC struct {
	SCI macsec.SCI `json:"sci"`
	SAs []SA       `json:"sas"`
}

// SA is one secure association. The key is inline hex (labs) or a file
// of hex readable only by its owner (mode 0600).
type SA struct {
	AN      int    `json:"an"`
	Key     string `json:"key,omitempty"`
	KeyFile string `json:"key_file,omitempty"`
	PN      uint64 `json:"pn,omitempty"`   // next PN (tx) or lowest acceptable (rx); default 1
	SSCI    Hex    `json:"ssci,omitempty"` // XPN: 8 hex digits
	Salt    Hex    `json:"salt,omitempty"` // XPN: 24 hex digits
}

// Error is one problem, at a field path such as links[0].static_keys.tx.key.
type Error struct{ Path, Msg string }

func (e Error) Error() string { return e.Path + ": " + e.Msg }

// Errors is every problem Check found.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Parse decodes a config. Unknown fields and values of the wrong kind
// are Errors with their paths: a typo must not silently fall back to a
// default. On any error the config is nil.
func Parse(b []byte) (*Config, error) {
	c, fieldErrs, err := parse(b)
	switch {
	case err != nil:
		return nil, err
	case len(fieldErrs) > 0:
		return nil, fieldErrs
	}
	return c, nil
}

// parse decodes what it can and returns the field problems apart, so
// that Load reports them together with every other problem.
func parse(b []byte) (*Config, Errors, error) {
	if err := json.Unmarshal(b, new(any)); err != nil {
		if se, ok := err.(*json.SyntaxError); ok {
			line := bytes.Count(b[:se.Offset], []byte("\n")) + 1
			return nil, nil, fmt.Errorf("line %d: %v", line, err)
		}
		return nil, nil, err
	}
	var raw any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // numbers stay as written: a 64-bit PN survives the second decode
	if err := d.Decode(&raw); err != nil {
		return nil, nil, err
	}
	// fieldErrors drops every leaf it reports, and "" for a typed value
	// (unset), so that the typed decode below cannot stop at a bad value
	// and hide the problems after it: encoding/json gives up at the first
	// UnmarshalText error.
	errs, _ := fieldErrors(raw, reflect.TypeOf(Config{}), "")
	clean, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, err
	}
	var c Config
	if err := json.Unmarshal(clean, &c); err != nil {
		return nil, nil, fmt.Errorf("config decode after the field check: %w", err)
	}
	return &c, errs, nil
}

// Load reads, parses and checks a config file; key files are read
// relative to its directory (their paths stay as written).
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, fieldErrs, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.SetKeyDir(filepath.Dir(path))
	if c.hasSealed() {
		s, err := sealerBeside(path)
		if err != nil {
			return nil, err
		}
		if err := c.Unseal(s); err != nil {
			return nil, err
		}
	}
	if errs := append(fieldErrs, c.Check()...); len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// Link is the link named name, nil if there is none.
func (c *Config) Link(name string) *Link {
	for i := range c.Links {
		if c.Links[i].Name == name {
			return &c.Links[i]
		}
	}
	return nil
}

// Defaults of the optional fields.
const (
	DefaultCipher  = macsec.GCMAES128
	DefaultMTU     = 1500
	EAPOLEtherType = 0x888e
)

// Suite is the link's cipher suite.
func (l *Link) Suite() macsec.CipherSuite {
	if l.Cipher == 0 {
		return DefaultCipher
	}
	return l.Cipher
}

// SendsSCI reports whether the SecTAG carries the SCI.
func (l *Link) SendsSCI() bool { return l.SendSCI == nil || *l.SendSCI }

// ShouldSecure reports the should-secure policy.
func (l *Link) ShouldSecure() bool { return l.Policy == ShouldSecure }

// LinkFaultPassthrough reports whether line faults take the plaintext port down.
func (l *Link) LinkFaultPassthrough() bool { return l.LinkFault == nil || *l.LinkFault }

// DatapathChoice is the configured backend, auto when unset.
func (l *Link) DatapathChoice() Datapath {
	if l.Datapath == "" {
		return DatapathAuto
	}
	return l.Datapath
}

// Effective is the link with its defaults written out, so that links
// that run alike compare equal: an unset cipher and gcm-aes-128, an
// unset policy and must-secure, key chain times in any time zone.
func (l Link) Effective() Link {
	l.Cipher = l.Suite()
	v := l.ValidateMode()
	l.Validate = &v
	if l.Policy == "" {
		l.Policy = MustSecure
	}
	l.Datapath = l.DatapathChoice()
	sci, fault := l.SendsSCI(), l.LinkFaultPassthrough()
	l.SendSCI, l.LinkFault = &sci, &fault
	l.MTU = l.PlainMTU()
	if l.MKA != nil {
		m := *l.MKA
		p := int(m.KeyServerPriority())
		m.Priority = &p
		m.KeyChain = make([]CAKEntry, len(l.MKA.KeyChain))
		for i, e := range l.MKA.KeyChain {
			e.Start, e.End = e.Start.UTC(), e.End.UTC()
			m.KeyChain[i] = e
		}
		l.MKA = &m
	}
	return l
}

// PlainMTU is the plaintext MTU.
func (l *Link) PlainMTU() int {
	if l.MTU == 0 {
		return DefaultMTU
	}
	return l.MTU
}

// LineMTU is the MTU the line port needs to carry the plaintext MTU
// protected: plus the SecTAG and ICV, plus the tags in clear.
func (l *Link) LineMTU() int {
	return l.PlainMTU() + macsec.Overhead(l.SendsSCI()) + 4*l.VLANsInClear
}

// ValidateMode is the link's validateFrames.
func (l *Link) ValidateMode() macsec.ValidateMode {
	if l.Validate == nil {
		return macsec.ValidateStrict
	}
	return *l.Validate
}

// EAPOLTypes are the EtherTypes that go to key agreement on the line port.
func (l *Link) EAPOLTypes() []uint16 {
	t := []uint16{EAPOLEtherType}
	if v := uint16(l.EAPOLEtherType); v != 0 && v != EAPOLEtherType {
		t = append(t, v)
	}
	return t
}

// EAPOLSendType is the EtherType MKPDUs are sent with: the alternate one
// when configured (the provider filters 0x888E), else 0x888E.
func (l *Link) EAPOLSendType() uint16 {
	t := l.EAPOLTypes()
	return t[len(t)-1]
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Check validates the whole config and returns every problem. The values
// themselves were checked when they were decoded: Check holds the rules
// that span fields, and the ranges of plain numbers.
func (c *Config) Check() Errors {
	var errs Errors
	add := func(path, f string, a ...any) { errs = append(errs, Error{path, fmt.Sprintf(f, a...)}) }
	checkSystem(c, add)
	names, ports := map[string]int{}, map[string]string{}
	for i := range c.Links {
		l := &c.Links[i]
		p := fmt.Sprintf("links[%d]", i)
		if l.Name == "" {
			add(p+".name", "missing")
		} else if j, dup := names[l.Name]; dup {
			add(p+".name", "%q is also links[%d]'s name", l.Name, j)
		}
		names[l.Name] = i
		for _, port := range []struct{ field, ifname string }{{"plain", l.Plain}, {"line", l.Line}} {
			switch {
			case port.ifname == "":
				add(p+"."+port.field, "missing: name the interface")
			case ports[port.ifname] != "":
				add(p+"."+port.field, "interface %s is already %s", port.ifname, ports[port.ifname])
			default:
				ports[port.ifname] = p + "." + port.field
			}
		}
		if l.Offset != 0 && l.Offset != 30 && l.Offset != 50 {
			add(p+".confidentiality_offset", "%d: want 0, 30 or 50", l.Offset)
		}
		if l.IntegrityOnly && l.Offset != 0 {
			add(p+".confidentiality_offset", "integrity_only links have no confidentiality offset")
		}
		if l.ReplayWindow > 1<<30 {
			add(p+".replay_window", "%d: want 0..%d", l.ReplayWindow, 1<<30)
		}
		if l.VLANsInClear < 0 || l.VLANsInClear > 2 {
			add(p+".vlans_in_clear", "%d: want 0, 1 or 2", l.VLANsInClear)
		}
		if l.MTU != 0 && (l.MTU < 576 || l.MTU > 9150) {
			add(p+".mtu", "%d: want 576..9150 (the line needs up to 40 more)", l.MTU)
		}
		if l.Workers < 0 || l.Workers > 64 {
			add(p+".workers", "%d: want 1..64 (0: the default, 1)", l.Workers)
		}
		checkInClear(l, p, add)
		switch {
		case l.MKA != nil && l.Static != nil:
			add(p, "give mka or static_keys, not both")
		case l.MKA != nil:
			checkMKA(l.MKA, c.keyDir, p+".mka", add)
		case l.Static != nil:
			c.checkStatic(l, p+".static_keys", add)
		default:
			add(p+".mka", "missing: key the link with mka (a key chain of CKN/CAK pairs) or static_keys")
		}
	}
	return errs
}

func (c *Config) checkStatic(l *Link, p string, add func(string, string, ...any)) {
	s := l.Static
	suite := l.Suite()
	checkSA(suite, &s.TX, c.keyDir, p+".tx", add)
	if len(s.RX) == 0 {
		add(p+".rx", "missing: at least one receive SC (the peer's SCI and SAs)")
	}
	scis := map[macsec.SCI]bool{}
	for i := range s.RX {
		rp := fmt.Sprintf("%s.rx[%d]", p, i)
		switch sci := s.RX[i].SCI; {
		case sci == 0:
			add(rp+".sci", "missing: the peer's SCI, 16 hex digits (MAC address and 2-byte port)")
		case scis[sci]:
			add(rp+".sci", "%s is listed twice", sci)
		default:
			scis[sci] = true
		}
		if len(s.RX[i].SAs) == 0 {
			add(rp+".sas", "missing: at least one SA")
		}
		ans := map[int]bool{}
		for j := range s.RX[i].SAs {
			sp := fmt.Sprintf("%s.sas[%d]", rp, j)
			if ans[s.RX[i].SAs[j].AN] {
				add(sp+".an", "AN %d is used twice in this SC", s.RX[i].SAs[j].AN)
			}
			ans[s.RX[i].SAs[j].AN] = true
			checkSA(suite, &s.RX[i].SAs[j], c.keyDir, sp, add)
		}
	}
}

func checkSA(suite macsec.CipherSuite, sa *SA, dir, p string, add func(string, string, ...any)) {
	if sa.AN < 0 || sa.AN > 3 {
		add(p+".an", "%d: want 0..3", sa.AN)
	}
	switch {
	case sa.Key != "" && sa.KeyFile != "":
		add(p, "give key or key_file, not both")
	case sa.Key == "" && sa.KeyFile == "":
		add(p+".key", "missing: give key (hex) or key_file")
	default:
		if _, err := sa.LoadKey(suite, dir); err != nil {
			field := ".key"
			if sa.KeyFile != "" {
				field = ".key_file"
			}
			add(p+field, "%v", err)
		}
	}
	if suite.XPN() {
		if len(sa.SSCI) != 4 {
			add(p+".ssci", "%s needs an SSCI of 8 hex digits", suite)
		}
		if len(sa.Salt) != 12 {
			add(p+".salt", "%s needs a salt of 24 hex digits", suite)
		}
	} else if sa.SSCI != nil || sa.Salt != nil {
		add(p, "ssci and salt are for the XPN cipher suites only")
	}
	if !suite.XPN() && sa.PN > 0xffffffff {
		add(p+".pn", "%d: %s packet numbers are 32 bits", sa.PN, suite)
	}
}

// LoadKey returns the SA's key; a relative key_file is read from dir
// (Config.KeyDir). A key file must not be readable by group or others.
// Errors never contain key material.
func (sa *SA) LoadKey(suite macsec.CipherSuite, dir string) (macsec.Key, error) {
	return loadKey(sa.Key, keyPath(dir, sa.KeyFile), suite.KeyLen())
}

// loadKey reads a hex key given inline or in a file that only its owner
// may read.
func loadKey(inline, file string, lens ...int) (macsec.Key, error) {
	h := inline
	if file != "" {
		st, err := os.Stat(file)
		if err != nil {
			return macsec.Key{}, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return macsec.Key{}, fmt.Errorf("%s has mode %04o: a key file must be 0600 (chmod 600 %s)", file, st.Mode().Perm(), file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return macsec.Key{}, err
		}
		h = strings.TrimSpace(string(b))
		clear(b)
	}
	return macsec.ParseKeyHex(h, lens...)
}

// Params turns a checked SA into codec parameters; dir is Config.KeyDir.
func (sa *SA) Params(suite macsec.CipherSuite, dir string) (macsec.SAParams, error) {
	k, err := sa.LoadKey(suite, dir)
	if err != nil {
		return macsec.SAParams{}, err
	}
	p := macsec.SAParams{AN: uint8(sa.AN), Key: k, PN: max(sa.PN, 1)}
	if suite.XPN() && len(sa.SSCI) == 4 {
		p.SSCI = binary.BigEndian.Uint32(sa.SSCI)
	}
	if suite.XPN() {
		copy(p.Salt[:], sa.Salt)
	}
	return p, nil
}

func validHostname(h string) bool {
	if len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
