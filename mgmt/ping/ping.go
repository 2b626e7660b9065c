// Package ping sends ICMP echo requests out of a link's plaintext port, so
// an engineer can check the customer's router from the box. The box has no
// address on the plaintext side: the request uses a source address given
// for the test, resolved with ARP, over a raw packet socket on the port.
package ping

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Options of one ping run.
type Options struct {
	Port        string     // the plaintext port
	Target, Src netip.Addr // IPv4
	Count       int        // 1..100
}

// Run pings and prints a line per reply and a summary, like ping(8). It
// returns an error when nothing answered.
func Run(ctx context.Context, w io.Writer, o Options) error {
	if !o.Target.Is4() || !o.Src.Is4() {
		return errors.New("IPv4 addresses only")
	}
	if o.Count < 1 || o.Count > 100 {
		return fmt.Errorf("count %d: want 1..100", o.Count)
	}
	ifi, err := net.InterfaceByName(o.Port)
	if err != nil {
		return err
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("plaintext port %s is down (held down until the link is secured?)", o.Port)
	}
	// Protocol 0 receives nothing until bind names the port (with
	// ETH_P_ALL it would see every interface's frames until then).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return err
	}
	p := &pinger{fd: fd, ifindex: ifi.Index, mac: ifi.HardwareAddr, o: o}
	fmt.Fprintf(w, "PING %s from %s via %s: 56 data bytes\n", o.Target, o.Src, o.Port)
	dst, err := p.arp(ctx)
	if err != nil {
		return err
	}
	got := 0
	id := uint16(time.Now().UnixNano())
	for seq := 1; seq <= o.Count && ctx.Err() == nil; seq++ {
		start := time.Now()
		p.send(echo(dst, p.mac, o.Src, o.Target, id, uint16(seq)))
		if p.wait(time.Second, func(f []byte) bool { return isReply(f, o.Target, o.Src, id, uint16(seq)) }) {
			got++
			fmt.Fprintf(w, "64 bytes from %s: icmp_seq=%d time=%.3f ms\n", o.Target, seq, float64(time.Since(start).Microseconds())/1000)
			time.Sleep(time.Until(start.Add(time.Second / 5)))
		}
	}
	fmt.Fprintf(w, "--- %s ping statistics ---\n%d packets transmitted, %d received, %d%% packet loss\n",
		o.Target, o.Count, got, 100*(o.Count-got)/o.Count)
	if got == 0 {
		return errors.New("no reply")
	}
	return nil
}

type pinger struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
	o       Options
}

func (p *pinger) send(f []byte) {
	unix.Sendto(p.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6})
}

// wait reads frames until match accepts one or d passes.
func (p *pinger) wait(d time.Duration, match func([]byte) bool) bool {
	buf := make([]byte, 2048)
	for end := time.Now().Add(d); time.Now().Before(end); {
		tv := unix.NsecToTimeval(int64(time.Until(end)) + 1)
		unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return true
		}
	}
	return false
}

// arp resolves the target's MAC (three tries).
func (p *pinger) arp(ctx context.Context) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		f := make([]byte, 42)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:], p.mac)
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
		copy(f[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
		copy(f[22:], p.mac)
		copy(f[28:], p.o.Src.AsSlice())
		copy(f[38:], p.o.Target.AsSlice())
		p.send(f)
		if p.wait(time.Second, func(r []byte) bool {
			if len(r) < 42 || binary.BigEndian.Uint16(r[12:]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(r[20:]) != 2 {
				return false
			}
			if netip.AddrFrom4([4]byte(r[28:32])) != p.o.Target {
				return false
			}
			mac = append(net.HardwareAddr(nil), r[22:28]...)
			return true
		}) {
			return mac, nil
		}
	}
	return nil, fmt.Errorf("%s does not answer ARP on %s", p.o.Target, p.o.Port)
}

func echo(dst, src net.HardwareAddr, from, to netip.Addr, id, seq uint16) []byte {
	f := make([]byte, 14+20+8+56)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	copy(ip[12:], from.AsSlice())
	copy(ip[16:], to.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	icmp := f[34:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return f
}

func isReply(f []byte, from, to netip.Addr, id, seq uint16) bool {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || f[23] != 1 {
		return false
	}
	ihl := int(f[14]&0xf) * 4
	if len(f) < 14+ihl+8 || netip.AddrFrom4([4]byte(f[26:30])) != from || netip.AddrFrom4([4]byte(f[30:34])) != to {
		return false
	}
	icmp := f[14+ihl:]
	return icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
