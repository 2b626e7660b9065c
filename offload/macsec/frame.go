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
	r, err := s.Reserve(frame)
	if err != nil {
		return dst[:0], err
	}
	return s.Seal(dst, frame, r, nil), nil
}

// A Reservation is a PN taken on the encoding SA for one frame, to be
// sealed with Seal. Datapaths with several workers take PNs in the order
// frames arrive and seal in parallel; frames then leave in PN order if
// they are sent in the order their PNs were taken.
type Reservation struct {
	sa *TxSA
	pn uint64
	an uint8
}

// PN is the packet number reserved.
func (r Reservation) PN() uint64 { return r.pn }

// Reserve checks that frame may be protected and takes its PN. Every
// Reservation must be sealed: a PN taken is never given back.
func (s *SecY) Reserve(frame []byte) (Reservation, error) {
	if len(frame) < 14 {
		return Reservation{}, drop(ErrRunt, "%d bytes", len(frame))
	}
	if s.cfg.MaxFrame > 0 && len(frame) > s.cfg.MaxFrame {
		s.Stats.OutPktsTooLong.Add(1)
		return Reservation{}, drop(ErrTooLong, "%d bytes exceeds the %d-byte maximum", len(frame), s.cfg.MaxFrame)
	}
	if s.cfg.MaxProtected > 0 {
		if over := Overhead(s.cfg.SendSCI); len(frame)+over > s.cfg.MaxProtected {
			s.Stats.OutPktsTooLong.Add(1)
			return Reservation{}, drop(ErrTooLong, "%d bytes plus %d bytes of MACsec overhead exceeds the line's %d bytes", len(frame), over, s.cfg.MaxProtected)
		}
	}
	an := s.encSA.Load()
	if an < 0 {
		return Reservation{}, ErrNoTxSA
	}
	sa := s.txSA[an].Load()
	if sa == nil {
		return Reservation{}, ErrNoTxSA
	}
	pn, err := sa.takePN()
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{sa: sa, pn: pn, an: uint8(an)}, nil
}

// Seal appends the protected form of frame under r to dst[:0]. The frame
// must be the one (or as long as the one) r was reserved for. It counts
// the frame in t, or, when t is nil, in the shared counters at once.
func (s *SecY) Seal(dst, frame []byte, r Reservation, t *Tally) []byte {
	sa := r.sa
	user := frame[macLen:]
	hdr := macLen + 8
	if s.cfg.SendSCI {
		hdr += 8
	}
	n := hdr + len(user) + ICVLen
	// A slice passed through the cipher.AEAD interface escapes to the
	// heap, so the IV lives in dst's spare capacity past the result's last
	// byte, where Seal never writes.
	if cap(dst) < n+12 {
		dst = make([]byte, 0, n+12)
	}
	out := dst[:hdr]
	iv := (*[12]byte)(dst[n : n+12 : n+12])
	sa.crypto.iv(iv, r.pn)
	copy(out, frame[:macLen])
	putSecTAG(out[macLen:hdr], s.tci, r.an, uint32(r.pn), s.cfg.SCI, len(user))
	if s.cfg.IntegrityOnly {
		out = append(out, user...)
		out = sa.crypto.aead.Seal(out, iv[:], nil, out)
		if t != nil {
			t.countTx(s, sa, false, len(user))
			return out
		}
		sa.Stats.OutPktsProtected.Add(1)
		s.TxSC.OutPktsProtected.Add(1)
		s.TxSC.OutOctetsProtected.Add(uint64(len(user)))
		return out
	}
	off := min(s.cfg.Offset, len(user))
	out = append(out, user[:off]...)
	out = sa.crypto.aead.Seal(out, iv[:], user[off:], out)
	if t != nil {
		t.countTx(s, sa, true, len(user))
		return out
	}
	sa.Stats.OutPktsEncrypted.Add(1)
	s.TxSC.OutPktsEncrypted.Add(1)
	s.TxSC.OutOctetsEncrypted.Add(uint64(len(user)))
	return out
}

// Validate checks a received frame and appends its unprotected form
// (DA|SA|user data) to dst[:0]. It applies validateFrames, replay
// protection and the IEEE 802.1AE counters. A nil error means the frame may
// be delivered; in Strict mode that happens only for frames that passed the
// ICV check. It never panics on any input.
func (s *SecY) Validate(dst, frame []byte) ([]byte, error) {
	out, o, err := s.Open(dst, frame)
	if err != nil {
		return out, err
	}
	if err := s.Accept(&o, nil); err != nil {
		return dst[:0], err
	}
	return out, nil
}

// Opened is a frame that Open verified, waiting for Accept's replay check.
type Opened struct {
	sc        *RxSC
	sa        *RxSA
	pn        uint64
	lowest    uint64
	secure    int
	encrypted bool
	replay    bool
}

// PN is the frame's packet number (0 for a frame delivered unchecked).
func (o *Opened) PN() uint64 { return o.pn }

