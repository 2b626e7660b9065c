package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// System holds box-wide settings: name, management access and the users
// who may log in.
type System struct {
	// Host name (letters, digits, '-').
	// Default: none
	//
	// At most 63 characters.
	Hostname string `json:"hostname,omitempty"`
	// Management address that SSH listens on.
	// Default: none
	Management *Management `json:"management,omitempty"`
	// SSH server.
	SSH *SSH `json:"ssh,omitempty"`
	// Users who may log in.
	// Default: none
	//
	// A user needs a password or a key.
	Users []User `json:"users,omitempty"`
	// Clock synchronisation from NTP servers.
	// Default: none
	NTP *NTP `json:"ntp,omitempty"`
	// Remote syslog to collectors (RFC 5424).
	// Default: none
	Syslog *Syslog `json:"syslog,omitempty"`
	// Prometheus metrics endpoint on the management address (off by default).
	// Default: off
	Metrics *Metrics `json:"metrics,omitempty"`
}

// Management is the address SSH listens on: on a management port, or on
// a VLAN of the plaintext port (in-band). Never on the line port, which
// carries MACsec only.
type Management struct {
	// Management port (or the plaintext port, with a VLAN).
	// Default: (required)
	//
	// Never the line port.
	Interface string `json:"interface"`
	// 802.1Q VLAN ID for in-band management, 1..4094.
	// Default: none (untagged)
	VLAN int `json:"vlan,omitempty"`
	// Address with prefix length, such as 192.0.2.10/24.
	// Default: (required)
	Address string `json:"address"`
	// Default gateway for management traffic.
	// Default: none
	Gateway string `json:"gateway,omitempty"`
}

// SSH tunes the SSH server.
type SSH struct {
	// TCP port, default 22.
	// Default: `22`
	Port int `json:"port,omitempty"`
	// Idle session timeout, such as 15m (0: none).
	// Default: `15m`
	//
	// A duration from `1m` to `24h`, or `"0"`: never.
	IdleTimeout string `json:"idle_timeout,omitempty"`
}

// User is someone who may log in. Role admin may configure; operator may
// only look. The password is stored as a bcrypt hash in crypt format
// ($2a$...), as `secwire passwd` prints it.
type User struct {
	// Login name.
	// Default: (required)
	Name string `json:"name"`
	// admin (may configure) or operator (show only).
	// Default: (required)
	Role string `json:"role"`
	// Password (prompted without echo), or a bcrypt hash from 'secwire passwd'.
	// Default: none
	//
	// The file holds the bcrypt hash in crypt format (`$2a$...`).
	Password string `json:"password,omitempty"`
	// SSH public key, an authorized_keys line in quotes.
	// Default: none
	//
	// The file holds a list of authorized_keys lines.
	SSHKeys []string `json:"ssh_keys,omitempty"`
}

// Roles are the user classes.
var Roles = []string{"admin", "operator"}

// Defaults of the system settings.
const (
	DefaultSSHPort     = 22
	DefaultIdleTimeout = 15 * time.Minute
)

// SSHPort is the configured or default SSH port.
func (s *System) SSHPort() int {
	if s.SSH == nil || s.SSH.Port == 0 {
		return DefaultSSHPort
	}
	return s.SSH.Port
}

// IdleTimeout is how long an idle session lasts; 0 is forever.
func (s *System) IdleTimeout() time.Duration {
	if s.SSH == nil || s.SSH.IdleTimeout == "" {
		return DefaultIdleTimeout
	}
	d, _ := parseIdle(s.SSH.IdleTimeout)
	return d
}

// User returns the named user, nil if there is none.
func (s *System) User(name string) *User {
	for i := range s.Users {
		if s.Users[i].Name == name {
			return &s.Users[i]
		}
	}
	return nil
}

// HasAdmin reports whether anyone can configure the box; without one the
// console runs the first-boot setup.
func (s *System) HasAdmin() bool {
	for _, u := range s.Users {
		if u.Role == "admin" && (u.Password != "" || len(u.SSHKeys) > 0) {
			return true
		}
	}
	return false
}

// Prefix is the management address (Check has accepted it).
func (m *Management) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(m.Address)
	return p
}

