package kernel

import (
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"
)

// RemoveStale removes what a run that never stopped (killed, crashed, a
// host that lost power) left of the kernel datapath named name on the
// line port: the macsec link name on line and its bridge "br"+name. Left
// in place, the stale bridge keeps forwarding with the old SAs, and a new
// macsec link of that name cannot be created. An interface of either name
// that is not what the datapath creates (another kind of link, another
// parent, a bridge with ports other than the link and plain) is left
// alone and reported: it belongs to someone else.
func RemoveStale(name, line, plain string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lineLink, err := netlink.LinkByName(line)
	if err != nil {
		return nil // no line port: starting the link says so
	}
	var stale netlink.Link
	if l, err := netlink.LinkByName(name); err == nil {
		a := l.Attrs()
		if l.Type() != "macsec" || a.ParentIndex != lineLink.Attrs().Index {
			return fmt.Errorf("interface %s exists but is not a macsec link on line port %s (%s link, parent ifindex %d): delete or rename it, secwire needs the name", name, line, l.Type(), a.ParentIndex)
		}
		stale = l
	}
	bridge := "br" + name
	if b, err := netlink.LinkByName(bridge); err == nil {
		if b.Type() != "bridge" {
			return fmt.Errorf("interface %s exists and is a %s, not secwire's bridge: delete or rename it", bridge, b.Type())
		}
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		for _, p := range links {
			a := p.Attrs()
			if a.MasterIndex != b.Attrs().Index || a.Name == plain || (stale != nil && a.Index == stale.Attrs().Index) {
				continue
			}
			return fmt.Errorf("bridge %s has port %s, which secwire never adds: remove it from the bridge (ip link set %s nomaster) or delete the bridge", bridge, a.Name, a.Name)
		}
		// The bridge goes first: the plaintext port stops forwarding at once.
		if err := netlink.LinkDel(b); err != nil {
			return fmt.Errorf("delete stale bridge %s: %w", bridge, err)
		}
		log.Warn("removed the bridge a previous run left behind", "bridge", bridge)
	}
	if stale != nil {
		if err := netlink.LinkDel(stale); err != nil {
			return fmt.Errorf("delete stale macsec link %s: %w", name, err)
		}
		log.Warn("removed the macsec link a previous run left behind, with its SAs", "link", name, "line", line)
	}
	return nil
}