// Open is Validate without the last step: it checks the frame and its ICV
// against the replay window as it stands, and leaves to Accept the update
// of the window and the counters of accepted frames. Datapaths with
// several workers Open in parallel and Accept in arrival order, so that a
// replay window of 0 holds across workers. A frame whose Open succeeds may
// be delivered only once Accept returns nil.
func (s *SecY) Open(dst, frame []byte) ([]byte, Opened, error) {
	strict := s.cfg.Validate == ValidateStrict
	if len(frame) < 14 {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], Opened{}, &DropError{Err: ErrBadTag, Detail: (&TagError{len(frame), "frame shorter than an Ethernet header"}).Error()}
	}
	if binary.BigEndian.Uint16(frame[macLen:]) != EtherType {
		if strict {
			s.Stats.InPktsNoTag.Add(1)
			return dst[:0], Opened{}, ErrNoTag
		}
		s.Stats.InPktsUntagged.Add(1)
		return append(dst[:0], frame...), Opened{}, nil
	}
	if s.cfg.MaxProtected > 0 && len(frame) > s.cfg.MaxProtected {
		s.Stats.InPktsOverrun.Add(1)
		return dst[:0], Opened{}, drop(ErrOverrun, "%d bytes exceeds the %d-byte maximum", len(frame), s.cfg.MaxProtected)
	}
	tag, err := ParseSecTAG(frame, macLen)
	if err != nil {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], Opened{}, &DropError{Err: ErrBadTag, Detail: err.Error()}
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
			return dst[:0], Opened{}, drop(ErrNoSCI, "%v", sci)
		}
		s.Stats.InPktsUnknownSCI.Add(1)
		return s.strip(dst, frame, hdr, secure), Opened{}, nil
	}
	sa := sc.SA(tag.AN)
	if sa == nil {
		if strict || encrypted {
			sc.Stats.InPktsNotUsingSA.Add(1)
			return dst[:0], Opened{}, drop(ErrNotUsingSA, "%d on SC %v", tag.AN, sci)
		}
		sc.Stats.InPktsUnusedSA.Add(1)
		return s.strip(dst, frame, hdr, secure), Opened{}, nil
	}
	lowest := sa.LowestPN()
	pn := recoverPN(sa.crypto.xpn, tag.PN, lowest)
	if pn == 0 {
		s.Stats.InPktsBadTag.Add(1)
		return dst[:0], Opened{}, &DropError{Err: ErrBadTag, Detail: (&TagError{macLen + 4, "packet number 0"}).Error()}
	}
	replay := !s.cfg.NoReplay
	if replay && pn < lowest {
		sc.Stats.InPktsLate.Add(1)
		return dst[:0], Opened{}, drop(ErrLate, "PN %#x below the lowest acceptable %#x on SA %d", pn, lowest, tag.AN)
	}
	if s.cfg.Validate == ValidateDisabled && !encrypted {
		sc.Stats.InPktsUnchecked.Add(1)
		return s.strip(dst, frame, hdr, secure), Opened{}, nil
	}

	n := macLen + secure // the IV after the result, as in Seal
	if cap(dst) < n+12 {
		dst = make([]byte, 0, n+12)
	}
	iv := (*[12]byte)(dst[n : n+12 : n+12])
	sa.crypto.iv(iv, pn)
	out := append(dst[:0], frame[:macLen]...)
	var openErr error
	if encrypted {
		off := min(s.cfg.Offset, secure)
		out = append(out, frame[hdr:hdr+off]...)
		// The ciphertext and ICV are contiguous unless padding follows SL.
		ct := frame[hdr+off : hdr+secure+ICVLen]
		out, openErr = sa.crypto.aead.Open(out, iv[:], ct, frame[:hdr+off])
	} else {
		icv := frame[hdr+secure : hdr+secure+ICVLen]
		_, openErr = sa.crypto.aead.Open(out[len(out):], iv[:], icv, frame[:hdr+secure])
		out = append(out, frame[hdr:hdr+secure]...)
	}
	if openErr != nil {
		if strict || encrypted {
			sa.Stats.InPktsNotValid.Add(1)
			return dst[:0], Opened{}, drop(ErrNotValid, "SA %d, PN %#x", tag.AN, pn)
		}
		sa.Stats.InPktsInvalid.Add(1)
		return s.strip(dst, frame, hdr, secure), Opened{}, nil
	}
	return out, Opened{sc: sc, sa: sa, pn: pn, lowest: lowest, secure: secure, encrypted: encrypted, replay: replay}, nil
}

// Accept completes the validation of a frame Open verified: it moves the
// replay window and counts the frame, in t or, when t is nil, in the
// shared counters at once. A frame Accept refuses (ErrLate: a frame with
// a higher PN was accepted meanwhile, beyond the window) must be dropped.
func (s *SecY) Accept(o *Opened, t *Tally) error {
	sa := o.sa
	if sa == nil { // delivered unchecked: counted by Open
		return nil
	}
	if !sa.update(o.pn, o.replay) {
		o.sc.Stats.InPktsLate.Add(1)
		return drop(ErrLate, "PN %#x fell below the replay window on SA %d", o.pn, sa.AN)
	}
	if t != nil {
		t.countRx(s, o)
		return nil
	}
	if o.pn < o.lowest {
		o.sc.Stats.InPktsDelayed.Add(1)
	} else {
		sa.Stats.InPktsOK.Add(1)
	}
	if o.encrypted {
		o.sc.Stats.InOctetsDecrypted.Add(uint64(o.secure))
	} else {
		o.sc.Stats.InOctetsValidated.Add(uint64(o.secure))
	}
	return nil
}

// strip returns the frame without SecTAG and ICV, unverified: only for the
// Check and Disabled modes, never for encrypted frames.
func (s *SecY) strip(dst, frame []byte, hdr, secure int) []byte {
	out := append(dst[:0], frame[:macLen]...)
	return append(out, frame[hdr:hdr+secure]...)
}
