// Package tctag gives tests frames whose VLAN tag travels as metadata, as
// a NIC's VLAN offload or a Linux VLAN device leaves it, on kernels built
// without VLAN devices: a tc egress program pushes the tag
// (bpf_skb_vlan_push keeps it out of the frame's bytes).
package tctag

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Push makes ifname (in the calling thread's network namespace) tag every
// frame it sends with EtherType etherType with 802.1Q VLAN vid, in
// metadata. Frames must go through the qdisc layer (not PACKET_QDISC_BYPASS)
// to meet the program. Close the returned link to stop.
func Push(ifname string, etherType, vid uint16) (link.Link, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	be := func(v uint16) int64 { return int64(v>>8 | v<<8&0xff00) } // network order, as loaded on little-endian
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // __sk_buff.protocol
			asm.JNE.Imm(asm.R2, int32(be(etherType)), "out"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, int32(be(0x8100))),
			asm.Mov.Imm(asm.R3, int32(vid)),
			asm.FnSkbVlanPush.Call(),
			asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tc VLAN push program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: prog, Attach: ebpf.AttachTCXEgress})
	if err != nil {
		return nil, fmt.Errorf("%s: attaching tc egress program: %w", ifname, err)
	}
	return l, nil
}
