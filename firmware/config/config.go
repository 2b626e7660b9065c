// Package config is secwire's one typed configuration model: what the
// appliance stores on its config partition and what `secwire daemon
// --config FILE` reads. Each value is parsed into its type once, when the
// config is decoded (types.go); Check adds the rules that span fields.
// Load reports every problem of both with its field path;
// docs/config.md describes the format.
package config

//go:generate go run ./internal/gendoc

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
//
// The doc comment of each field of the model is its only description:
// its first line is the CLI's help, a "Default:" paragraph and the rest
// fill the tables of docs/config.md. `go generate ./...` writes both
// (internal/gendoc), and gendoc's test fails while they are out of date.
type Config struct {
	// System-wide settings: name, management access, users.
	System System `json:"system"`
	// MACsec links: a plaintext port, a line port and their SecY.
	Links []Link `json:"links,omitempty"`

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
	// Link name, used in logs and show output.
	// Default: (required)
	Name string `json:"name"`
	// Plaintext port, towards the customer's router.
	// Default: (required)
	Plain string `json:"plain"`
	// Line port, towards the provider circuit.
	// Default: (required)
	Line string `json:"line"`

	// Cipher suite.
	// Default: `gcm-aes-128`
	Cipher macsec.CipherSuite `json:"cipher,omitempty"`
	// Include the SCI in the SecTAG (default true).
	// Default: `true`
	//
	// 8 more bytes per frame; `false` sends ES=1 frames whose SCI is the
	// line MAC with port 1.
	SendSCI *bool `json:"send_sci,omitempty"`
	// validateFrames: strict (default), check or disabled.
	// Default: `strict`
	Validate *macsec.ValidateMode `json:"validate,omitempty"`
	// Replay window in packets, 0..1073741824 (0: strict order).
	// Default: `0`
	//
	// With 0 the software datapath still sends every SA's frames in PN
	// order whatever its `workers`, so a far end with window 0 accepts
	// them all. As IEEE 802.1AE specifies, a repeated PN inside the window
	// is accepted.
	ReplayWindow uint32 `json:"replay_window,omitempty"`
	// Octets left in clear after the SecTAG: 0, 30 or 50.
	// Default: `0`
	//
	// They are still integrity protected.
	Offset int `json:"confidentiality_offset,omitempty"`
	// Protect integrity only, no encryption.
	// Default: `false`
	//
	// Frames are sent with E=0, C=0.
	IntegrityOnly bool `json:"integrity_only,omitempty"`
	// must-secure (default: nothing crosses without SAs) or should-secure.
	// Default: `must-secure`
	//
	// `should-secure`: frames cross IN CLEAR while no SA is up; `show
	// macsec` says so loudly.
	Policy Policy `json:"policy,omitempty"`
	// VLAN tags left ahead of the SecTAG: 0, 1 or 2.
	// Default: `0`
	//
	// For provider circuits that switch on them. Both ends must agree;
	// customer frames without that many tags are dropped and counted.
	VLANsInClear int `json:"vlans_in_clear,omitempty"`
	// Plaintext MTU, 576..9150 (default 1500).
	// Default: `1500`
	//
	// The line needs `mtu` + 24 (no SCI) or 32 (SCI) + 4 per tag in clear;
	// the daemon raises the line MTU when it can and otherwise logs the
	// shortfall. Frames that do not fit are dropped and counted
	// (OutPktsTooLong), never fragmented or sent in clear.
	MTU int `json:"mtu,omitempty"`
	// Take the plaintext port down while the line is down or unsecured (default true).
	// Default: `true`
	//
	// The plaintext port also goes down when the daemon stops, so the
	// customer's router fails over.
	LinkFault *bool `json:"link_fault_passthrough,omitempty"`
	// Datapath backend (default auto: offload, else kernel, else software).
	// Default: `auto`
	//
	// `auto`: hardware offload (`mac`, then `phy`) where the driver table
	// and the NIC allow it for the cipher suite and the driver keeps clear
	// line frames off the plaintext port (in Linux 6.12 only `mlx5_core`;
	// README, "Why most offload NICs are not used"), else the kernel's
	// macsec driver, else the Go datapath (README, "MACsec offload by
	// NIC"); `show macsec` says which runs and why. `offload-mac`,
	// `offload-phy`, `kernel` or `software` forces one; a forced offload
	// on a driver that would pass clear line frames is refused (the link
	// does not start). The kernel backends need `confidentiality_offset`
	// 0, `vlans_in_clear` 0 and `must-secure`, a line MTU of `mtu` + 32,
	// and ignore `workers`.
	Datapath Datapath `json:"datapath,omitempty"`
	// Alternate EAPOL EtherType in hex, for circuits that filter 0x888E.
	// Default: none
	//
	// Such as `0x876f`; 0x888E always goes to key agreement too.
	EAPOLEtherType EtherType `json:"eapol_ethertype,omitempty"`
	// Software datapath workers per direction, 1..64.
	// Default: `1`
	//
	// The workers of a direction share the ports' rings: they take frames
	// and PNs in arrival order, run the crypto in parallel and transmit in
	// arrival order, so frames leave in the order they came and in PN
	// order (no `replay_window` needed at the far end). More workers help
	// where the crypto is the bottleneck (large frames, several cores).
	Workers int `json:"workers,omitempty"`
	// Control protocols that cross in clear both ways: lacp, lldp, pause or your own.
	// Default: none
	//
	// They cross whatever the SA state. Only the Go datapath can do this:
	// `auto` then picks it, and a forced kernel or offload `datapath` is
	// an error.
	ProtocolsInClear []ProtocolInClear `json:"protocols_in_clear,omitempty"`

	// MACsec Key Agreement with pre-shared CAKs.
	// Default: one of `mka` and `static_keys`
	//
	// The normal way to key a link.
	MKA *MKA `json:"mka,omitempty"`
	// SAKs given directly, as with ip macsec (labs, interop).
	// Default: one of `mka` and `static_keys`
	Static *StaticKeys `json:"static_keys,omitempty"`
}

// StaticKeys gives SAKs directly, as `ip macsec` does, for labs and interop.
type StaticKeys struct {
	// Transmit SCI, 16 hex digits.
	// Default: the line MAC with port 1
	SCI macsec.SCI `json:"sci,omitempty"`
	// The transmit SA.
	// Default: (required)
	TX SA `json:"tx"`
	// The peer's secure channels.
	// Default: (required)
	RX []RxSC `json:"rx"`
}

// RxSC is one peer's secure channel.
type RxSC struct {
	// The peer's SCI, 16 hex digits.
	// Default: (required)
	SCI macsec.SCI `json:"sci"`
	// The SAs the peer transmits with.
	// Default: (required)
	SAs []SA `json:"sas"`
}

// SA is one secure association. The key is inline hex (labs) or a file
// of hex readable only by its owner (mode 0600).
type SA struct {
	// Association number, 0..3.
	// Default: `0`
	AN int `json:"an"`
	// SAK in hex, inline (labs).
	// Default: one of `key` and `key_file`
	Key string `json:"key,omitempty"`
	// File holding the SAK in hex, mode 0600, relative to the config file.
	// Default: one of `key` and `key_file`
	KeyFile string `json:"key_file,omitempty"`
	// Next PN to send (tx), or lowest PN accepted (rx).
	// Default: `1`
	PN uint64 `json:"pn,omitempty"`
	// XPN: SSCI, 8 hex digits.
	// Default: (XPN suites: required)
	SSCI Hex `json:"ssci,omitempty"`
	// XPN: salt, 24 hex digits.
	// Default: (XPN suites: required)
	Salt Hex `json:"salt,omitempty"`
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
