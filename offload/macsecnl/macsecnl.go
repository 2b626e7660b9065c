// Package macsecnl is a client for the Linux kernel's MACsec driver: it
// creates and deletes macsec links over rtnetlink (IFLA_MACSEC_*
// attributes) and manages their secure channels, SAs, offload mode and
// statistics through the "macsec" generic netlink family. The constants
// and semantics follow the kernel's include/uapi/linux/if_macsec.h. It
// depends on nothing in secwire and can be used on its own.
package macsecnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/offload/macsec"
)

// Generic netlink commands (enum macsec_nl_commands).
const (
	cmdGetTxSC = iota
	cmdAddRxSC
	cmdDelRxSC
	cmdUpdRxSC
	cmdAddTxSA
	cmdDelTxSA
	cmdUpdTxSA
	cmdAddRxSA
	cmdDelRxSA
	cmdUpdRxSA
	cmdUpdOffload
)

// Top-level attributes (enum macsec_attrs).
const (
	attrIfindex = iota + 1
	attrRxSCConfig
	attrSAConfig
	attrSecY
	attrTxSAList
	attrRxSCList
	attrTxSCStats
	attrSecYStats
	attrOffload
)

// SecY attributes (enum macsec_secy_attrs), as dumped.
const (
	secySCI = iota + 1
	secyEncodingSA
	secyWindow
	secyCipher
	secyICVLen
	secyProtect
	secyReplay
	secyOper
	secyValidate
	secyEncrypt
	secyIncSCI
	secyES
	secySCB
)

// Receive SC attributes (enum macsec_rxsc_attrs).
const (
	rxscSCI = iota + 1
	rxscActive
	rxscSAList
	rxscStats
)

// SA attributes (enum macsec_sa_attrs).
const (
	saAN = iota + 1
	saActive
	saPN
	saKey
	saKeyID
	saStats
	saPad
	saSSCI
	saSalt
)

const offloadType = 1 // MACSEC_OFFLOAD_ATTR_TYPE

// The kernel's cipher suite attribute (MACSEC_CIPHER_ID_*) is the IEEE
// 802.1AE identifier, macsec.CipherSuite.ID: the suite table in package
// macsec is the one list of suites.

// defaultCipherID is the pre-802.1AE-2018 identifier of GCM-AES-128,
// which the kernel still reports for it.
const defaultCipherID = 0x0080020001000001

// Validate is the SecY's validateFrames setting.
type Validate uint8

// validateFrames values (enum macsec_validation_type).
const (
	ValidateDisabled Validate = 0
	ValidateCheck    Validate = 1
	ValidateStrict   Validate = 2
)

// Offload is where the SecY runs (enum macsec_offload).
type Offload uint8

// Offload modes.
const (
	OffloadOff Offload = 0 // kernel software
	OffloadPHY Offload = 1
	OffloadMAC Offload = 2
)

func (o Offload) String() string {
	switch o {
	case OffloadOff:
		return "off"
	case OffloadPHY:
		return "phy"
	case OffloadMAC:
		return "mac"
	}
	return fmt.Sprintf("offload(%d)", uint8(o))
}

// SCI is a secure channel identifier: a MAC address and a port, in wire
// (network) order.
type SCI [8]byte

// MakeSCI builds the SCI of a MAC address and port.
func MakeSCI(mac net.HardwareAddr, port uint16) SCI {
	var s SCI
	copy(s[:6], mac)
	s[6], s[7] = byte(port>>8), byte(port)
	return s
}

func (s SCI) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x%02x%02x/%d", s[0], s[1], s[2], s[3], s[4], s[5], uint16(s[6])<<8|uint16(s[7]))
}

// Link is the configuration of a macsec link.
type Link struct {
	Name   string // the macsec interface, e.g. macsec0
	Parent string // the real device it protects
	// SCI is the transmit SCI; zero means the parent's MAC with Port.
	SCI        SCI
	Port       uint16 // when SCI is zero; 0 means 1
	Cipher     macsec.CipherSuite
	ICVLen     uint8 // 0 means 16
	EncodingSA uint8
	Encrypt    bool // false: integrity only
	Protect    bool
	SendSCI    bool
	EndStation bool
	SCB        bool
	Replay     bool
	Window     uint32
	Validate   Validate
	Offload    Offload
}

// SA is a transmit or receive secure association.
type SA struct {
	AN     uint8
	Active bool
	// PN is the next PN to send (TX) or the lowest acceptable (RX); 0 on
	// add means 1.
	PN    uint64
	Key   []byte   // 16 or 32 bytes, matching the SecY's cipher suite
	KeyID [16]byte // an identifier the kernel reports back, never the key
	// XPN suites only: the short SCI and the 96-bit salt.
	XPN  bool
	SSCI uint32
	Salt [12]byte
}

