package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/internal/netns"
)

// flowEtherType is the local experimental EtherType of test flow frames.
const flowEtherType = 0x88b5

// flow is a steady stream of numbered frames from one host to the other,
// sent on a plain packet socket (never blocking, whatever the port's
// state) and counted on arrival. Every frame carries the plaintext marker:
// it must never show on the line.
type flow struct {
	name string
	id   byte
	rate int
	// The sender stops first; the receiver a moment later, once the
	// frames in flight have arrived.
	stopSend, stopRecv context.CancelFunc
	sending, receiving sync.WaitGroup

	mu     sync.Mutex
	sentAt []time.Time // send time by sequence number
	got    []bool      // arrived, by sequence number
	dups   int
	gotN   int
}

// startFlow sends rate frames a second (at most limit) from ns `from` to
// ns `to` over their eth0, until stop.
func startFlow(t *testing.T, name string, id byte, from, to *netns.NS, rate, limit int) *flow {
	t.Helper()
	var dst net.HardwareAddr
	var txFD, rxFD, txIndex int
	err := to.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		dst = ifc.HardwareAddr
		rxFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // nothing until bound
		if err != nil {
			return err
		}
		return unix.Bind(rxFD, &unix.SockaddrLinklayer{Protocol: htons(flowEtherType), Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatalf("flow %s receiver: %v", name, err)
	}
	var src net.HardwareAddr
	err = from.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		src, txIndex = ifc.HardwareAddr, ifc.Index
		txFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		unix.Close(rxFD)
		t.Fatalf("flow %s sender: %v", name, err)
	}
	tv := unix.Timeval{Usec: 100_000}
	unix.SetsockoptTimeval(rxFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	sendCtx, stopSend := context.WithCancel(context.Background())
	recvCtx, stopRecv := context.WithCancel(context.Background())
	f := &flow{name: name, id: id, rate: rate, stopSend: stopSend, stopRecv: stopRecv, got: make([]bool, limit)}
	f.sending.Add(1)
	f.receiving.Add(1)
	go func() { // receiver
		defer f.receiving.Done()
		defer unix.Close(rxFD)
		buf := make([]byte, 2048)
		for recvCtx.Err() == nil {
			n, _, err := unix.Recvfrom(rxFD, buf, 0)
			if err != nil || n < 14+len(marker)+9 || buf[14+len(marker)] != id {
				continue
			}
			seq := binary.BigEndian.Uint64(buf[14+len(marker)+1:])
			f.mu.Lock()
			if seq < uint64(len(f.got)) {
				if f.got[seq] {
					f.dups++
				} else {
					f.got[seq] = true
					f.gotN++
				}
			}
			f.mu.Unlock()
		}
	}()
	go func() { // sender
		defer f.sending.Done()
		defer unix.Close(txFD)
		frame := make([]byte, 128)
		copy(frame, dst)
		copy(frame[6:], src)
		binary.BigEndian.PutUint16(frame[12:], flowEtherType)
		copy(frame[14:], marker)
		frame[14+len(marker)] = id
		to := &unix.SockaddrLinklayer{Ifindex: txIndex, Protocol: htons(flowEtherType)}
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for seq := 0; seq < limit; seq++ {
			select {
			case <-sendCtx.Done():
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(frame[14+len(marker)+1:], uint64(seq))
			f.mu.Lock()
			f.sentAt = append(f.sentAt, time.Now())
			f.mu.Unlock()
			// A port that is down refuses the frame: it counts as lost.
			unix.Sendto(txFD, frame, unix.MSG_DONTWAIT, to)
		}
	}()
	return f
}

// stop ends the flow, leaving a second for the frames in flight.
func (f *flow) stop() {
	f.stopSend()
	f.sending.Wait()
	time.Sleep(time.Second)
	f.stopRecv()
	f.receiving.Wait()
}

// counts reports frames sent and received so far.
func (f *flow) counts() (sent, got int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sentAt), f.gotN
}

// waitFlowing waits until frames sent from now on arrive again.
func (f *flow) waitFlowing(within time.Duration) error {
	sent, _ := f.counts()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		f.mu.Lock()
		n := 0
		for _, ok := range f.got[sent:min(len(f.sentAt), len(f.got))] {
			if ok {
				n++
			}
		}
		f.mu.Unlock()
		if n >= f.rate/2 { // half a second's worth
			return nil
		}
	}
	return fmt.Errorf("flow %s: frames sent since %s ago do not arrive", f.name, within)
}
