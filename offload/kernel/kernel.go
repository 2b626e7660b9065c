// Package kernel is the datapath backend that runs in the Linux kernel's
// macsec driver: in kernel software, or offloaded to the NIC (MAC) or its
// PHY. The line port gets a macsec link, bridged to the plaintext port.
// Key agreement frames on the line port stay with MKA: they reach a packet
// socket on the line port and never the bridge, because the macsec link
// validates strictly and passes only frames its receive SAs verified.
// With no transmit SA the kernel drops every frame it is asked to send,
// so the backend fails closed like the software one.
package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/secwire/secwire/internal/ifquiet"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/macsecnl"
)

// Options configure a kernel datapath.
type Options struct {
	Plain, Line string
	// Name is the macsec link's name; the bridge is named "br" + Name.
	Name    string
	SecY    macsec.Config
	Offload macsecnl.Offload
	// PlainMTU is the largest frame payload the link carries.
	PlainMTU int
	Log      *slog.Logger
}

// Datapath is a running kernel macsec link. It implements macsec.Seam,
// the SecY seam; its methods are safe for concurrent use.
type Datapath struct {
	opts    Options
	log     *slog.Logger
	nl      *macsecnl.Client
	ifindex int
	bridge  string
	eapol   *eapolSocket

	mu       sync.Mutex
	encoding int
	tx       [4]txSA
	rx       map[macsec.SCI]*[4]bool
	xpn      bool
	keyLen   int
}

type txSA struct {
	installed bool
}

// Check says why the kernel cannot run this SecY configuration, or nil.
// The supervisor uses it to fall back before touching the kernel.
func Check(c macsec.Config, vlansInClear int, shouldSecure bool) error {
	switch {
	case c.Offset != 0:
		return fmt.Errorf("the kernel macsec driver has no confidentiality offset (%d configured)", c.Offset)
	case vlansInClear > 0:
		return errors.New("the kernel macsec driver cannot keep VLAN tags in clear")
	case shouldSecure:
		return errors.New("the kernel macsec driver drops frames while no SA is up; policy should-secure needs the software datapath")
	case c.NoReplay && c.ReplayWindow > 0:
		return errors.New("replay window set with replay protection off")
	}
	return nil
}

// Available reports whether the running kernel has the macsec driver.
func Available() error {
	nl, err := macsecnl.Dial()
	if err != nil {
		return err
	}
	return nl.Close()
}

// Start creates the macsec link on the line port with the configured
// offload, bridges it to the plaintext port and opens the EAPOL socket.
// What a run that never stopped left behind is removed first
// (RemoveStale). On error nothing it created is left behind.
func Start(o Options) (*Datapath, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := Check(o.SecY, 0, false); err != nil {
		return nil, err
	}
	if err := RemoveStale(o.Name, o.Line, o.Plain, o.Log); err != nil {
		return nil, err
	}
	nl, err := macsecnl.Dial()
	if err != nil {
		return nil, err
	}
	d := &Datapath{opts: o, log: o.Log, nl: nl, encoding: -1, rx: map[macsec.SCI]*[4]bool{},
		xpn: o.SecY.Suite.XPN(), keyLen: o.SecY.Suite.KeyLen(), bridge: "br" + o.Name}
	ok := false
	defer func() {
		if !ok {
			d.teardown()
		}
	}()
	c := o.SecY
	l := macsecnl.Link{
		Name: o.Name, Parent: o.Line, SCI: nlSCI(c.SCI),
		Cipher: c.Suite, Encrypt: !c.IntegrityOnly, Protect: true,
		SendSCI: c.SendSCI, EndStation: c.EndStation, SCB: c.SCB,
		Replay: !c.NoReplay, Window: c.ReplayWindow,
		Validate: validate(c.Validate), Offload: o.Offload,
	}
	if d.ifindex, err = nl.AddLink(l); err != nil {
		return nil, err
	}
	ms, err := netlink.LinkByIndex(d.ifindex)
	if err != nil {
		return nil, err
	}
	if o.PlainMTU > 0 {
		if err := netlink.LinkSetMTU(ms, o.PlainMTU); err != nil {
			return nil, fmt.Errorf("macsec link %s: MTU %d: %w (the line port's MTU must be at least %d)", o.Name, o.PlainMTU, err, o.PlainMTU+32)
		}
	}
	// Forward every link-local group address a bridge may forward (LLDP
	// among them) like any frame. Offloaded SecYs also see clones of
	// multicast frames that arrive on the line port in clear, so there the
	// 802.1X group address stays unbridged: MKPDUs belong to MKA only.
	mask := uint16(0xfff8)
	if o.Offload != macsecnl.OffloadOff {
		mask &^= 1 << 3
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: d.bridge, MTU: o.PlainMTU}, GroupFwdMask: &mask}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", d.bridge, err)
	}
	brl, err := netlink.LinkByName(d.bridge)
	if err != nil {
		return nil, err
	}
	plain, err := netlink.LinkByName(o.Plain)
	if err != nil {
		return nil, fmt.Errorf("plaintext port %s: %w", o.Plain, err)
	}
	for _, p := range []netlink.Link{ms, plain} {
		if err := netlink.LinkSetMaster(p, brl); err != nil {
			return nil, fmt.Errorf("bridge %s: add port %s: %w", d.bridge, p.Attrs().Name, err)
		}
	}
	for _, p := range []netlink.Link{ms, brl} {
		if err := ifquiet.Quiet(p.Attrs().Name); err != nil {
			return nil, err
		}
		if err := netlink.LinkSetUp(p); err != nil {
			return nil, fmt.Errorf("bring up %s: %w", p.Attrs().Name, err)
		}
	}
	ok = true
	return d, nil
}

