package macsec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors Protect and Validate return, one per reason a frame is dropped.
// Each is counted under the IEEE 802.1AE counter named in its comment;
// match them with errors.Is.
var (
	ErrNoTxSA      = errors.New("no transmit SA in use")                       // must-secure: nothing leaves unprotected
	ErrPNExhausted = errors.New("transmit SA has used its last packet number") // a new SAK is overdue
	ErrPNLimit     = errors.New("transmit SA reached its PN limit")            // SetTxPNLimit: held until raised
	ErrTooLong     = errors.New("frame too long")                              // OutPktsTooLong
	ErrRunt        = errors.New("frame shorter than an Ethernet header")
	ErrNoTag       = errors.New("frame has no SecTAG")            // InPktsNoTag
	ErrBadTag      = errors.New("malformed SecTAG")               // InPktsBadTag
	ErrOverrun     = errors.New("frame exceeds the maximum size") // InPktsOverrun
	ErrNoSCI       = errors.New("unknown SCI")                    // InPktsNoSCI
	ErrNotUsingSA  = errors.New("no receive SA for AN")           // InPktsNotUsingSA
	ErrLate        = errors.New("late PN")                        // InPktsLate
	ErrNotValid    = errors.New("bad ICV")                        // InPktsNotValid
)

// DropError is a dropped frame's reason with its details.
type DropError struct {
	Err    error // one of the Err* values
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *DropError) Unwrap() error { return e.Err }

func drop(err error, format string, a ...any) error {
	return &DropError{Err: err, Detail: fmt.Sprintf(format, a...)}
}

// Protect appends the protected form of frame (DA|SA|user data, no FCS) to
// dst[:0] and returns it. With enough capacity in dst it does not allocate.
// It refuses (and never sends in clear) when no transmit SA is usable.
func (s *SecY) Protect(dst, frame []byte) ([]byte, error) {
	if len(frame) < 14 {
		return dst[:0], drop(ErrRunt, "%d bytes", len(frame))
	}
	if s.cfg.MaxFrame > 0 && len(frame) > s.cfg.MaxFrame {
		s.Stats.OutPktsTooLong.Add(1)
		return dst[:0], drop(ErrTooLong, "%d bytes exceeds the %d-byte maximum", len(frame), s.cfg.MaxFrame)
	}
	over := Overhead(s.cfg.SendSCI)
	if s.cfg.MaxProtected > 0 && len(frame)+over > s.cfg.MaxProtected {
		s.Stats.OutPktsTooLong.Add(1)
		return dst[:0], drop(ErrTooLong, "%d bytes plus %d bytes of MACsec overhead exceeds the line's %d bytes", len(frame), over, s.cfg.MaxProtected)
	}
	an := s.encSA.Load()
	if an < 0 {
		return dst[:0], ErrNoTxSA
	}
	sa := s.txSA[an].Load()
	if sa == nil {
		return dst[:0], ErrNoTxSA
	}
	pn, err := sa.takePN()
	if err != nil {
		return dst[:0], err
	}
	iv := ivScratch(dst, len(frame)+over)
	sa.crypto.iv(iv, pn)
	user := frame[macLen:]
	out := append(dst[:0], frame[:macLen]...)
	out = appendSecTAG(out, s.tci, uint8(an), uint32(pn), s.cfg.SCI, len(user))
	if s.cfg.IntegrityOnly {
		out = append(out, user...)
		out = sa.crypto.aead.Seal(out, iv[:], nil, out)
		sa.Stats.OutPktsProtected.Add(1)
		s.TxSC.OutPktsProtected.Add(1)
		s.TxSC.OutOctetsProtected.Add(uint64(len(user)))
		return out, nil
	}
	off := min(s.cfg.Offset, len(user))
	out = append(out, user[:off]...)
	out = sa.crypto.aead.Seal(out, iv[:], user[off:], out)
	sa.Stats.OutPktsEncrypted.Add(1)
	s.TxSC.OutPktsEncrypted.Add(1)
	s.TxSC.OutOctetsEncrypted.Add(uint64(len(user)))
	return out, nil
}

