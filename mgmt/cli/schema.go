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
// field appears in the CLI with its help text below.

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

// help is one line per configuration path; schema_test checks every leaf
// has one. A leaf's values, when it has a fixed set, come from values.
var help = map[string]string{
	"system":                         "System-wide settings: name, management access, users",
	"system.hostname":                "Host name (letters, digits, '-')",
	"system.management":              "Management address that SSH listens on",
	"system.management.interface":    "Management port (or the plaintext port, with a VLAN)",
	"system.management.vlan":         "802.1Q VLAN ID for in-band management, 1..4094",
	"system.management.address":      "Address with prefix length, such as 192.0.2.10/24",
	"system.management.gateway":      "Default gateway for management traffic",
	"system.ssh":                     "SSH server",
	"system.ssh.port":                "TCP port, default 22",
	"system.ssh.idle_timeout":        "Idle session timeout, such as 15m (0: none)",
	"system.users":                   "Users who may log in",
	"system.users.role":              "admin (may configure) or operator (show only)",
	"system.users.password":          "Password (prompted without echo), or a bcrypt hash from 'secwire passwd'",
	"system.users.ssh_keys":          "SSH public key, an authorized_keys line in quotes",
	"system.ntp":                     "Clock synchronisation from NTP servers",
	"system.ntp.server":              "NTP server by IP address (give several)",
	"system.ntp.server.nts":          "Require Network Time Security (RFC 8915) from this server",
	"system.ntp.server.ca_file":      "NTS: CA certificate (PEM) on the config partition that signed the server's",
	"system.ntp.server.server_name":  "NTS: name in the server's certificate (default its address)",
	"system.syslog":                  "Remote syslog to collectors (RFC 5424)",
	"system.syslog.host":             "Collector by IP address",
	"system.syslog.host.port":        "Collector port (default 514, tls 6514)",
	"system.syslog.host.transport":   "udp (default), tcp or tls",
	"system.syslog.host.severity":    "Lowest severity sent (default info)",
	"system.syslog.host.ca_file":     "TLS: CA certificate (PEM) on the config partition that signed the collector's",
	"system.syslog.host.server_name": "TLS: name in the collector's certificate (default its address)",
	"system.syslog.buffer":           "Messages kept per TCP/TLS collector while it is down, 1..100000 (default 1000)",
	"system.metrics":                 "Prometheus metrics endpoint on the management address (off by default)",
	"system.metrics.port":            "TCP port, such as 9100",
	"links":                          "MACsec links: a plaintext port, a line port and their SecY",
	"links.plain":                    "Plaintext port, towards the customer's router",
	"links.line":                     "Line port, towards the provider circuit",
	"links.cipher":                   "Cipher suite",
	"links.send_sci":                 "Include the SCI in the SecTAG (default true)",
	"links.validate":                 "validateFrames: strict (default), check or disabled",
	"links.replay_window":            "Replay window in packets, 0..1073741824 (0: strict order)",
	"links.confidentiality_offset":   "Octets left in clear after the SecTAG: 0, 30 or 50",
	"links.integrity_only":           "Protect integrity only, no encryption",
	"links.policy":                   "must-secure (default: nothing crosses without SAs) or should-secure",
	"links.vlans_in_clear":           "VLAN tags left ahead of the SecTAG: 0, 1 or 2",
	"links.mtu":                      "Plaintext MTU, 576..9150 (default 1500)",
	"links.link_fault_passthrough":   "Take the plaintext port down while the line is down or unsecured (default true)",
	"links.datapath":                 "Datapath backend (default auto: offload, else kernel, else software)",
	"links.eapol_ethertype":          "Alternate EAPOL EtherType in hex, for circuits that filter 0x888E",
	"links.workers":                  "Software datapath workers per direction, 1..64",
	"links.mka":                      "MACsec Key Agreement with pre-shared CAKs",
	"links.mka.key_chain":            "CKN (hex, 2..64 digits) and its CAK",
	"links.mka.key_chain.cak":        "CAK, 32 or 64 hex digits (prompted without echo)",
	"links.mka.key_chain.start":      "Valid from, RFC 3339 (2026-12-01T00:00:00Z)",
	"links.mka.key_chain.end":        "Valid until, RFC 3339",
	"links.mka.priority":             "Key server priority, 0..255 (lower wins; default 16)",
	"links.mka.eapol_destination":    "MKPDU destination MAC (default 01:80:c2:00:00:03), or auto to find one the circuit passes",
	"links.mka.transmit_interval":    "MKA hello time, 500ms..6s (default 2s); the peer should match",
	"links.mka.fallback_key":         "CKN and CAK used only while no key chain CA can secure the link",
	"links.mka.fallback_key.ckn":     "Fallback CKN (hex, 2..64 digits), not one of the key chain's",
	"links.mka.fallback_key.cak":     "Fallback CAK, 32 or 64 hex digits (prompted without echo)",
	"links.mka.rekey_interval":       "Periodic rekey interval, such as 24h (0: none)",
	"links.mka.icv_indicator":        "Send the ICV Indicator parameter set (some Cisco platforms)",

	"links.protocols_in_clear":             "Control protocols that cross in clear both ways: lacp, lldp, pause or your own",
	"links.protocols_in_clear.ethertype":   "Your own protocol's EtherType in hex, such as 0x88f7",
	"links.protocols_in_clear.destination": "Your own protocol's destination, a group MAC address",
}

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
