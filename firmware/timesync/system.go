package timesync

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// System sets the Linux system clock (the appliance's).
type System struct{}

// Step jumps the clock by d.
func (System) Step(d time.Duration) error {
	ts := unix.NsecToTimespec(time.Now().Add(d).UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime: %w", err)
	}
	return nil
}

// Slew has the kernel converge by d gradually (adjtime's single-shot
// offset, 0.5 ms per second).
func (System) Slew(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}

// MarkSynced tells the kernel the clock is synchronised (clears
// STA_UNSYNC), as NTP daemons do after a correction.
func (System) MarkSynced() error {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	tx.Modes = unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR
	tx.Status &^= unix.STA_UNSYNC
	tx.Maxerror, tx.Esterror = 100000, 10000 // µs
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}

// KernelSynced reports whether the kernel considers the system clock
// synchronised (an NTP daemon of the host cleared STA_UNSYNC).
func KernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}

// DeviceRTC is a Linux RTC device such as /dev/rtc0, which keeps UTC.
type DeviceRTC struct{ Path string }

// Read reads the RTC.
func (r DeviceRTC) Read() (time.Time, error) {
	f, err := os.Open(r.Path)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	t, err := unix.IoctlGetRTCTime(int(f.Fd()))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: RTC_RD_TIME: %w", r.Path, err)
	}
	return time.Date(int(t.Year)+1900, time.Month(t.Mon+1), int(t.Mday), int(t.Hour), int(t.Min), int(t.Sec), 0, time.UTC), nil
}

// Set writes the RTC.
func (r DeviceRTC) Set(t time.Time) error {
	f, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	u := t.UTC()
	v := unix.RTCTime{Sec: int32(u.Second()), Min: int32(u.Minute()), Hour: int32(u.Hour()), Mday: int32(u.Day()),
		Mon: int32(u.Month()) - 1, Year: int32(u.Year()) - 1900, Wday: int32(u.Weekday()), Yday: int32(u.YearDay()) - 1}
	if err := unix.IoctlSetRTCTime(int(f.Fd()), &v); err != nil {
		return fmt.Errorf("%s: RTC_SET_TIME: %w", r.Path, err)
	}
	return nil
}
