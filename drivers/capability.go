package drivers

// Offload is what a driver's MACsec offload can do.
type Offload struct {
	Driver string
	Where  string // "mac" or "phy": the kernel macsec offload mode
	XPN    bool   // GCM-AES-XPN-128/256 as well as GCM-AES-128/256
	Note   string
}

// offloadTable lists the in-tree drivers with MACsec offload (Linux 6.12).
var offloadTable = map[string]Offload{
	"mlx5_core":       {Driver: "mlx5_core", Where: "mac", XPN: true, Note: "NVIDIA ConnectX-7 and later with crypto enabled firmware"},
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

// Suites names the cipher suites an offload handles.
func (o Offload) Suites() []string {
	s := []string{"gcm-aes-128", "gcm-aes-256"}
	if o.XPN {
		s = append(s, "gcm-aes-xpn-128", "gcm-aes-xpn-256")
	}
	return s
}
