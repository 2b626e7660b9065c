package supervisor_test

import (
	"encoding/hex"
	"testing"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/qemu/guest"
)

// TestMain lets the guest tests' output reach the host whole.
func TestMain(m *testing.M) { guest.Main(m) }

func mustHex(s string) config.Hex {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func mustSCI(s string) macsec.SCI {
	sci, err := macsec.ParseSCI(s)
	if err != nil {
		panic(err)
	}
	return sci
}