// Client talks to the kernel. It is not safe for concurrent use.
type Client struct {
	rt     *netlink.Conn
	gen    *genetlink.Conn
	family uint16
}

// ErrNoMACsec means the kernel has no macsec driver.
var ErrNoMACsec = errors.New("the kernel has no macsec driver (CONFIG_MACSEC; load the macsec module)")

// Dial opens the netlink sockets and looks up the macsec family.
func Dial() (*Client, error) {
	rt, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink: %w", err)
	}
	gen, err := genetlink.Dial(nil)
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("generic netlink: %w", err)
	}
	// Extended acks carry the kernel's own error text where it has one.
	_ = rt.SetOption(netlink.ExtendedAcknowledge, true)
	_ = gen.SetOption(netlink.ExtendedAcknowledge, true)
	fam, err := gen.GetFamily("macsec")
	if err != nil {
		rt.Close()
		gen.Close()
		if errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoMACsec
		}
		return nil, fmt.Errorf("generic netlink family macsec: %w", err)
	}
	return &Client{rt: rt, gen: gen, family: fam.ID}, nil
}

// Close closes the sockets.
func (c *Client) Close() error {
	err := c.gen.Close()
	if e := c.rt.Close(); err == nil {
		err = e
	}
	return err
}

// AddLink creates the macsec link and returns its interface index. The
// link is left down.
func (c *Client) AddLink(l Link) (int, error) {
	parent, err := net.InterfaceByName(l.Parent)
	if err != nil {
		return 0, fmt.Errorf("macsec link %s: parent %s: %w", l.Name, l.Parent, err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, l.Name)
	ae.Uint32(unix.IFLA_LINK, uint32(parent.Index))
	ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
		ae.String(unix.IFLA_INFO_KIND, "macsec")
		ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
			encodeLinkData(ae, l)
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	flags := netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl
	if _, err := c.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: flags},
		Data:   append(ifinfomsg(0), attrs...),
	}); err != nil {
		return 0, opError("create link "+l.Name+" on "+l.Parent, err, linkHint)
	}
	ifc, err := net.InterfaceByName(l.Name)
	if err != nil {
		return 0, fmt.Errorf("macsec link %s: created but not found: %w", l.Name, err)
	}
	return ifc.Index, nil
}

func encodeLinkData(ae *netlink.AttributeEncoder, l Link) {
	if l.SCI != (SCI{}) {
		ae.Bytes(unix.IFLA_MACSEC_SCI, l.SCI[:])
	} else {
		port := l.Port
		if port == 0 {
			port = 1
		}
		ae.Bytes(unix.IFLA_MACSEC_PORT, []byte{byte(port >> 8), byte(port)})
	}
	icv := l.ICVLen
	if icv == 0 {
		icv = 16
	}
	ae.Uint8(unix.IFLA_MACSEC_ICV_LEN, icv)
	ae.Uint64(unix.IFLA_MACSEC_CIPHER_SUITE, l.Cipher.ID())
	ae.Uint8(unix.IFLA_MACSEC_ENCODING_SA, l.EncodingSA)
	ae.Uint8(unix.IFLA_MACSEC_ENCRYPT, b2u(l.Encrypt))
	ae.Uint8(unix.IFLA_MACSEC_PROTECT, b2u(l.Protect))
	ae.Uint8(unix.IFLA_MACSEC_INC_SCI, b2u(l.SendSCI))
	ae.Uint8(unix.IFLA_MACSEC_ES, b2u(l.EndStation))
	ae.Uint8(unix.IFLA_MACSEC_SCB, b2u(l.SCB))
	ae.Uint8(unix.IFLA_MACSEC_REPLAY_PROTECT, b2u(l.Replay))
	if l.Replay {
		ae.Uint32(unix.IFLA_MACSEC_WINDOW, l.Window)
	}
	ae.Uint8(unix.IFLA_MACSEC_VALIDATION, uint8(l.Validate))
	ae.Uint8(unix.IFLA_MACSEC_OFFLOAD, uint8(l.Offload))
}

// LinkUpdate is what can change on a running macsec link; nil fields
// stay as they are. (The kernel fixes the SCI, cipher suite and ICV
// length at creation.)
type LinkUpdate struct {
	EncodingSA *uint8
	Encrypt    *bool
	Protect    *bool
	SendSCI    *bool
	EndStation *bool
	SCB        *bool
	Replay     *bool
	Window     *uint32
	Validate   *Validate
}

