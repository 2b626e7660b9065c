// Package monitor is `monitor traffic interface`: a capture on one port
// of the box, both directions, a line per frame the way a network
// engineer reads them (MACsec SecTAG, EAPOL, ARP, IPv4), optionally
// written to a pcap file for Wireshark.
package monitor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Options of one capture.
type Options struct {
	Port  string
	Count int           // stop after this many frames
	Max   time.Duration // and after this long at most
	File  string        // pcap file to write ("" none); never replaced
	// Now stamps the frames; nil is time.Now.
	Now func() time.Time
}

// Result counts what was captured.
type Result struct{ In, Out int }

// Run captures on o.Port until Count frames, Max or the end of ctx, and
// prints a line per frame.
func Run(ctx context.Context, w io.Writer, o Options) (Result, error) {
	var r Result
	if o.Now == nil {
		o.Now = time.Now
	}
	ifi, err := net.InterfaceByName(o.Port)
	if err != nil {
		return r, fmt.Errorf("interface %s: no such port", o.Port)
	}
	// Protocol 0 until bind names the port: created for ETH_P_ALL, the
	// socket would show frames of every interface until then.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return r, fmt.Errorf("capture socket (needs CAP_NET_RAW): %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return r, err
	}
	// Frames for other stations cross the line: see them all.
	unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP,
		&unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC})
	var pw *pcapgo.Writer
	if o.File != "" {
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return r, fmt.Errorf("%s exists: give a new file name", o.File)
		}
		if err != nil {
			return r, err
		}
		defer f.Close()
		pw = pcapgo.NewWriter(f)
		if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			return r, err
		}
	}
	fmt.Fprintf(w, "monitor traffic on %s (%s), both directions; %d frames or %s at most\n", o.Port, ifi.HardwareAddr, o.Count, o.Max)
	deadline := o.Now().Add(o.Max)
	buf := make([]byte, 65536)
	for r.In+r.Out < o.Count && ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, int(min(left, 200*time.Millisecond).Milliseconds())+1); err != nil && err != unix.EINTR {
			return r, err
		} else if n <= 0 {
			continue
		}
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if err != nil {
			continue
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		dir := "in "
		if ll != nil && ll.Pkttype == unix.PACKET_OUTGOING {
			dir = "out"
			r.Out++
		} else {
			r.In++
		}
		frame := buf[:min(n, len(buf))]
		now := o.Now()
		fmt.Fprintf(w, "%s %s %s\n", now.Format("15:04:05.000000"), dir, Describe(frame, n))
		if pw != nil {
			pw.WritePacket(gopacket.CaptureInfo{Timestamp: now, CaptureLength: len(frame), Length: n}, frame)
		}
	}
	fmt.Fprintf(w, "%d frames captured: %d received, %d transmitted\n", r.In+r.Out, r.In, r.Out)
	if o.File != "" {
		fmt.Fprintf(w, "written to %s\n", o.File)
	}
	return r, nil
}

// Describe is one line about an Ethernet frame of length n.
func Describe(f []byte, n int) string {
	if len(f) < 14 {
		return fmt.Sprintf("runt frame, %d octets", n)
	}
	s := fmt.Sprintf("%s > %s", net.HardwareAddr(f[6:12]), net.HardwareAddr(f[:6]))
	et, off := binary.BigEndian.Uint16(f[12:]), 14
	for (et == 0x8100 || et == 0x88a8) && len(f) >= off+4 {
		s += fmt.Sprintf(" vlan %d", binary.BigEndian.Uint16(f[off:])&0xfff)
		et, off = binary.BigEndian.Uint16(f[off+2:]), off+4
	}
	p := f[off:]
	switch {
	case et == 0x88e5 && len(p) >= 6:
		tci := p[0]
		s += fmt.Sprintf(" MACsec AN %d PN %d", tci&3, binary.BigEndian.Uint32(p[2:]))
		if tci&0x20 != 0 && len(p) >= 14 {
			s += fmt.Sprintf(" SCI %x", p[6:14])
		}
		if tci&0x0c == 0x0c {
			s += " encrypted"
		} else {
			s += " integrity only"
		}
	case et == 0x888e || et == 0x876f:
		s += " EAPOL"
		if len(p) >= 2 {
			switch p[1] {
			case 5:
				s += " MKA"
			case 0:
				s += " EAP"
			case 1:
				s += " start"
			}
		}
	case et == 0x0806 && len(p) >= 28:
		spa, tpa := netip.AddrFrom4([4]byte(p[14:18])), netip.AddrFrom4([4]byte(p[24:28]))
		if binary.BigEndian.Uint16(p[6:]) == 1 {
			s += fmt.Sprintf(" ARP who-has %s tell %s", tpa, spa)
		} else {
			s += fmt.Sprintf(" ARP %s is-at %s", spa, net.HardwareAddr(p[8:14]))
		}
	case et == 0x0800 && len(p) >= 20:
		src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		proto := map[byte]string{1: "ICMP", 6: "TCP", 17: "UDP"}[p[9]]
		if proto == "" {
			proto = fmt.Sprintf("proto %d", p[9])
		}
		s += fmt.Sprintf(" IPv4 %s > %s %s", src, dst, proto)
	case et == 0x86dd:
		s += " IPv6"
	default:
		s += fmt.Sprintf(" ethertype %#04x", et)
	}
	return s + fmt.Sprintf(", %d octets", n)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
