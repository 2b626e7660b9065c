package supervisor

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/secwire/secwire/firmware/sakexport"
	"github.com/secwire/secwire/offload/macsec"
)

// ExportKeys copies the SAKs a link's KaY has installed, in clear, with
// what a capture decrypter needs (AN, salt, each SC's SSCI and PN). Only
// an administrator's confirmed, audited request may call it.
func (s *Supervisor) ExportKeys(name string) (*sakexport.File, error) {
	for _, l := range s.current() {
		if l.cfg.Name != name {
			continue
		}
		if l.kay == nil {
			return nil, fmt.Errorf("link %s is keyed with static SAKs: its keys are in the config, not distributed by MKA", name)
		}
		saks := l.kay.ExportKeys()
		if len(saks) == 0 {
			return nil, fmt.Errorf("link %s has no SAK yet (the CA is not secured): nothing to export", name)
		}
		f := &sakexport.File{Link: name, Cipher: l.cfg.Suite(), Offset: l.cfg.Offset,
			Exported: s.opts.Now().UTC().Format(time.RFC3339)}
		for _, e := range saks {
			sak := sakexport.SAK{CKN: e.CKN, KN: e.KN, AN: e.AN, Key: hex.EncodeToString(e.Key)}
			clear(e.Key)
			if len(e.Salt) > 0 {
				sak.Salt = hex.EncodeToString(e.Salt)
			}
			own := l.secyCfg.SCI
			sak.SCs = append(sak.SCs, sakexport.SC{SCI: own.String(), SSCI: ssci(e.SSCIs, own), PN: l.dp.TxNextPN(e.AN)})
			for sci := range e.SSCIs {
				peer, err := macsec.ParseSCI(sci)
				if err != nil || peer == own {
					continue
				}
				sak.SCs = append(sak.SCs, sakexport.SC{SCI: peer.String(), SSCI: ssci(e.SSCIs, peer), PN: l.dp.RxNextPN(peer, e.AN)})
			}
			f.SAKs = append(f.SAKs, sak)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoLink, name)
}

// ssci is an SC's SSCI as 8 hex digits, "" when the suite has none.
func ssci(sscis map[string]uint32, sci macsec.SCI) string {
	for s, v := range sscis {
		if p, err := macsec.ParseSCI(s); err == nil && p == sci {
			return fmt.Sprintf("%08x", v)
		}
	}
	return ""
}
