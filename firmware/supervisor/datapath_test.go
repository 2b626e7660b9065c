package supervisor

import (
	"bytes"
	"testing"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/secytest"
	"github.com/secwire/secwire/offload/software"
)

func newTestSoftwarePath(t *testing.T, suite macsec.CipherSuite) *softwarePath {
	p, err := newSoftwarePath(macsec.Config{Suite: suite, SCI: 0x025e00000a010001, SendSCI: true}, software.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The software datapath, as the supervisor holds it, passes the SecY
// seam's conformance suite (the kernel's runs it in offload/kernel).
func TestSoftwareDatapathConformance(t *testing.T) {
	secytest.Run(t, func(t *testing.T, suite macsec.CipherSuite) macsec.Seam {
		p := newTestSoftwarePath(t, suite)
		t.Cleanup(p.Stop)
		return p
	})
}

// Secured needs the encoding SA in use and a receive SA; Stop, never started,
// forgets every SA.
func TestSoftwareDatapathSecuredAndStop(t *testing.T) {
	p := newTestSoftwarePath(t, macsec.GCMAES128)
	key := macsec.NewKey(bytes.Repeat([]byte{7}, 16))
	peer := macsec.SCI(0x025e00000b010001)
	if p.Secured() {
		t.Fatal("secured with no SA")
	}
	// A transmit SA at AN 3 not yet in use and a receive SA: nothing is
	// sent yet, so not secured (link-fault pass-through keeps the
	// plaintext port down).
	if err := p.InstallTxSA(macsec.SAParams{AN: 3, Key: key, PN: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.InstallRxSA(peer, macsec.SAParams{AN: 3, Key: key, PN: 1}); err != nil {
		t.Fatal(err)
	}
	if p.Secured() {
		t.Fatal("secured with a transmit SA that is not the encoding SA")
	}
	p.DeleteTxSA(3)
	p.DeleteRxSA(peer, 3)
	if err := p.InstallTxSA(macsec.SAParams{AN: 0, Key: key, PN: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetEncodingSA(0); err != nil {
		t.Fatal(err)
	}
	if p.Secured() {
		t.Fatal("secured with no receive SA")
	}
	if err := p.InstallRxSA(peer, macsec.SAParams{AN: 0, Key: key, PN: 1}); err != nil {
		t.Fatal(err)
	}
	if !p.Secured() {
		t.Fatal("not secured with a transmit and a receive SA")
	}
	if err := p.SendEAPOL([]byte{1}); err == nil {
		t.Error("SendEAPOL before forward succeeded")
	}
	p.Stop()
	if p.Secured() || p.TxNextPN(0) != 0 || p.RxNextPN(peer, 0) != 0 || len(p.RxSCs()) != 0 {
		t.Errorf("SAs left after Stop: secured %v, tx PN %d, rx PN %d, %d SCs", p.Secured(), p.TxNextPN(0), p.RxNextPN(peer, 0), len(p.RxSCs()))
	}
}