// UpdateLink changes a running macsec link's settings.
func (c *Client) UpdateLink(ifindex int, u LinkUpdate) error {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
		ae.String(unix.IFLA_INFO_KIND, "macsec")
		ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
			if u.EncodingSA != nil {
				ae.Uint8(unix.IFLA_MACSEC_ENCODING_SA, *u.EncodingSA)
			}
			for _, f := range []struct {
				t uint16
				v *bool
			}{
				{unix.IFLA_MACSEC_ENCRYPT, u.Encrypt}, {unix.IFLA_MACSEC_PROTECT, u.Protect},
				{unix.IFLA_MACSEC_INC_SCI, u.SendSCI}, {unix.IFLA_MACSEC_ES, u.EndStation},
				{unix.IFLA_MACSEC_SCB, u.SCB}, {unix.IFLA_MACSEC_REPLAY_PROTECT, u.Replay},
			} {
				if f.v != nil {
					ae.Uint8(f.t, b2u(*f.v))
				}
			}
			if u.Window != nil {
				ae.Uint32(unix.IFLA_MACSEC_WINDOW, *u.Window)
			}
			if u.Validate != nil {
				ae.Uint8(unix.IFLA_MACSEC_VALIDATION, uint8(*u.Validate))
			}
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	if _, err := c.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(ifinfomsg(ifindex), attrs...),
	}); err != nil {
		return opError(fmt.Sprintf("update link ifindex %d", ifindex), err, "the encoding SA must be 0-3; a replay window needs replay protection on")
	}
	return nil
}

// SetProtect turns frame protection on or off on a running link, with
// encoding SA an: with protection off the SecY sends frames unprotected.
func (c *Client) SetProtect(ifindex int, protect bool, an uint8) error {
	return c.UpdateLink(ifindex, LinkUpdate{Protect: &protect, EncodingSA: &an})
}

// DeleteLink removes the macsec link with its SCs and SAs.
func (c *Client) DeleteLink(ifindex int) error {
	_, err := c.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   ifinfomsg(ifindex),
	})
	if err != nil {
		return opError(fmt.Sprintf("delete link ifindex %d", ifindex), err, "")
	}
	return nil
}

func ifinfomsg(ifindex int) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(ifindex))
	return b
}

// AddRxSC adds a receive secure channel.
func (c *Client) AddRxSC(ifindex int, sci SCI, active bool) error {
	return c.rxsc(cmdAddRxSC, "add RX SC "+sci.String(), ifindex, sci, &active)
}

// UpdateRxSC activates or deactivates a receive secure channel.
func (c *Client) UpdateRxSC(ifindex int, sci SCI, active bool) error {
	return c.rxsc(cmdUpdRxSC, "update RX SC "+sci.String(), ifindex, sci, &active)
}

// DeleteRxSC removes a receive secure channel and its SAs.
func (c *Client) DeleteRxSC(ifindex int, sci SCI) error {
	return c.rxsc(cmdDelRxSC, "delete RX SC "+sci.String(), ifindex, sci, nil)
}

func (c *Client) rxsc(cmd uint8, what string, ifindex int, sci SCI, active *bool) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrIfindex, uint32(ifindex))
	ae.Nested(attrRxSCConfig, func(ae *netlink.AttributeEncoder) error {
		ae.Bytes(rxscSCI, sci[:])
		if active != nil {
			ae.Uint8(rxscActive, b2u(*active))
		}
		return nil
	})
	return c.do(cmd, what, ae, "")
}

// AddTxSA installs a transmit SA.
func (c *Client) AddTxSA(ifindex int, sa SA) error {
	return c.sa(cmdAddTxSA, fmt.Sprintf("add TX SA %d", sa.AN), ifindex, nil, sa, true)
}

// UpdateTxSA changes a transmit SA's next PN and active flag.
func (c *Client) UpdateTxSA(ifindex int, sa SA) error {
	return c.sa(cmdUpdTxSA, fmt.Sprintf("update TX SA %d", sa.AN), ifindex, nil, sa, false)
}

// DeleteTxSA removes a transmit SA.
func (c *Client) DeleteTxSA(ifindex int, an uint8) error {
	return c.sa(cmdDelTxSA, fmt.Sprintf("delete TX SA %d", an), ifindex, nil, SA{AN: an}, false)
}