// ListenEAPOL delivers key agreement frames of the given EtherTypes that
// arrive on the line port to on, until ctx ends or the datapath stops.
func (d *Datapath) ListenEAPOL(ctx context.Context, types []uint16, on func(frame []byte)) error {
	s, err := openEAPOL(ctx, d.opts.Line, types, on, d.log)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eapol != nil {
		d.eapol.close()
	}
	d.eapol = s
	return nil
}

// EAPOLIn counts key agreement frames received.
func (d *Datapath) EAPOLIn() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eapol == nil {
		return 0
	}
	return d.eapol.in.Load()
}

func validate(v macsec.ValidateMode) macsecnl.Validate {
	switch v {
	case macsec.ValidateCheck:
		return macsecnl.ValidateCheck
	case macsec.ValidateDisabled:
		return macsecnl.ValidateDisabled
	}
	return macsecnl.ValidateStrict
}

// Stop deletes the macsec link (the kernel forgets every SA and key with
// it) and the bridge. The plaintext port is left out of any bridge.
func (d *Datapath) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.teardown()
}

func (d *Datapath) teardown() {
	if d.eapol != nil {
		d.eapol.close()
		d.eapol = nil
	}
	if br, err := netlink.LinkByName(d.bridge); err == nil {
		netlink.LinkDel(br)
	}
	if d.ifindex != 0 {
		if err := d.nl.DeleteLink(d.ifindex); err != nil {
			d.log.Error("cannot delete the macsec link", "err", err)
		}
		d.ifindex = 0
	}
	if d.nl != nil {
		d.nl.Close()
		d.nl = nil
	}
}

// Name is the macsec link's interface name.
func (d *Datapath) Name() string { return d.opts.Name }

// Ifindex is the macsec link's interface index.
func (d *Datapath) Ifindex() int { return d.ifindex }

// SendEAPOL sends a key agreement frame on the line port, unprotected.
func (d *Datapath) SendEAPOL(frame []byte) error {
	d.mu.Lock()
	s := d.eapol
	d.mu.Unlock()
	if s == nil {
		return errors.New("datapath stopped")
	}
	return s.send(frame)
}

// Err reports a failure of the EAPOL receiver.
func (d *Datapath) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.eapol != nil {
		return d.eapol.err()
	}
	return nil
}

func (d *Datapath) sa(p macsec.SAParams) (macsecnl.SA, error) {
	if p.Key.Len() != d.keyLen {
		return macsecnl.SA{}, fmt.Errorf("SA %d: key is %d bytes, the cipher suite needs %d", p.AN, p.Key.Len(), d.keyLen)
	}
	return macsecnl.SA{AN: p.AN, Active: true, PN: max(p.PN, 1), Key: p.Key.Bytes(), KeyID: keyID(p.Key),
		XPN: d.xpn, SSCI: p.SSCI, Salt: p.Salt}, nil
}

// keyID names a key to the kernel without revealing it: its SHA-256,
// whose first bytes are also the key's fingerprint in `show` output.
func keyID(k macsec.Key) [16]byte {
	s := sha256.Sum256(k.Bytes())
	var id [16]byte
	copy(id[:], s[:])
	return id
}

