package macsec

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ValidateMode is IEEE 802.1AE validateFrames.
type ValidateMode uint8

// Validation modes. Strict is the default and the only fail-closed one.
const (
	ValidateStrict ValidateMode = iota
	ValidateCheck
	ValidateDisabled
)

func (v ValidateMode) String() string {
	switch v {
	case ValidateStrict:
		return "strict"
	case ValidateCheck:
		return "check"
	case ValidateDisabled:
		return "disabled"
	}
	return fmt.Sprintf("validate(%d)", uint8(v))
}

// ValidateModes are the modes, the default first.
var ValidateModes = []ValidateMode{ValidateStrict, ValidateCheck, ValidateDisabled}

// ParseValidateMode accepts strict, check and disabled.
func ParseValidateMode(s string) (ValidateMode, error) {
	for _, v := range ValidateModes {
		if s == v.String() {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown validate mode %q: want strict, check or disabled", s)
}

// MarshalText writes the mode's name.
func (v ValidateMode) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText accepts what ParseValidateMode accepts.
func (v *ValidateMode) UnmarshalText(b []byte) error {
	m, err := ParseValidateMode(string(b))
	if err != nil {
		return err
	}
	*v = m
	return nil
}

// Describe is one line on the mode for an operator.
func (v ValidateMode) Describe() string {
	switch v {
	case ValidateStrict:
		return "Drop frames that fail validation (default)"
	case ValidateCheck:
		return "Count frames that fail validation, pass them"
	case ValidateDisabled:
		return "No validation"
	}
	return ""
}

// Choices are the names UnmarshalText accepts (for completion).
func (ValidateMode) Choices() []string {
	out := make([]string, len(ValidateModes))
	for i, v := range ValidateModes {
		out[i] = v.String()
	}
	return out
}

// Config is the SecY's configuration (IEEE 802.1AE 10.7 managed objects).
type Config struct {
	Suite      CipherSuite
	SCI        SCI  // transmit SCI
	SendSCI    bool // SC bit: include the SCI in every SecTAG
	EndStation bool // ES bit: SCI is MAC SA || 0001 and not sent
	SCB        bool // SCB bit

	// IntegrityOnly sends frames with E=0, C=0 (protected, not encrypted).
	IntegrityOnly bool
	// Offset is the confidentiality offset: 0, 30 or 50 octets of user
	// data left in clear (but integrity protected).
	Offset int

	Validate     ValidateMode
	ReplayWindow uint32 // replay protection is always on; 0 means strict order
	NoReplay     bool   // turn replay protection off (lab use only)

	// MaxFrame is the largest unprotected frame, DA to end of data without
	// FCS, that may be protected or delivered; 0 means no limit. Longer
	// frames count as OutPktsTooLong / InPktsOverrun.
	MaxFrame int
	// MaxProtected is the largest protected frame the line can carry; 0
	// means no limit. Frames that would exceed it count as OutPktsTooLong.
	MaxProtected int

	// PNThreshold is where a transmit SA reports that it needs a new SAK;
	// 0 means the suite's default (3/4 of the PN space).
	PNThreshold uint64
	// OnPNThreshold, when set, is called once per transmit SA when its PN
	// passes PNThreshold. It runs on the datapath: it must not block.
	OnPNThreshold func(an uint8, pn uint64)
}

// Check validates the configuration.
func (c *Config) Check() error {
	switch {
	case !c.Suite.Valid():
		return fmt.Errorf("cipher suite %v is not supported", c.Suite)
	case c.Offset != 0 && c.Offset != 30 && c.Offset != 50:
		return fmt.Errorf("confidentiality offset %d: want 0, 30 or 50", c.Offset)
	case c.IntegrityOnly && c.Offset != 0:
		return errors.New("a confidentiality offset makes no sense with integrity-only protection")
	case c.SendSCI && c.EndStation:
		return errors.New("send-sci and end-station exclude each other (ES and SC cannot both be set)")
	case c.SendSCI && c.SCB:
		return errors.New("send-sci and SCB exclude each other")
	case c.Validate > ValidateDisabled:
		return fmt.Errorf("validate mode %d out of range", c.Validate)
	case c.Suite.XPN() && c.ReplayWindow > 1<<30:
		return fmt.Errorf("replay window %d too large for XPN: at most 2^30", c.ReplayWindow)
	}
	return nil
}

// SecY is one MACsec security entity: a transmit SC with up to four SAs and
// any number of receive SCs. Protect and Validate may run on many goroutines
// at once while the control plane installs and removes SAs.
type SecY struct {
	cfg   Config
	tci   byte
	txSA  [4]atomic.Pointer[TxSA]
	encSA atomic.Int32 // encoding SA's AN, -1 for none

	mu       sync.Mutex                    // serialises control-plane changes
	rxs      atomic.Pointer[map[SCI]*RxSC] // copy-on-write for a lock-free read path
	one      atomic.Pointer[RxSC]          // the only RxSC, for tags without SCI
	rmu      sync.Mutex                    // guards readers
	readers  []*Reader                     // datapath workers (retire.go)
	retiring atomic.Int32                  // key schedules waiting to be wiped

	Stats SecYStats
	TxSC  TxSCStats
}

// SecYStats are the per-SecY counters of IEEE 802.1AE 10.7.
type SecYStats struct {
	OutPktsUntagged  atomic.Uint64
	OutPktsTooLong   atomic.Uint64
	InPktsUntagged   atomic.Uint64
	InPktsNoTag      atomic.Uint64
	InPktsBadTag     atomic.Uint64
	InPktsUnknownSCI atomic.Uint64
	InPktsNoSCI      atomic.Uint64
	InPktsOverrun    atomic.Uint64
}

// TxSCStats are the transmit SC counters.
type TxSCStats struct {
	OutPktsProtected   atomic.Uint64
	OutPktsEncrypted   atomic.Uint64
	OutOctetsProtected atomic.Uint64
	OutOctetsEncrypted atomic.Uint64
}

// NewSecY creates a SecY with no SAs: until a transmit SA is installed and
// made the encoding SA, Protect refuses every frame.
func NewSecY(cfg Config) (*SecY, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.PNThreshold == 0 {
		cfg.PNThreshold = cfg.Suite.DefaultPNThreshold()
	}
	s := &SecY{cfg: cfg}
	if !cfg.IntegrityOnly {
		s.tci |= TCIEncrypted | TCIChanged
	}
	if cfg.SendSCI {
		s.tci |= TCISCI
	}
	if cfg.EndStation {
		s.tci |= TCIEndStation
	}
	if cfg.SCB {
		s.tci |= TCISCB
	}
	s.encSA.Store(-1)
	m := map[SCI]*RxSC{}
	s.rxs.Store(&m)
	return s, nil
}

// Config returns the SecY's configuration.
func (s *SecY) Config() Config { return s.cfg }

// InstallTxSA installs (or replaces) the transmit SA for p.AN. It does not
// make it the encoding SA; SetEncodingSA does.
func (s *SecY) InstallTxSA(p SAParams) error {
	c, err := newSACrypto(s.cfg.Suite, s.cfg.SCI, p)
	if err != nil {
		return fmt.Errorf("transmit SA %d: %w", p.AN, err)
	}
	sa := &TxSA{AN: p.AN, crypto: c, maxPN: s.cfg.Suite.MaxPN(), threshold: s.cfg.PNThreshold, onPN: s.cfg.OnPNThreshold}
	sa.nextPN.Store(p.PN)
	if old := s.txSA[p.AN].Swap(sa); old != nil {
		s.retire(&old.crypto)
	}
	return nil
}

// SetEncodingSA chooses the transmit SA; -1 stops transmission.
func (s *SecY) SetEncodingSA(an int) error {
	if an < -1 || an > 3 {
		return fmt.Errorf("association number %d out of range 0..3", an)
	}
	if an >= 0 && s.txSA[an].Load() == nil {
		return fmt.Errorf("no transmit SA installed for AN %d", an)
	}
	s.encSA.Store(int32(an))
	return nil
}

// SetTxPNLimit makes the transmit SA for an send only PNs below limit:
// Protect refuses frames with ErrPNLimit (never in clear) until the limit
// is raised. 0 lifts it. Static keys use it to never send past the PN
// ceiling recorded on disk.
func (s *SecY) SetTxPNLimit(an uint8, limit uint64) error {
	sa := s.txSA[an&3].Load()
	if sa == nil {
		return fmt.Errorf("no transmit SA installed for AN %d", an)
	}
	sa.limit.Store(limit)
	return nil
}

// EncodingSA is the AN in use for transmit, or -1.
func (s *SecY) EncodingSA() int { return int(s.encSA.Load()) }

// TxSA returns the transmit SA for an, or nil.
func (s *SecY) TxSA(an uint8) *TxSA { return s.txSA[an&3].Load() }

// DeleteTxSA removes the transmit SA and wipes its key. Deleting the
// encoding SA stops transmission.
func (s *SecY) DeleteTxSA(an uint8) {
	s.encSA.CompareAndSwap(int32(an&3), -1)
	if old := s.txSA[an&3].Swap(nil); old != nil {
		s.retire(&old.crypto)
	}
}

// RxSC is a receive secure channel.
type RxSC struct {
	SCI   SCI
	sa    [4]atomic.Pointer[RxSA]
	Stats RxSCStats
}

// RxSCStats are the receive SC counters that are not kept per SA.
type RxSCStats struct {
	InPktsUnchecked   atomic.Uint64
	InPktsDelayed     atomic.Uint64
	InPktsLate        atomic.Uint64
	InPktsNotUsingSA  atomic.Uint64 // no SA for the AN, frame discarded
	InPktsUnusedSA    atomic.Uint64 // no SA for the AN, frame delivered unchecked
	InOctetsValidated atomic.Uint64
	InOctetsDecrypted atomic.Uint64
}

// SA returns the receive SA for an, or nil.
func (sc *RxSC) SA(an uint8) *RxSA { return sc.sa[an&3].Load() }

// AddRxSC adds a receive SC; adding an existing one is a no-op.
func (s *SecY) AddRxSC(sci SCI) *RxSC {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.rxs.Load()
	if sc, ok := cur[sci]; ok {
		return sc
	}
	next := make(map[SCI]*RxSC, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	sc := &RxSC{SCI: sci}
	next[sci] = sc
	s.publishRx(next)
	return sc
}

// DeleteRxSC removes a receive SC and wipes its SAs' keys.
func (s *SecY) DeleteRxSC(sci SCI) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.rxs.Load()
	sc, ok := cur[sci]
	if !ok {
		return
	}
	next := make(map[SCI]*RxSC, len(cur))
	for k, v := range cur {
		if k != sci {
			next[k] = v
		}
	}
	s.publishRx(next)
	for an := range sc.sa {
		if sa := sc.sa[an].Swap(nil); sa != nil {
			s.retire(&sa.crypto)
		}
	}
}

func (s *SecY) publishRx(m map[SCI]*RxSC) {
	s.rxs.Store(&m)
	s.one.Store(nil)
	if len(m) == 1 {
		for _, sc := range m {
			s.one.Store(sc)
		}
	}
}

// RxSC returns the receive SC for sci, or nil.
func (s *SecY) RxSC(sci SCI) *RxSC {
	if one := s.one.Load(); one != nil { // point-to-point: skip the map
		if one.SCI == sci {
			return one
		}
		return nil
	}
	return (*s.rxs.Load())[sci]
}

// RxSCs returns every receive SC.
func (s *SecY) RxSCs() []*RxSC {
	m := *s.rxs.Load()
	out := make([]*RxSC, 0, len(m))
	for _, sc := range m {
		out = append(out, sc)
	}
	return out
}

// InstallRxSA installs (or replaces) a receive SA; p.PN is the lowest PN it
// accepts. The SC is created if needed.
func (s *SecY) InstallRxSA(sci SCI, p SAParams) error {
	c, err := newSACrypto(s.cfg.Suite, sci, p)
	if err != nil {
		return fmt.Errorf("receive SA %d of SC %v: %w", p.AN, sci, err)
	}
	sa := &RxSA{AN: p.AN, crypto: c, window: uint64(s.cfg.ReplayWindow)}
	sa.nextPN.Store(p.PN)
	sa.floor.Store(p.PN)
	sc := s.AddRxSC(sci)
	if old := sc.sa[p.AN].Swap(sa); old != nil {
		s.retire(&old.crypto)
	}
	return nil
}

// SetRxLowestPN raises the lowest acceptable PN of a receive SA, as MKA does
// when a peer reports its next PN. It never lowers it.
func (s *SecY) SetRxLowestPN(sci SCI, an uint8, pn uint64) error {
	sc := s.RxSC(sci)
	if sc == nil || sc.SA(an) == nil {
		return fmt.Errorf("no receive SA %d on SC %v", an, sci)
	}
	floor := &sc.SA(an).floor
	for {
		cur := floor.Load()
		if pn <= cur || floor.CompareAndSwap(cur, pn) {
			return nil
		}
	}
}

// TxNextPN is the next PN the transmit SA will use; 0 when absent.
func (s *SecY) TxNextPN(an uint8) uint64 {
	if sa := s.TxSA(an); sa != nil {
		return sa.NextPN()
	}
	return 0
}

// RxNextPN is the lowest PN the receive SA accepts next; 0 when absent.
func (s *SecY) RxNextPN(sci SCI, an uint8) uint64 {
	if sc := s.RxSC(sci); sc != nil {
		if sa := sc.SA(an); sa != nil {
			return sa.LowestPN()
		}
	}
	return 0
}

// DeleteRxSA removes a receive SA and wipes its key.
func (s *SecY) DeleteRxSA(sci SCI, an uint8) {
	if sc := s.RxSC(sci); sc != nil {
		if sa := sc.sa[an&3].Swap(nil); sa != nil {
			s.retire(&sa.crypto)
		}
	}
}
