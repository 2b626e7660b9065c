package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/secwire/secwire/offload/macsec"
)

const frameUsage = `usage:
  secwire frame protect  --cipher C --key HEX --sci HEX [--ssci HEX --salt HEX] --pn N [--an 0..3]
                         [--no-sci] [--integrity-only] [--offset 0|30|50] FRAMEHEX
  secwire frame validate --cipher C --key HEX --sci HEX [--ssci HEX --salt HEX] [--pn LOWEST] [--an 0..3]
                         [--integrity-only] [--offset 0|30|50] [--window N] PROTECTEDHEX

FRAMEHEX is DA|SA|EtherType|payload without FCS. validate prints the frame
or why it was dropped; --pn is then the lowest acceptable PN (default 1)`

// frameCmd protects or validates one frame with a static key.
func frameCmd(args []string, w io.Writer) error {
	if len(args) == 0 || (args[0] != "protect" && args[0] != "validate") {
		return errors.New(frameUsage)
	}
	protect := args[0] == "protect"
	fs := flag.NewFlagSet("frame "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var kf keyFlags
	kf.register(fs, "packet number (validate: lowest acceptable)")
	sciHex := fs.String("sci", "", "SCI of the transmitter (16 hex digits)")
	an := fs.Uint("an", 0, "association number")
	noSCI := fs.Bool("no-sci", false, "do not send the SCI (ES=1: SCI is MAC SA || 0001)")
	integ := fs.Bool("integrity-only", false, "integrity only (E=0, C=0)")
	offset := fs.Int("offset", 0, "confidentiality offset 0, 30 or 50")
	window := fs.Uint("window", 0, "replay window")
	if err := parseFlags(fs, args[1:], frameUsage); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("need exactly one frame in hex\n%s", frameUsage)
	}
	if *an > 3 {
		return fmt.Errorf("--an %d: want 0..3", *an)
	}
	suite, p, err := kf.params()
	if err != nil {
		return err
	}
	defer p.Key.Wipe()
	p.AN = uint8(*an)
	sci, err := macsec.ParseSCI(*sciHex)
	if err != nil {
		return fmt.Errorf("--sci: %w", err)
	}
	frame, err := hex.DecodeString(strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		return fmt.Errorf("frame is not hex: %v", err)
	}
	cfg := macsec.Config{
		Suite: suite, SCI: sci, SendSCI: !*noSCI, EndStation: *noSCI,
		IntegrityOnly: *integ, Offset: *offset, ReplayWindow: uint32(*window),
	}
	s, err := macsec.NewSecY(cfg)
	if err != nil {
		return err
	}
	var out []byte
	if protect {
		if err := s.InstallTxSA(p); err != nil {
			return err
		}
		if err := s.SetEncodingSA(int(p.AN)); err != nil {
			return err
		}
		out, err = s.Protect(nil, frame)
	} else {
		// The SC is the SCI in the frame's SecTAG if it has one; --sci
		// names the transmitter otherwise.
		if err := s.InstallRxSA(sci, p); err != nil {
			return err
		}
		out, err = s.Validate(nil, frame)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, hex.EncodeToString(out))
	return nil
}
