package macsec_test

import (
	"testing"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/secytest"
)

// The Go codec passes the SecY seam's conformance suite (the kernel
// backend runs the same suite in offload/kernel).
func TestSoftwareSecYConformance(t *testing.T) {
	secytest.Run(t, func(t *testing.T, suite macsec.CipherSuite) macsec.Seam {
		s, err := macsec.NewSecY(macsec.Config{Suite: suite, SCI: 0x025e00000a010001, SendSCI: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
