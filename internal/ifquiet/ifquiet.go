// Package ifquiet keeps the host's own IP stack off the datapath's
// interfaces. An interface that is up with IPv6 enabled sends neighbour
// discovery and MLD reports by itself; on a line port those would leave
// in clear, beside the MACsec frames. Datapath interfaces carry no
// addresses at all.
package ifquiet

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// Quiet disables IPv6 on ifname (a kernel without IPv6 needs nothing).
func Quiet(ifname string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1"), 0o644)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: disable IPv6: %w", ifname, err)
	}
	return nil
}

// Addresses lists the IP addresses configured on ifname.
func Addresses(ifname string) []string {
	i, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil
	}
	as, _ := i.Addrs()
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
