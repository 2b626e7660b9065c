package main

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"

	"github.com/secwire/secwire/offload/macsec"
)

// keyFlags are the static-key options `frame` and `pcap` share:
// --cipher --key [--ssci --salt] --pn.
type keyFlags struct {
	cipher, key, ssci, salt string
	pn                      uint64
}

func (k *keyFlags) register(fs *flag.FlagSet, pnHelp string) {
	fs.StringVar(&k.cipher, "cipher", macsec.GCMAES128.String(), "cipher suite: "+strings.Join(macsec.CipherSuiteNames(), ", "))
	fs.StringVar(&k.key, "key", "", "SAK as hex")
	fs.StringVar(&k.ssci, "ssci", "", "XPN short SCI (8 hex digits)")
	fs.StringVar(&k.salt, "salt", "", "XPN salt (24 hex digits)")
	fs.Uint64Var(&k.pn, "pn", 1, pnHelp)
}

// params checks the options and returns the suite and SA parameters (AN
// 0). Errors never repeat the key.
func (k *keyFlags) params() (macsec.CipherSuite, macsec.SAParams, error) {
	var p macsec.SAParams
	suite, err := macsec.ParseCipherSuite(k.cipher)
	if err != nil {
		return 0, p, err
	}
	key, err := macsec.ParseKeyHex(k.key, suite.KeyLen())
	if err != nil {
		return 0, p, fmt.Errorf("--key: %w", err)
	}
	p = macsec.SAParams{Key: key, PN: k.pn}
	if suite.XPN() {
		ssci, err := hex.DecodeString(k.ssci)
		if err != nil || len(ssci) != 4 {
			key.Wipe()
			return 0, p, fmt.Errorf("--ssci: %s needs 8 hex digits", suite)
		}
		salt, err := hex.DecodeString(k.salt)
		if err != nil || len(salt) != 12 {
			key.Wipe()
			return 0, p, fmt.Errorf("--salt: %s needs 24 hex digits", suite)
		}
		p.SSCI = binary.BigEndian.Uint32(ssci)
		copy(p.Salt[:], salt)
	}
	return suite, p, nil
}