func parseIdle(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute || d > 24*time.Hour {
		return 0, fmt.Errorf("%q: want a duration from 1m to 24h, such as 15m, or 0 for none", s)
	}
	return d, nil
}

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// HashPassword returns the bcrypt hash of a password, in crypt format.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", fmt.Errorf("too short: at least 8 characters")
	}
	if len(pw) > 72 {
		return "", fmt.Errorf("too long: at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(h), err
}

// CheckPassword reports whether pw matches the user's stored hash.
func (u *User) CheckPassword(pw string) bool {
	return u.Password != "" && bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(pw)) == nil
}

func checkSystem(c *Config, add func(string, string, ...any)) {
	s := &c.System
	if h := s.Hostname; h != "" && !validHostname(h) {
		add("system.hostname", "%q: use letters, digits and '-', at most 63 characters", h)
	}
	if m := s.Management; m != nil {
		p := "system.management"
		if m.Interface == "" {
			add(p+".interface", "missing: name the management port (or the plaintext port with a vlan)")
		}
		for i, l := range c.Links {
			if m.Interface != "" && m.Interface == l.Line {
				add(p+".interface", "%s is links[%d]'s line port, which carries MACsec only", m.Interface, i)
			}
			if m.Interface != "" && m.Interface == l.Plain && m.VLAN == 0 {
				add(p+".vlan", "missing: in-band management on plaintext port %s needs a VLAN, so that it is kept apart from the traffic", m.Interface)
			}
		}
		if m.VLAN < 0 || m.VLAN > 4094 {
			add(p+".vlan", "%d: want 1..4094 (0: untagged)", m.VLAN)
		}
		pfx, err := netip.ParsePrefix(m.Address)
		if m.Address == "" {
			add(p+".address", "missing: an address with prefix length, such as 192.0.2.10/24")
		} else if err != nil || pfx.Addr().IsUnspecified() || pfx.Addr().IsMulticast() {
			add(p+".address", "%q: want an address with prefix length, such as 192.0.2.10/24", m.Address)
		}
		if m.Gateway != "" {
			gw, err := netip.ParseAddr(m.Gateway)
			switch {
			case err != nil:
				add(p+".gateway", "%q: want an IP address", m.Gateway)
			case pfx.IsValid() && !pfx.Masked().Contains(gw):
				add(p+".gateway", "%s is not in %s", gw, pfx.Masked())
			}
		}
	}
	if x := s.SSH; x != nil {
		if x.Port < 0 || x.Port > 65535 {
			add("system.ssh.port", "%d: want 1..65535 (0: the default, 22)", x.Port)
		}
		if x.IdleTimeout != "" {
			if _, err := parseIdle(x.IdleTimeout); err != nil {
				add("system.ssh.idle_timeout", "%v", err)
			}
		}
	}
	checkNOC(s, add)
	seen := map[string]int{}
	for i := range s.Users {
		u := &s.Users[i]
		p := fmt.Sprintf("system.users[%d]", i)
		if !userName.MatchString(u.Name) {
			add(p+".name", "%q: want a lower-case letter or '_', then up to 31 of a-z 0-9 _ . -", u.Name)
		} else if j, dup := seen[u.Name]; dup {
			add(p+".name", "%q is also users[%d]", u.Name, j)
		}
		seen[u.Name] = i
		if u.Role != "admin" && u.Role != "operator" {
			add(p+".role", "%q: want %s", u.Role, strings.Join(Roles, " or "))
		}
		if u.Password != "" {
			if _, err := bcrypt.Cost([]byte(u.Password)); err != nil {
				add(p+".password", "not a bcrypt hash ($2a$...): make one with 'secwire passwd'")
			}
		}
		if u.Password == "" && len(u.SSHKeys) == 0 {
			add(p, "no password and no ssh key: %s could never log in", u.Name)
		}
		for j, k := range u.SSHKeys {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				add(fmt.Sprintf("%s.ssh_keys[%d]", p, j), "not an OpenSSH public key (a line of authorized_keys, such as ssh-ed25519 AAAA... comment)")
			}
		}
	}
}
