package timesync

import (
	"testing"
	"time"

	"github.com/secwire/secwire/qemu/guest"
)

// The appliance's clock path on a real kernel: QEMU's RTC starts at a
// date far from this host's; the boot's SetFromRTC sets the system clock
// from /dev/rtc0, a step moves it, the RTC is written and read back, and
// the kernel is told the clock is synchronised.
func TestSystemClockAndRTCInGuest(t *testing.T) {
	base := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	if guest.Run(t, guest.Config{Extra: []string{"-rtc", "base=" + base.Format("2006-01-02T15:04:05")}, Timeout: 8 * time.Minute}) {
		return
	}
	rtc := DeviceRTC{Path: "/dev/rtc0"}
	got, err := rtc.Read()
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(base); d < 0 || d > 10*time.Minute {
		t.Fatalf("RTC reads %s, QEMU started it at %s", got, base)
	}
	if _, err := SetFromRTC(rtc, System{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got); d < -2*time.Second || d > time.Minute {
		t.Fatalf("after SetFromRTC the clock reads %s, the RTC %s", time.Now(), got)
	}
	before := time.Now()
	if err := (System{}).Step(time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := time.Now().Round(0).Sub(before.Round(0)); d < time.Hour || d > time.Hour+time.Minute {
		t.Fatalf("a 1h step moved the clock by %s", d)
	}
	if err := (System{}).Slew(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := (System{}).MarkSynced(); err != nil || !KernelSynced() {
		t.Fatalf("the kernel does not take the clock as synchronised: %v", err)
	}
	want := time.Date(2032, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := rtc.Set(want); err != nil {
		t.Fatal(err)
	}
	if got, err := rtc.Read(); err != nil || got.Sub(want) < 0 || got.Sub(want) > 5*time.Second {
		t.Fatalf("RTC written %s, reads %s (%v)", want, got, err)
	}
}