// AddRxSA installs a receive SA on the SC sci.
func (c *Client) AddRxSA(ifindex int, sci SCI, sa SA) error {
	return c.sa(cmdAddRxSA, fmt.Sprintf("add RX SA %s/%d", sci, sa.AN), ifindex, &sci, sa, true)
}

// UpdateRxSA changes a receive SA's lowest acceptable PN and active flag.
func (c *Client) UpdateRxSA(ifindex int, sci SCI, sa SA) error {
	return c.sa(cmdUpdRxSA, fmt.Sprintf("update RX SA %s/%d", sci, sa.AN), ifindex, &sci, sa, false)
}

// DeleteRxSA removes a receive SA.
func (c *Client) DeleteRxSA(ifindex int, sci SCI, an uint8) error {
	return c.sa(cmdDelRxSA, fmt.Sprintf("delete RX SA %s/%d", sci, an), ifindex, &sci, SA{AN: an}, false)
}

const saHint = "an SA needs a key of the SecY's cipher suite length (16 or 32 bytes), a PN above 0, and for XPN suites an SSCI and a 12-byte salt; its AN must be 0-3 and, on add, free"

func (c *Client) sa(cmd uint8, what string, ifindex int, sci *SCI, sa SA, add bool) error {
	if sa.AN > 3 {
		return fmt.Errorf("macsec: %s: AN %d is out of range 0-3", what, sa.AN)
	}
	if add && len(sa.Key) != 16 && len(sa.Key) != 32 {
		return fmt.Errorf("macsec: %s: the key is %d bytes; MACsec keys are 16 (128-bit suites) or 32 (256-bit suites)", what, len(sa.Key))
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrIfindex, uint32(ifindex))
	if sci != nil {
		ae.Nested(attrRxSCConfig, func(ae *netlink.AttributeEncoder) error {
			ae.Bytes(rxscSCI, sci[:])
			return nil
		})
	}
	ae.Nested(attrSAConfig, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(saAN, sa.AN)
		if cmd == cmdDelTxSA || cmd == cmdDelRxSA {
			return nil
		}
		ae.Uint8(saActive, b2u(sa.Active))
		pn := sa.PN
		if add && pn == 0 {
			pn = 1
		}
		if pn != 0 {
			if sa.XPN {
				ae.Uint64(saPN, pn)
			} else {
				if pn > 0xFFFFFFFF {
					return fmt.Errorf("PN %#x does not fit 32 bits (not an XPN SA)", pn)
				}
				ae.Uint32(saPN, uint32(pn))
			}
		}
		if add {
			ae.Bytes(saKey, sa.Key)
			ae.Bytes(saKeyID, sa.KeyID[:])
			if sa.XPN {
				// The SSCI travels in network byte order (ssci_t is __be32).
				ae.Bytes(saSSCI, binary.BigEndian.AppendUint32(nil, sa.SSCI))
				ae.Bytes(saSalt, sa.Salt[:])
			}
		}
		return nil
	})
	hint := ""
	if add || cmd == cmdUpdTxSA || cmd == cmdUpdRxSA {
		hint = saHint
	}
	return c.do(cmd, what, ae, hint)
}

// SetOffload moves the SecY to the kernel (OffloadOff), the MAC or the
// PHY. The kernel refuses while SAs exist on some drivers.
func (c *Client) SetOffload(ifindex int, o Offload) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrIfindex, uint32(ifindex))
	ae.Nested(attrOffload, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(offloadType, uint8(o))
		return nil
	})
	return c.do(cmdUpdOffload, "set offload "+o.String(), ae, linkHint)
}

const linkHint = "offload mac needs a NIC with macsec-hw-offload, offload phy a PHY driver with MACsec; the parent must exist and the name be free"

func (c *Client) do(cmd uint8, what string, ae *netlink.AttributeEncoder, hint string) error {
	b, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("macsec: %s: %w", what, err)
	}
	_, err = c.gen.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: 1},
		Data:   b,
	}, c.family, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return opError(what, err, hint)
	}
	return nil
}

// opError names the operation and, for EINVAL, what the kernel checks.
func opError(what string, err error, hint string) error {
	var oe *netlink.OpError
	msg := err.Error()
	if errors.As(err, &oe) {
		msg = oe.Err.Error()
		if oe.Message != "" {
			msg += ": " + oe.Message
		}
	}
	if hint != "" && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EBUSY)) {
		msg += " (" + hint + ")"
	}
	return &Error{Op: what, Err: err, msg: "macsec: " + what + ": " + msg}
}

// Error is a failed kernel operation; it unwraps to the errno.
type Error struct {
	Op  string
	Err error
	msg string
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.Err }

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
