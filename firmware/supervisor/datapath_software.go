package supervisor

import (
	"context"
	"errors"

	"github.com/secwire/secwire/offload/macsec"
	"github.com/secwire/secwire/offload/software"
)

// softwarePath is the Go datapath: the codec's SecY (offload/macsec) and
// the engine that carries frames through it (offload/software).
type softwarePath struct {
	*macsec.SecY
	opts   software.Options // the engine's, but for OnEAPOL
	engine *software.Engine // nil until forward
}

func newSoftwarePath(c macsec.Config, o software.Options) (*softwarePath, error) {
	secy, err := macsec.NewSecY(c)
	if err != nil {
		return nil, err
	}
	o.SecY = secy
	return &softwarePath{SecY: secy, opts: o}, nil
}

func (p *softwarePath) forward(ctx context.Context, onEAPOL func([]byte)) error {
	o := p.opts
	o.OnEAPOL = onEAPOL
	e, err := software.Start(ctx, o)
	if err != nil {
		return err
	}
	p.engine = e
	return nil
}

func (p *softwarePath) SendEAPOL(frame []byte) error {
	if p.engine == nil {
		return errors.New("datapath not started")
	}
	return p.engine.SendEAPOL(frame)
}

func (p *softwarePath) Err() error {
	if p.engine == nil {
		return nil
	}
	return p.engine.Err()
}

func (p *softwarePath) Secured() bool {
	// An SA installed but not yet in use (no encoding SA: -1) sends
	// nothing, so it does not count.
	if an := p.EncodingSA(); an < 0 || p.TxSA(uint8(an)) == nil {
		return false
	}
	for _, sc := range p.RxSCs() {
		for an := range uint8(4) {
			if sc.SA(an) != nil {
				return true
			}
		}
	}
	return false
}

// Stop stops the engine, then wipes the SAs' keys.
func (p *softwarePath) Stop() {
	if p.engine != nil {
		p.engine.Stop()
	}
	for an := range uint8(4) {
		p.DeleteTxSA(an)
	}
	for _, sc := range p.RxSCs() {
		p.DeleteRxSC(sc.SCI)
	}
}

// Visible implements capturer.
func (p *softwarePath) Visible(on bool) {
	if p.engine != nil {
		p.engine.Visible(on)
	}
}

func (p *softwarePath) status(ls *LinkStatus) {
	ls.SecYCounters = counters(&p.SecY.Stats)
	ls.TxSCCounters = counters(&p.SecY.TxSC)
	if p.engine != nil {
		ls.DatapathCounters = counters(&p.engine.Stats)
	}
	for an := range uint8(4) {
		if sa := p.TxSA(an); sa != nil {
			ls.TxSAs = append(ls.TxSAs, SAState{AN: an, NextPN: sa.NextPN(), Key: sa.KeyFingerprint(), Counters: counters(&sa.Stats)})
		}
	}
	for _, sc := range p.RxSCs() {
		scs := SCState{SCI: sc.SCI.String(), Counters: counters(&sc.Stats)}
		for an := range uint8(4) {
			if sa := sc.SA(an); sa != nil {
				scs.SAs = append(scs.SAs, SAState{AN: an, NextPN: sa.NextPN(), LowestPN: sa.LowestPN(), Key: sa.KeyFingerprint(), Counters: counters(&sa.Stats)})
			}
		}
		ls.RxSCs = append(ls.RxSCs, scs)
	}
	for _, x := range p.opts.InClear {
		ls.ProtocolsInClear = append(ls.ProtocolsInClear, x.String())
	}
}