// Validate checks a received frame and appends its unprotected form
// (DA|SA|user data) to dst[:0]. It applies validateFrames, replay
// protection and the IEEE 802.1AE counters. A nil error means the frame may
// be delivered; in Strict mode that happens only for frames that passed the
// ICV check. It never panics on any input.
func (s *SecY) Validate(dst, frame []byte) ([]byte, error) {
	strict := s.cfg.Validate == ValidateStrict
	if len(frame) < 14 {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], &DropError{Err: ErrBadTag, Detail: (&TagError{len(frame), "frame shorter than an Ethernet header"}).Error()}
	}
	if binary.BigEndian.Uint16(frame[macLen:]) != EtherType {
		if strict {
			s.Stats.InPktsNoTag.Add(1)
			return dst[:0], ErrNoTag
		}
		s.Stats.InPktsUntagged.Add(1)
		return append(dst[:0], frame...), nil
	}
	if s.cfg.MaxProtected > 0 && len(frame) > s.cfg.MaxProtected {
		s.Stats.InPktsOverrun.Add(1)
		return dst[:0], drop(ErrOverrun, "%d bytes exceeds the %d-byte maximum", len(frame), s.cfg.MaxProtected)
	}
	tag, err := ParseSecTAG(frame, macLen)
	if err != nil {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], &DropError{Err: ErrBadTag, Detail: err.Error()}
	}
	hdr := macLen + tag.Length
	secure := len(frame) - hdr - ICVLen
	if tag.SL != 0 {
		secure = int(tag.SL) // the rest is Ethernet padding
	}
	encrypted := tag.Encrypted()
	sci := tag.SCI
	if !tag.HasSCI() {
		sci = MakeSCI(frame[6:12], 1)
	}
	sc := s.RxSC(sci)
	if sc == nil {
		if strict || encrypted {
			s.Stats.InPktsNoSCI.Add(1)
			return dst[:0], drop(ErrNoSCI, "%v", sci)
		}
		s.Stats.InPktsUnknownSCI.Add(1)
		return s.strip(dst, frame, hdr, secure), nil
	}
	sa := sc.SA(tag.AN)
	if sa == nil {
		if strict || encrypted {
			sc.Stats.InPktsNotUsingSA.Add(1)
			return dst[:0], drop(ErrNotUsingSA, "%d on SC %v", tag.AN, sci)
		}
		sc.Stats.InPktsUnusedSA.Add(1)
		return s.strip(dst, frame, hdr, secure), nil
	}
	lowest := sa.LowestPN()
	pn := recoverPN(sa.crypto.xpn, tag.PN, lowest)
	if pn == 0 {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], &DropError{Err: ErrBadTag, Detail: (&TagError{macLen + 4, "packet number 0"}).Error()}
	}
	replay := !s.cfg.NoReplay
	if replay && pn < lowest {
		sc.Stats.InPktsLate.Add(1)
		return dst[:0], drop(ErrLate, "PN %#x below the lowest acceptable %#x on SA %d", pn, lowest, tag.AN)
	}
	if s.cfg.Validate == ValidateDisabled && !encrypted {
		sc.Stats.InPktsUnchecked.Add(1)
		return s.strip(dst, frame, hdr, secure), nil
	}

	iv := ivScratch(dst, len(frame))
	sa.crypto.iv(iv, pn)
	icv := frame[hdr+secure : hdr+secure+ICVLen]
	out := append(dst[:0], frame[:macLen]...)
	var openErr error
	if encrypted {
		off := min(s.cfg.Offset, secure)
		out = append(out, frame[hdr:hdr+off]...)
		// The ciphertext and ICV are contiguous unless padding follows SL.
		ct := frame[hdr+off : hdr+secure+ICVLen]
		out, openErr = sa.crypto.aead.Open(out, iv[:], ct, frame[:hdr+off])
	} else {
		_, openErr = sa.crypto.aead.Open(out[len(out):], iv[:], icv, frame[:hdr+secure])
		out = append(out, frame[hdr:hdr+secure]...)
	}
	if openErr != nil {
		if strict || encrypted {
			sa.Stats.InPktsNotValid.Add(1)
			return dst[:0], drop(ErrNotValid, "SA %d, PN %#x", tag.AN, pn)
		}
		sa.Stats.InPktsInvalid.Add(1)
		return s.strip(dst, frame, hdr, secure), nil
	}
	if !sa.update(pn, replay) {
		sc.Stats.InPktsLate.Add(1)
		return dst[:0], drop(ErrLate, "PN %#x fell below the replay window on SA %d", pn, tag.AN)
	}
	if pn < lowest {
		sc.Stats.InPktsDelayed.Add(1)
	} else {
		sa.Stats.InPktsOK.Add(1)
	}
	if encrypted {
		sc.Stats.InOctetsDecrypted.Add(uint64(secure))
	} else {
		sc.Stats.InOctetsValidated.Add(uint64(secure))
	}
	return out, nil
}

// ivScratch returns 12 bytes for the GCM IV. A slice passed through the
// cipher.AEAD interface escapes to the heap, so the IV lives in dst's spare
// capacity past the result's last byte (need), where Seal and Open never
// write; only without that room does it cost an allocation.
func ivScratch(dst []byte, need int) *[12]byte {
	if cap(dst) >= need+12 {
		return (*[12]byte)(dst[need : need+12 : need+12])
	}
	return new([12]byte)
}

// strip returns the frame without SecTAG and ICV, unverified: only for the
// Check and Disabled modes, never for encrypted frames.
func (s *SecY) strip(dst, frame []byte, hdr, secure int) []byte {
	out := append(dst[:0], frame[:macLen]...)
	return append(out, frame[hdr:hdr+secure]...)
}
