package macsec_test

import (
	"testing"

	"github.com/secwire/secwire/qemu/guest"
)

// TestMain lets the guest tests' output reach the host whole.
func TestMain(m *testing.M) { guest.Main(m) }