// InstallTxSA installs (or replaces) a transmit SA.
func (d *Datapath) InstallTxSA(p macsec.SAParams) error {
	sa, err := d.sa(p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	an := p.AN & 3
	if d.tx[an].installed {
		if err := d.deleteTxSA(an); err != nil {
			return err
		}
	}
	if err := d.nl.AddTxSA(d.ifindex, sa); err != nil {
		return err
	}
	d.tx[an].installed = true
	return nil
}

// SetEncodingSA makes AN an the one frames are sent with.
func (d *Datapath) SetEncodingSA(an int) error {
	if an < 0 || an > 3 {
		return fmt.Errorf("encoding SA %d is out of range 0-3", an)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.tx[an].installed {
		return fmt.Errorf("encoding SA %d: no transmit SA installed with that AN", an)
	}
	if err := d.nl.SetProtect(d.ifindex, true, uint8(an)); err != nil {
		return err
	}
	d.encoding = an
	return nil
}

// EncodingSA is the AN frames are sent with, or -1.
func (d *Datapath) EncodingSA() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.encoding
}

// DeleteTxSA removes a transmit SA; with it gone as the encoding SA the
// kernel sends nothing.
func (d *Datapath) DeleteTxSA(an uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	an &= 3
	if !d.tx[an].installed {
		return
	}
	if err := d.deleteTxSA(an); err != nil {
		d.log.Error("cannot delete transmit SA", "an", an, "err", err)
	}
}

// deleteTxSA deactivates, then deletes: the kernel refuses to delete an
// active SA (EBUSY).
func (d *Datapath) deleteTxSA(an uint8) error {
	if err := d.nl.UpdateTxSA(d.ifindex, macsecnl.SA{AN: an, Active: false, XPN: d.xpn}); err != nil {
		return err
	}
	if err := d.nl.DeleteTxSA(d.ifindex, an); err != nil {
		return err
	}
	d.tx[an].installed = false
	if d.encoding == int(an) {
		d.encoding = -1
	}
	return nil
}

func (d *Datapath) deleteRxSA(sci macsec.SCI, an uint8) error {
	if err := d.nl.UpdateRxSA(d.ifindex, nlSCI(sci), macsecnl.SA{AN: an, Active: false, XPN: d.xpn}); err != nil {
		return err
	}
	if err := d.nl.DeleteRxSA(d.ifindex, nlSCI(sci), an); err != nil {
		return err
	}
	d.rx[sci][an] = false
	return nil
}

// InstallRxSA installs (or replaces) a receive SA, adding its SC first.
func (d *Datapath) InstallRxSA(sci macsec.SCI, p macsec.SAParams) error {
	sa, err := d.sa(p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sc := d.rx[sci]
	if sc == nil {
		if err := d.nl.AddRxSC(d.ifindex, nlSCI(sci), true); err != nil {
			return err
		}
		sc = new([4]bool)
		d.rx[sci] = sc
	}
	an := p.AN & 3
	if sc[an] {
		if err := d.deleteRxSA(sci, an); err != nil {
			return err
		}
	}
	if err := d.nl.AddRxSA(d.ifindex, nlSCI(sci), sa); err != nil {
		return err
	}
	sc[an] = true
	return nil
}

// DeleteRxSA removes a receive SA.
func (d *Datapath) DeleteRxSA(sci macsec.SCI, an uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	an &= 3
	if sc := d.rx[sci]; sc != nil && sc[an] {
		if err := d.deleteRxSA(sci, an); err != nil {
			d.log.Error("cannot delete receive SA", "sci", sci, "an", an, "err", err)
		}
	}
}

// DeleteRxSC removes a receive SC with its SAs.
func (d *Datapath) DeleteRxSC(sci macsec.SCI) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rx[sci] == nil {
		return
	}
	if err := d.nl.DeleteRxSC(d.ifindex, nlSCI(sci)); err != nil {
		d.log.Error("cannot delete receive SC", "sci", sci, "err", err)
		return
	}
	delete(d.rx, sci)
}

// Secured reports a transmit SA in use and at least one receive SA.
func (d *Datapath) Secured() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.encoding < 0 {
		return false
	}
	for _, sc := range d.rx {
		for _, in := range sc {
			if in {
				return true
			}
		}
	}
	return false
}

// State reads the SecY, its SAs and counters from the kernel.
func (d *Datapath) State() (*macsecnl.SecY, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nl == nil {
		return nil, errors.New("datapath stopped")
	}
	return d.nl.Get(d.ifindex)
}

// TxNextPN is the transmit SA's next PN, 0 when absent.
func (d *Datapath) TxNextPN(an uint8) uint64 {
	s, err := d.State()
	if err != nil {
		return 0
	}
	for _, sa := range s.TxSAs {
		if sa.AN == an&3 {
			return sa.PN
		}
	}
	return 0
}

// RxNextPN is the receive SA's lowest acceptable PN, 0 when absent.
func (d *Datapath) RxNextPN(sci macsec.SCI, an uint8) uint64 {
	s, err := d.State()
	if err != nil {
		return 0
	}
	for _, sc := range s.RxSCs {
		if sc.SCI != nlSCI(sci) {
			continue
		}
		for _, sa := range sc.SAs {
			if sa.AN == an&3 {
				// The kernel reports the next PN it expects; the lowest it
				// accepts is a replay window below.
				if sa.PN > uint64(s.Window)+1 {
					return sa.PN - uint64(s.Window)
				}
				return 1
			}
		}
	}
	return 0
}

func nlSCI(s macsec.SCI) macsecnl.SCI {
	var b macsecnl.SCI
	binary.BigEndian.PutUint64(b[:], uint64(s))
	return b
}

// Fingerprint formats a kernel key ID as the key's fingerprint.
func Fingerprint(id [16]byte) string {
	if id == ([16]byte{}) {
		return "none"
	}
	return fmt.Sprintf("sha256:%x", id[:4])
}

var _ macsec.Seam = (*Datapath)(nil)
