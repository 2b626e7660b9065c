package drivers

import (
	"fmt"

	"github.com/secwire/secwire/offload/macsec"
)

// Offload is what a driver's MACsec offload can do.
type Offload struct {
	Driver string
	Where  string // "mac" or "phy": the kernel macsec offload mode
	XPN    bool   // the XPN suites as well as the 32-bit PN ones
	// MarksValidated is set for drivers that tag every frame the NIC
	// validated with the receiving SC (the kernel's rx_uses_md_dst). Only
	// then does the kernel keep frames that arrive in clear on the line off
	// the offloaded macsec link; see ClearFramesSafe.
	MarksValidated bool
	Note           string
}

// offloadTable lists the in-tree drivers with MACsec offload (Linux 6.12).
var offloadTable = map[string]Offload{
	"mlx5_core":       {Driver: "mlx5_core", Where: "mac", XPN: true, MarksValidated: true, Note: "NVIDIA ConnectX-7 and later with crypto enabled firmware"},
	"atlantic":        {Driver: "atlantic", Where: "mac", XPN: false, Note: "Marvell/Aquantia AQtion AQC107/113"},
	"mscc":            {Driver: "mscc", Where: "phy", XPN: false, Note: "Microsemi VSC8584-family PHYs"},
	"rvu_nicpf":       {Driver: "rvu_nicpf", Where: "mac", XPN: true, Note: "Marvell OcteonTX2 CN10K"},
	"nxp_c45_tja11xx": {Driver: "nxp_c45_tja11xx", Where: "phy", XPN: true, Note: "NXP TJA11xx automotive PHYs"},
	"netdevsim":       {Driver: "netdevsim", Where: "mac", XPN: false, Note: "kernel test device"},
}

// OffloadFor returns the driver's MACsec offload capability, if it has one.
func OffloadFor(driver string) (Offload, bool) {
	o, ok := offloadTable[driver]
	return o, ok
}

// Suites names the cipher suites an offload handles: every suite of the
// codec's table, the XPN ones only if the driver has XPN.
func (o Offload) Suites() []string {
	var s []string
	for _, c := range macsec.CipherSuites {
		if o.XPN || !c.XPN() {
			s = append(s, c.String())
		}
	}
	return s
}

// ClearFramesSafe says why an offloaded SecY on this driver could pass
// frames that were never validated, or nil when it cannot.
//
// With offload the NIC decrypts and strips the SecTAG, so the kernel sees
// validated frames and frames that arrived in clear alike: untagged. Unless
// the driver marks the validated ones, Linux 6.12's handle_not_macsec
// (drivers/net/macsec.c) delivers untagged line frames to the offloaded
// macsec link (frames to its MAC address, every multicast and broadcast
// frame, and every unicast frame while the link is promiscuous, which a
// bridge port is). Bridged to the plaintext port, those frames would reach
// the customer's LAN unvalidated, and nothing on the host can tell them
// apart. Only drivers that mark validated frames are safe to bridge.
func (o Offload) ClearFramesSafe() error {
	if o.MarksValidated {
		return nil
	}
	return fmt.Errorf("%s does not mark the frames its offload validated, so the kernel would pass frames that arrive in clear on the line to the plaintext port", o.Driver)
}
