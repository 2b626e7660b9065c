// Package plane keeps the appliance's management plane in step with the
// running config: the host name, the management address (on the
// management port, or on a VLAN of the plaintext port) and the SSH
// listener on that address only.
package plane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/mgmt/sshd"
)

// Plane applies the management settings.
type Plane struct {
	SSH *sshd.Server
	Log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context
	applied string // the settings in force, to skip no-op changes
	stop    context.CancelFunc
	link    string // the interface the address is on
	vlan    string // a VLAN link we created
}

// Start applies c and follows later changes through Apply.
func (p *Plane) Start(ctx context.Context, c *config.Config) {
	p.ctx = ctx
	p.Apply(c)
}

// Apply makes the management plane match c. Errors are logged: a bad
// management address must not take the links down.
func (p *Plane) Apply(c *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := c.System.Hostname; h != "" {
		unix.Sethostname([]byte(h))
	}
	m := c.System.Management
	key := fmt.Sprintf("%+v %d", m, c.System.SSHPort())
	if m != nil {
		key = fmt.Sprintf("%+v %d", *m, c.System.SSHPort())
	}
	if key == p.applied {
		return
	}
	p.applied = key
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
	p.unconfigure()
	if m == nil {
		p.Log.Info("no management address: SSH is off (set system management)")
		return
	}
	if err := p.configure(m); err != nil {
		p.Log.Error("management address", "err", err)
		return
	}
	addr := net.JoinHostPort(m.Address.Addr().String(), strconv.Itoa(c.System.SSHPort()))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.Log.Error("ssh", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.stop = cancel
	go func() {
		if err := p.SSH.Serve(ctx, ln); err != nil {
			p.Log.Error("ssh", "err", err)
		}
	}()
}

func (p *Plane) configure(m *config.Management) error {
	l, err := netlink.LinkByName(m.Interface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", m.Interface, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", m.Interface, err)
	}
	if m.VLAN != 0 {
		name := fmt.Sprintf("%s.%d", m.Interface, m.VLAN)
		v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: l.Attrs().Index}, VlanId: m.VLAN}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("VLAN %d on %s: %w", m.VLAN, m.Interface, err)
		}
		p.vlan = name
		if l, err = netlink.LinkByName(name); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	pfx := m.Address
	a := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())}}
	if err := netlink.AddrReplace(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", m.Address, l.Attrs().Name, err)
	}
	p.link = l.Attrs().Name
	if gw := m.Gateway; gw.IsValid() {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	p.Log.Info("management address", "interface", p.link, "address", m.Address.String(), "gateway", addrOrNone(m.Gateway))
	return nil
}

// unconfigure removes what configure set up.
func (p *Plane) unconfigure() {
	if p.vlan != "" {
		if l, err := netlink.LinkByName(p.vlan); err == nil {
			netlink.LinkDel(l)
		}
		p.vlan = ""
	}
	if p.link != "" {
		if l, err := netlink.LinkByName(p.link); err == nil {
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
			for _, a := range addrs {
				if a.IP.IsGlobalUnicast() {
					netlink.AddrDel(l, &a)
				}
			}
		}
		p.link = ""
	}
}

// addrOrNone is an address for the log, "none" when unset.
func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
