package drivers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/safchain/ethtool"
)

// Port is one physical network port.
type Port struct {
	Name    string // kernel interface name
	Role    string // plaintext or line, once assigned from the board
	Driver  string
	PCI     string // PCI address, or "" for non-PCI devices
	MAC     string
	Link    bool
	SpeedMb int // -1 when unknown
	// HWOffload is the NIC's ethtool feature macsec-hw-offload.
	HWOffload bool
	// Offload is the driver's MAC offload capability from the table, if any.
	Offload *Offload
	// PHYDriver drives the port's PHY, when the kernel has a PHY device
	// for it; PHYOffload is that driver's MACsec capability, if any.
	PHYDriver  string
	PHYOffload *Offload
}

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// Inventory lists the physical Ethernet ports under sysfs (virtual
// interfaces such as lo, bridges and macsec links have no device and are
// left out), in PCI address order.
func Inventory(sysfs string) ([]Port, error) {
	dirs, err := filepath.Glob(filepath.Join(sysfs, "class", "net", "*"))
	if err != nil {
		return nil, err
	}
	var et *ethtool.Ethtool
	if sysfs == "/sys" {
		et, _ = ethtool.NewEthtool()
		if et != nil {
			defer et.Close()
		}
	}
	var ports []Port
	for _, d := range dirs {
		if p, ok := readPort(sysfs, d, et); ok {
			ports = append(ports, p)
		}
	}
	sort.SliceStable(ports, func(i, j int) bool {
		if ports[i].PCI != ports[j].PCI {
			return ports[i].PCI < ports[j].PCI
		}
		return ports[i].Name < ports[j].Name
	})
	return ports, nil
}

// Lookup reads one port from sysfs, with its ethtool features when sysfs
// is the live /sys.
func Lookup(sysfs, name string) (Port, error) {
	var et *ethtool.Ethtool
	if sysfs == "/sys" {
		et, _ = ethtool.NewEthtool()
		if et != nil {
			defer et.Close()
		}
	}
	d := filepath.Join(sysfs, "class", "net", name)
	if _, err := os.Stat(d); err != nil {
		return Port{}, fmt.Errorf("no interface %s", name)
	}
	p, ok := readPort(sysfs, d, et)
	if !ok {
		return p, fmt.Errorf("%s is a virtual interface, not a NIC", name)
	}
	return p, nil
}

func readPort(sysfs, d string, et *ethtool.Ethtool) (Port, bool) {
	dev, err := filepath.EvalSymlinks(filepath.Join(d, "device"))
	if err != nil {
		return Port{}, false
	}
	if readTrim(filepath.Join(d, "type")) != "1" { // ARPHRD_ETHER
		return Port{}, false
	}
	p := Port{Name: filepath.Base(d), MAC: readTrim(filepath.Join(d, "address")), SpeedMb: -1}
	if drv, err := filepath.EvalSymlinks(filepath.Join(d, "device", "driver")); err == nil {
		p.Driver = filepath.Base(drv)
	}
	if drv, err := filepath.EvalSymlinks(filepath.Join(d, "phydev", "driver")); err == nil {
		p.PHYDriver = filepath.Base(drv)
		if o, ok := OffloadFor(p.PHYDriver); ok && o.Where == "phy" {
			p.PHYOffload = &o
		}
	}
	for x := dev; x != "/" && x != "." && x != sysfs; x = filepath.Dir(x) {
		if pciAddr.MatchString(filepath.Base(x)) {
			p.PCI = filepath.Base(x)
			break
		}
	}
	p.Link = readTrim(filepath.Join(d, "carrier")) == "1"
	if s, err := strconv.Atoi(readTrim(filepath.Join(d, "speed"))); err == nil && s > 0 {
		p.SpeedMb = s
	}
	if o, ok := OffloadFor(p.Driver); ok && o.Where == "mac" {
		p.Offload = &o
	}
	if et != nil {
		if f, err := et.Features(p.Name); err == nil {
			p.HWOffload = f["macsec-hw-offload"]
		}
	}
	return p, true
}

// OffloadSummary says in a few words what MACsec offload the port offers.
func (p Port) OffloadSummary() string {
	switch {
	case p.Offload == nil && p.PHYOffload != nil:
		return fmt.Sprintf("phy offload: %s%s", strings.Join(p.PHYOffload.Suites(), " "), unsafeNote(p.PHYOffload))
	case p.Offload == nil:
		return "none (no hardware offload: the kernel's or secwire's software datapath)"
	case !p.HWOffload:
		return fmt.Sprintf("driver supports %s offload, NIC does not offer macsec-hw-offload", p.Offload.Where)
	default:
		return fmt.Sprintf("%s offload: %s%s", p.Offload.Where, strings.Join(p.Offload.Suites(), " "), unsafeNote(p.Offload))
	}
}

// unsafeNote marks an offload secwire never uses (see ClearFramesSafe).
func unsafeNote(o *Offload) string {
	if o.ClearFramesSafe() != nil {
		return " (unused: would pass clear line frames)"
	}
	return ""
}

// String is the port's inventory line.
func (p Port) String() string {
	link := "down"
	if p.Link {
		link = "up"
	}
	speed := "unknown"
	if p.SpeedMb > 0 {
		speed = fmt.Sprintf("%dMb/s", p.SpeedMb)
	}
	pci := p.PCI
	if pci == "" {
		pci = "-"
	}
	role := p.Role
	if role == "" {
		role = "unused"
	}
	return fmt.Sprintf("%-9s %-8s driver=%s pci=%s mac=%s link=%s speed=%s macsec-offload=%s",
		role, p.Name, p.Driver, pci, p.MAC, link, speed, p.OffloadSummary())
}
