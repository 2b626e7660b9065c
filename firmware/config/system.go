package config

import (
	"fmt"
	"net/netip"
	"regexp"
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
	Address netip.Prefix `json:"address"`
	// Default gateway for management traffic.
	// Default: none
	Gateway netip.Addr `json:"gateway,omitzero"`
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
	IdleTimeout IdleTime `json:"idle_timeout,omitzero"`
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
	Role Role `json:"role"`
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
	if s.SSH == nil || !s.SSH.IdleTimeout.Set {
		return DefaultIdleTimeout
	}
	return s.SSH.IdleTimeout.D
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
		if u.Role == RoleAdmin && (u.Password != "" || len(u.SSHKeys) > 0) {
			return true
		}
	}
	return false
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
		pfx := m.Address
		if !pfx.IsValid() {
			add(p+".address", "missing: an address with prefix length, such as 192.0.2.10/24")
		} else if pfx.Addr().IsUnspecified() || pfx.Addr().IsMulticast() {
			add(p+".address", "%q: want an address with prefix length, such as 192.0.2.10/24", pfx)
		}
		if gw := m.Gateway; gw.IsValid() && pfx.IsValid() && !pfx.Masked().Contains(gw) {
			add(p+".gateway", "%s is not in %s", gw, pfx.Masked())
		}
	}
	if x := s.SSH; x != nil {
		if x.Port < 0 || x.Port > 65535 {
			add("system.ssh.port", "%d: want 1..65535 (0: the default, 22)", x.Port)
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
		if u.Role == "" {
			add(p+".role", "missing: admin (may configure) or operator (may only look)")
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
