package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/kernel"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
	"github.com/secwire/secwire/offload/software"
)

// Backends in the order auto tries them: the NIC (MAC), the PHY, the
// kernel's software macsec, the Go software datapath.
const (
	backendMAC      = "offload-mac"
	backendPHY      = "offload-phy"
	backendKernel   = "kernel"
	backendSoftware = "software"
)

// kernelOverhead is what the kernel's macsec link takes off its parent's
// MTU whatever the SCI setting: a SecTAG with SCI and a 16-octet ICV.
const kernelOverhead = 32

// Sysfs is where ports are looked up; tests of the selection may point it
// at a fake tree.
var sysfsRoot = "/sys"

// plan lists the backends to try for a link, in order, and why auto
// skipped the others. A forced backend is the only one tried.
func plan(lc config.Link, c macsec.Config) (try []string, skipped []string) {
	choice := lc.DatapathChoice()
	if choice != "auto" {
		return []string{string(choice)}, nil
	}
	// Only the Go datapath passes protocol exceptions; config.Check
	// refuses them with a forced kernel or offload backend.
	if len(lc.ProtocolsInClear) > 0 {
		return []string{backendSoftware}, []string{"offload and kernel cannot pass protocols in clear (" + lc.InClearNames() + ")"}
	}
	port, err := drivers.Lookup(sysfsRoot, lc.Line)
	suite := c.Suite.String()
	switch {
	case err != nil:
		skipped = append(skipped, fmt.Sprintf("offload: %v", err))
	case port.Offload == nil && port.PHYOffload == nil:
		skipped = append(skipped, fmt.Sprintf("offload: driver %s has no MACsec offload", orNone(port.Driver)))
	}
	if err == nil && port.Offload != nil {
		o := port.Offload
		switch {
		case o.ClearFramesSafe() != nil:
			skipped = append(skipped, "offload mac: "+o.ClearFramesSafe().Error())
		case !port.HWOffload:
			skipped = append(skipped, fmt.Sprintf("offload mac: %s does not offer macsec-hw-offload (ethtool -k %s)", port.Name, port.Name))
		case c.Suite.XPN() && !o.XPN:
			skipped = append(skipped, fmt.Sprintf("offload mac: %s offload has no %s", o.Driver, suite))
		default:
			try = append(try, backendMAC)
		}
	}
	if err == nil && port.PHYOffload != nil {
		if o := port.PHYOffload; o.ClearFramesSafe() != nil {
			skipped = append(skipped, "offload phy: "+o.ClearFramesSafe().Error())
		} else if c.Suite.XPN() && !o.XPN {
			skipped = append(skipped, fmt.Sprintf("offload phy: %s offload has no %s", o.Driver, suite))
		} else {
			try = append(try, backendPHY)
		}
	}
	if err := kernel.Check(c, lc.VLANsInClear, lc.ShouldSecure()); err != nil {
		skipped = append(skipped, "kernel: "+err.Error())
	} else {
		try = append(try, backendKernel)
	}
	return append(try, backendSoftware), skipped
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// startDatapath starts the first backend of the plan that works. With
// auto a backend the kernel refuses is logged and the next one tried; a
// forced backend that fails is an error.
func (s *Supervisor) startDatapath(ctx context.Context, l *link, mgmtVLAN uint16, log *slog.Logger) error {
	lc := l.cfg
	// Whatever backend runs now, a kernel datapath a killed daemon left on
	// this line port must not keep forwarding beside it.
	if err := kernel.RemoveStale(macsecName(lc.Line), lc.Line, lc.Plain, log); err != nil {
		return err
	}
	try, why := plan(lc, l.secyCfg)
	forced := lc.DatapathChoice() != "auto"
	for _, b := range try {
		dp, err := s.startBackend(l, b, mgmtVLAN, log)
		if err == nil {
			l.dp = dp
			l.backend = b
			l.datapath = describe(b, lc, why)
			return nil
		}
		if forced {
			return fmt.Errorf("datapath %s: %w", b, err)
		}
		log.Warn("datapath backend refused, trying the next", "backend", b, "err", err)
		why = append(why, b+": "+err.Error())
	}
	return errors.New("no datapath backend started: " + strings.Join(why, "; "))
}

func describe(b string, lc config.Link, why []string) string {
	name := map[string]string{
		backendMAC: "offload mac", backendPHY: "offload phy",
		backendKernel: "kernel software", backendSoftware: "software",
	}[b]
	if lc.DatapathChoice() != "auto" {
		return name + " (configured)"
	}
	if len(why) == 0 {
		return name
	}
	return name + " (" + strings.Join(why, "; ") + ")"
}

// startBackend builds backend b for the link: a Go codec SecY, or a
// kernel macsec link bridged to the plaintext port. Neither carries a
// frame unprotected before forward.
func (s *Supervisor) startBackend(l *link, b string, mgmtVLAN uint16, log *slog.Logger) (datapath, error) {
	lc := l.cfg
	if b == backendSoftware {
		return newSoftwarePath(l.secyCfg, software.Options{
			Plain: lc.Plain, Line: lc.Line,
			VLANsInClear: lc.VLANsInClear, ShouldSecure: lc.ShouldSecure(),
			EAPOLTypes: lc.EAPOLTypes(), Workers: lc.Workers, Log: log,
			InClear: inClear(lc), ManagementVLAN: mgmtVLAN,
		})
	}
	if err := kernel.Check(l.secyCfg, lc.VLANsInClear, lc.ShouldSecure()); err != nil {
		return nil, err
	}
	if b == backendMAC || b == backendPHY {
		if err := offloadSafe(lc.Line, b); err != nil {
			return nil, err
		}
	}
	if err := kernel.Available(); err != nil {
		return nil, err
	}
	// The kernel sizes its macsec link as if every frame carried an SCI.
	if need := lc.PlainMTU() + kernelOverhead + 4*lc.VLANsInClear; l.lineMTU < need {
		if err := setMTU(lc.Line, need); err != nil {
			return nil, fmt.Errorf("line port %s: MTU %d is below the %d the kernel macsec link needs: %w", lc.Line, l.lineMTU, need, err)
		}
		log.Info("raised line port MTU for the kernel macsec link", "port", lc.Line, "from", l.lineMTU, "to", need)
		l.lineMTU = need
	}
	off := map[string]macsecnl.Offload{backendMAC: macsecnl.OffloadMAC, backendPHY: macsecnl.OffloadPHY, backendKernel: macsecnl.OffloadOff}[b]
	k, err := kernel.Start(kernel.Options{
		Plain: lc.Plain, Line: lc.Line, Name: macsecName(lc.Line), SecY: l.secyCfg,
		Offload: off, PlainMTU: lc.PlainMTU(), Log: log,
	})
	if err != nil {
		return nil, err
	}
	return newKernelPath(k, lc.Plain, lc.PlainMTU(), lc.EAPOLTypes()), nil
}

// macsecName names the link's macsec interface after its line port,
// short enough that "br" plus it fits IFNAMSIZ.
func macsecName(line string) string {
	n := "ms" + line
	if len(n) > 13 {
		n = n[:13]
	}
	return n
}

// offloadSafe refuses an offload, even a configured one, unless the
// driver table knows the line port's driver keeps frames that arrive in
// clear off the offloaded macsec link: no config may let unvalidated
// frames reach the plaintext port.
func offloadSafe(line, b string) error {
	port, err := drivers.Lookup(sysfsRoot, line)
	if err != nil {
		return err
	}
	o, where := port.Offload, "the NIC driver "+orNone(port.Driver)
	if b == backendPHY {
		o, where = port.PHYOffload, "the PHY driver "+orNone(port.PHYDriver)
	}
	if o == nil {
		return fmt.Errorf("line port %s: %s has no MACsec offload secwire knows to keep clear line frames off the plaintext port; use datapath kernel or software", line, where)
	}
	if err := o.ClearFramesSafe(); err != nil {
		return fmt.Errorf("line port %s: %w; use datapath kernel or software", line, err)
	}
	return nil
}
