package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// chunk is the UMEM buffer size: one page, the most an XDP frame takes
// without multi-buffer support, so the port's MTU must be below about
// 3.5 KB (veth and most drivers refuse XDP above that anyway).
const chunk = 4096

// queue is an SPSC ring shared with the kernel: fill, completion, rx or tx.
type queue struct {
	mem   []byte
	prod  *uint32
	cons  *uint32
	flags *uint32
	desc  unsafe.Pointer
	mask  uint32
}

func mapQueue(fd int, off unix.XDPRingOffset, pgoff int64, n uint32, descSize uintptr) (*queue, error) {
	size := int(off.Desc) + int(n)*int(descSize)
	mem, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	base := unsafe.Pointer(&mem[0])
	return &queue{
		mem:   mem,
		prod:  (*uint32)(unsafe.Add(base, off.Producer)),
		cons:  (*uint32)(unsafe.Add(base, off.Consumer)),
		flags: (*uint32)(unsafe.Add(base, off.Flags)),
		desc:  unsafe.Add(base, off.Desc),
		mask:  n - 1,
	}, nil
}

func (q *queue) addr(i uint32) *uint64 { return (*uint64)(unsafe.Add(q.desc, uintptr(i&q.mask)*8)) }
func (q *queue) xdesc(i uint32) *unix.XDPDesc {
	return (*unix.XDPDesc)(unsafe.Add(q.desc, uintptr(i&q.mask)*16))
}
func (q *queue) needWakeup() bool { return atomic.LoadUint32(q.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }

// socket is one AF_XDP socket bound to one receive queue of a port, with
// its own UMEM: rxFrames chunks for receiving, then txFrames for sending.
type socket struct {
	fd       int
	umem     []byte
	fill     *queue
	comp     *queue
	rx       *queue
	tx       *queue
	zeroCopy bool
	// rx side: the consumer index of rx, the producer index of fill.
	rxCons, fillProd uint32
	// tx side
	txProd, compCons uint32
	free             []uint64 // tx chunks not in use
}

func openSocket(ifindex, queueID int, rxFrames, txFrames uint32) (*socket, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_XDP socket: %w", err)
	}
	s := &socket{fd: fd}
	fail := func(what string, err error) (*socket, error) {
		s.Close()
		return nil, fmt.Errorf("AF_XDP queue %d: %s: %w", queueID, what, err)
	}
	size := int(rxFrames+txFrames) * chunk
	if s.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return fail("UMEM", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))), Len: uint64(size), Size: chunk}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fail("XDP_UMEM_REG", err)
	}
	for _, o := range []struct {
		opt int
		n   uint32
	}{{unix.XDP_UMEM_FILL_RING, rxFrames}, {unix.XDP_UMEM_COMPLETION_RING, txFrames}, {unix.XDP_RX_RING, rxFrames}, {unix.XDP_TX_RING, txFrames}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, int(o.n)); err != nil {
			return fail("ring size", err)
		}
	}
	var off unix.XDPMmapOffsets
	l := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return fail("XDP_MMAP_OFFSETS", e)
	}
	if s.fill, err = mapQueue(fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, rxFrames, 8); err != nil {
		return fail("fill ring", err)
	}
	if s.comp, err = mapQueue(fd, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, txFrames, 8); err != nil {
		return fail("completion ring", err)
	}
	if s.rx, err = mapQueue(fd, off.Rx, unix.XDP_PGOFF_RX_RING, rxFrames, 16); err != nil {
		return fail("rx ring", err)
	}
	if s.tx, err = mapQueue(fd, off.Tx, unix.XDP_PGOFF_TX_RING, txFrames, 16); err != nil {
		return fail("tx ring", err)
	}
	// Every receive chunk waits in the fill ring for a frame.
	for i := range rxFrames {
		*s.fill.addr(i) = uint64(i) * chunk
	}
	s.fillProd = rxFrames
	atomic.StoreUint32(s.fill.prod, s.fillProd)
	for i := range txFrames {
		s.free = append(s.free, uint64(rxFrames+i)*chunk)
	}
	// Zero-copy where the driver can, else copy mode (veth).
	sa := &unix.SockaddrXDP{Flags: unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY, Ifindex: uint32(ifindex), QueueID: uint32(queueID)}
	if err := unix.Bind(fd, sa); err == nil {
		s.zeroCopy = true
	} else {
		sa.Flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY
		if err := unix.Bind(fd, sa); err != nil {
			return fail("bind", err)
		}
	}
	return s, nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); e != 0 {
		return e
	}
	return nil
}

// kick has the kernel send the tx ring (copy mode always needs it;
// zero-copy drivers when they ask). In copy mode the kernel sends a
// budget of frames per call and says EAGAIN while more wait.
func (s *socket) kick() error {
	for range 256 {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EAGAIN, unix.EINTR:
			if atomic.LoadUint32(s.tx.cons) == s.txProd {
				return nil
			}
			continue
		case 0, unix.EBUSY, unix.ENOBUFS:
			return nil
		}
		return e
	}
	return nil
}

// reclaim takes back the tx chunks the kernel has sent.
func (s *socket) reclaim() {
	prod := atomic.LoadUint32(s.comp.prod)
	for ; s.compCons != prod; s.compCons++ {
		s.free = append(s.free, *s.comp.addr(s.compCons))
	}
	atomic.StoreUint32(s.comp.cons, s.compCons)
}

func (s *socket) stats() unix.XDPStatistics {
	var st unix.XDPStatistics
	l := uint32(unsafe.Sizeof(st))
	unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS, uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
	return st
}

func (s *socket) Close() error {
	for _, q := range []*queue{s.fill, s.comp, s.rx, s.tx} {
		if q != nil {
			unix.Munmap(q.mem)
		}
	}
	var err error
	if s.fd >= 0 {
		err = unix.Close(s.fd)
		s.fd = -1
	}
	// The kernel lets go of the UMEM when the socket is gone.
	if s.umem != nil {
		unix.Munmap(s.umem)
		s.umem = nil
	}
	return err
}
