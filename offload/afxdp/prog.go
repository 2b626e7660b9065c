package afxdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// xdpProgram is the program on a port: it hands every frame to the
// AF_XDP socket of its receive queue, or, while a capture watches the port
// (pass map set), to the kernel stack, where captures and the AF_PACKET
// ring see it. A VLAN tag the NIC (or veth) took into metadata is put
// back into the frame first: the customer's tags cross the link.
type xdpProgram struct {
	prog *ebpf.Program
	xsks *ebpf.Map // queue index -> AF_XDP socket
	pass *ebpf.Map // [0] = 1: frames go to the kernel stack
	link link.Link
}

// struct xdp_md offsets.
const (
	mdData       = 0
	mdDataEnd    = 4
	mdRxQueueIdx = 16
)

// loadProgram builds the program for ifindex and attaches it in driver
// (native) mode. It fails where the driver has no native XDP, where the
// kernel cannot report stripped VLAN tags to XDP (before Linux 6.8), or
// where the port's MTU is beyond what XDP takes in one buffer.
func loadProgram(ifindex, queues int) (*xdpProgram, error) {
	kern, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF (needed to read stripped VLAN tags): %w", err)
	}
	fn, err := kern.AnyTypeByName("bpf_xdp_metadata_rx_vlan_tag")
	if err != nil {
		return nil, fmt.Errorf("kernel has no bpf_xdp_metadata_rx_vlan_tag (Linux 6.8 or later): stripped VLAN tags would be lost: %w", err)
	}
	vlanTag, err := kern.TypeID(fn)
	if err != nil {
		return nil, err
	}
	p := &xdpProgram{}
	if p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)}); err != nil {
		return nil, fmt.Errorf("XSKMAP: %w", err)
	}
	if p.pass, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}); err != nil {
		p.Close()
		return nil, fmt.Errorf("pass map: %w", err)
	}
	const (
		ctx   = asm.R6
		proto = -8 // __be16 TPID on the stack
		tci   = -4 // u16 TCI
	)
	insns := asm.Instructions{
		asm.Mov.Reg(ctx, asm.R1),
		// pass[0] == 1: to the kernel stack, tags and all.
		asm.StoreImm(asm.RFP, -12, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, p.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -12),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "tag"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 1, "pass"),
		// A stripped tag goes back in front of the EtherType.
		asm.StoreImm(asm.RFP, proto, 0, asm.Word).WithSymbol("tag"),
		asm.StoreImm(asm.RFP, tci, 0, asm.Word),
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, proto),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, tci),
		{OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.Call), Src: asm.PseudoKfuncCall, Constant: int64(vlanTag)},
		asm.JNE.Imm(asm.R0, 0, "redirect"), // no tag in metadata
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Imm(asm.R2, -4),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"), // never forward it without its tag
		asm.LoadMem(asm.R2, ctx, mdData, asm.Word),
		asm.LoadMem(asm.R3, ctx, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 16),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),
		asm.LoadMem(asm.R5, asm.R2, 4, asm.DWord),
		asm.StoreMem(asm.R2, 0, asm.R5, asm.DWord),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Word),
		asm.StoreMem(asm.R2, 8, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.RFP, proto, asm.Half), // already network order
		asm.StoreMem(asm.R2, 12, asm.R5, asm.Half),
		asm.LoadMem(asm.R5, asm.RFP, tci, asm.Half),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.StoreMem(asm.R2, 14, asm.R5, asm.Half),
		// To the queue's socket; without one, drop: nothing else reads
		// this port.
		asm.LoadMapPtr(asm.R1, p.xsks.FD()).WithSymbol("redirect"),
		asm.LoadMem(asm.R2, ctx, mdRxQueueIdx, asm.Word),
		asm.Mov.Imm(asm.R3, 1), // XDP_DROP
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS
		asm.Return(),
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "secwire_xsk", Type: ebpf.XDP, License: "GPL", Instructions: insns,
		// Device-bound: the VLAN metadata kfunc reads this driver's
		// receive descriptors.
		Ifindex: uint32(ifindex), Flags: unix.BPF_F_XDP_DEV_BOUND_ONLY,
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("loading the XDP program: %w", err)
	}
	p.link, err = link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("attaching the XDP program in driver mode (the driver needs native XDP, and the port's MTU must fit one page): %w", err)
	}
	return p, nil
}

func (p *xdpProgram) setPass(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	return p.pass.Put(uint32(0), v)
}

// Close detaches the program and frees the maps.
func (p *xdpProgram) Close() error {
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
	}
	for _, c := range []interface{ Close() error }{p.prog, p.xsks, p.pass} {
		if c != nil && !isNilCloser(c) {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func isNilCloser(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *ebpf.Program:
		return v == nil
	case *ebpf.Map:
		return v == nil
	}
	return false
}
