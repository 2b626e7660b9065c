// Package watchdog feeds a watchdog only while the firmware makes
// progress: the board's hardware watchdog on the appliance, or a software
// one that ends a host daemon (for its service manager to restart it). A
// box whose supervisor, key agreement or management plane is wedged stops
// feeding, and is reset.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/firmware/health"
)

// Device is a watchdog that resets (or ends) the box unless kept alive.
type Device interface {
	Keepalive() error
	// Consequence says what happens unfed, for the log.
	Consequence() string
}

// Feed keeps dev alive every period while mon.Check reports nothing, until
// ctx ends. It logs when it stops feeding and why, and when it feeds
// again. Nothing disarms dev when ctx ends: firmware that stopped must be
// reset.
func Feed(ctx context.Context, dev Device, mon *health.Monitor, period time.Duration, log *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	var starvedSince, told time.Time
	for {
		now := time.Now()
		err := mon.Check(now)
		switch {
		case err == nil:
			if kerr := dev.Keepalive(); kerr != nil {
				log.Error("watchdog: cannot feed the device", "err", kerr)
			}
			if !starvedSince.IsZero() {
				log.Warn("watchdog: fed again, the firmware is making progress", "unfed", now.Sub(starvedSince).Round(time.Second))
			}
			starvedSince = time.Time{}
		case starvedSince.IsZero() || now.Sub(told) >= 10*time.Second:
			// Said when feeding stops, then every 10 s: the reason's
			// durations change each second.
			if starvedSince.IsZero() {
				starvedSince = now
			}
			told = now
			log.Error("watchdog: not fed: " + oneLine(err) + "; unless this clears, " + dev.Consequence())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func oneLine(err error) string {
	var b []byte
	for _, r := range err.Error() {
		if r == '\n' {
			b = append(b, "; "...)
			continue
		}
		b = append(b, string(r)...)
	}
	return string(b)
}

// Hardware is a watchdog device such as /dev/watchdog.
type Hardware struct {
	f       *os.File
	Timeout time.Duration // as the driver set it
}

// OpenHardware opens and arms the device, with timeout if it is not 0,
// waiting briefly for the node (it appears once the driver has loaded).
func OpenHardware(device string, timeout time.Duration) (*Hardware, error) {
	var f *os.File
	var err error
	for range 20 {
		if f, err = os.OpenFile(device, os.O_WRONLY, 0); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	const (
		wdiocSetTimeout = 0xC0045706 // _IOWR('W', 6, int)
		wdiocGetTimeout = 0x80045707 // _IOR('W', 7, int)
	)
	if timeout > 0 {
		if err := unix.IoctlSetPointerInt(int(f.Fd()), wdiocSetTimeout, int(timeout/time.Second)); err != nil {
			f.Close()
			return nil, fmt.Errorf("set timeout %s: %w", timeout, err)
		}
	}
	h := &Hardware{f: f, Timeout: timeout}
	if s, err := unix.IoctlGetInt(int(f.Fd()), wdiocGetTimeout); err == nil && s > 0 {
		h.Timeout = time.Duration(s) * time.Second
	}
	return h, nil
}

// Consequence says what the device does unfed.
func (h *Hardware) Consequence() string {
	return fmt.Sprintf("the watchdog resets the box %s after the last feed", h.Timeout)
}

// Keepalive feeds the device.
func (h *Hardware) Keepalive() error {
	_, err := h.f.Write([]byte{0})
	return err
}

// Soft is a watchdog inside the process, for a host daemon: Run returns
// an error once it has not been fed for Timeout.
type Soft struct {
	Timeout time.Duration
	mu      sync.Mutex
	fed     time.Time
}

// Consequence says what the watchdog does unfed.
func (s *Soft) Consequence() string {
	return fmt.Sprintf("the watchdog ends the daemon %s after the last feed", s.Timeout)
}

// Keepalive feeds it.
func (s *Soft) Keepalive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fed = time.Now()
	return nil
}

// ErrExpired is returned by Soft.Run when the watchdog was not fed.
var ErrExpired = errors.New("watchdog expired")

// Run waits until ctx ends (nil) or the watchdog goes Timeout unfed.
func (s *Soft) Run(ctx context.Context) error {
	s.Keepalive() // armed now
	t := time.NewTicker(min(s.Timeout/10, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		idle := time.Since(s.fed)
		s.mu.Unlock()
		if idle > s.Timeout {
			return fmt.Errorf("%w: not fed for %s", ErrExpired, idle.Round(time.Second))
		}
	}
}
