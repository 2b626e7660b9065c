package supervisor

import (
	"context"
	"encoding/binary"
	"strings"

	"github.com/secwire/secwire/offload/kernel"
	"github.com/secwire/secwire/offload/macsec"
)

// kernelPath is the kernel's macsec driver (offload/kernel), in software
// or offloaded, bridged to the plaintext port. The kernel's Datapath
// implements the seam, SendEAPOL, Err, Secured and Stop itself.
type kernelPath struct {
	*kernel.Datapath
	plain      string
	plainMTU   int
	eapolTypes []uint16
	// plainBase are the plaintext port's rx/tx packet counts when the
	// datapath started: its counters count from there, as the software
	// datapath's do.
	plainBase [2]uint64
}

func newKernelPath(d *kernel.Datapath, plain string, plainMTU int, eapolTypes []uint16) *kernelPath {
	return &kernelPath{Datapath: d, plain: plain, plainMTU: plainMTU, eapolTypes: eapolTypes,
		plainBase: [2]uint64{ifStat(plain, "rx_packets"), ifStat(plain, "tx_packets")}}
}

// forward listens for key agreement frames; the bridge carries the rest
// since Start.
func (p *kernelPath) forward(ctx context.Context, onEAPOL func([]byte)) error {
	return p.ListenEAPOL(ctx, p.eapolTypes, onEAPOL)
}

// status reads the kernel's counters under the names the software
// datapath uses (IEEE 802.1AE's), so `show` reads the same either way.
func (p *kernelPath) status(ls *LinkStatus) {
	ls.LineMTUNeeded = p.plainMTU + kernelOverhead
	st, err := p.State()
	if err != nil {
		ls.Fault = strings.TrimSpace(ls.Fault + " (cannot read the kernel SecY: " + err.Error() + ")")
		return
	}
	y := st.Stats
	ls.SecYCounters = Counters{
		{"OutPktsUntagged", y.OutPktsUntagged}, {"OutPktsTooLong", y.OutPktsTooLong},
		{"InPktsUntagged", y.InPktsUntagged}, {"InPktsNoTag", y.InPktsNoTag},
		{"InPktsBadTag", y.InPktsBadTag}, {"InPktsUnknownSCI", y.InPktsUnknownSCI},
		{"InPktsNoSCI", y.InPktsNoSCI}, {"InPktsOverrun", y.InPktsOverrun},
	}
	t := st.TxSC
	ls.TxSCCounters = Counters{
		{"OutPktsProtected", t.OutPktsProtected}, {"OutPktsEncrypted", t.OutPktsEncrypted},
		{"OutOctetsProtected", t.OutOctetsProtected}, {"OutOctetsEncrypted", t.OutOctetsEncrypted},
	}
	// As in the software datapath, LineIn/LineOut count data frames that
	// the SecY validated or protected (the macsec link's own counters),
	// not key agreement frames.
	ms := p.Name()
	ls.DatapathCounters = Counters{
		{"PlainIn", ifStat(p.plain, "rx_packets") - p.plainBase[0]}, {"LineIn", ifStat(ms, "rx_packets")},
		{"PlainOut", ifStat(p.plain, "tx_packets") - p.plainBase[1]}, {"LineOut", ifStat(ms, "tx_packets")},
		{"ToKeyAgreement", p.EAPOLIn()}, {"DroppedNoSA", ifStat(ms, "tx_dropped")},
	}
	for _, sa := range st.TxSAs {
		ls.TxSAs = append(ls.TxSAs, SAState{AN: sa.AN, NextPN: sa.PN, Key: kernel.Fingerprint(sa.KeyID), Counters: Counters{
			{"OutPktsProtected", uint64(sa.Stats.OutPktsProtected)}, {"OutPktsEncrypted", uint64(sa.Stats.OutPktsEncrypted)},
		}})
	}
	for _, sc := range st.RxSCs {
		r := sc.Stats
		scs := SCState{SCI: macsec.SCI(binary.BigEndian.Uint64(sc.SCI[:])).String(), Counters: Counters{
			{"InPktsUnchecked", r.InPktsUnchecked}, {"InPktsDelayed", r.InPktsDelayed}, {"InPktsLate", r.InPktsLate},
			{"InPktsNotUsingSA", r.InPktsNotUsingSA}, {"InPktsUnusedSA", r.InPktsUnusedSA},
			{"InOctetsValidated", r.InOctetsValidated}, {"InOctetsDecrypted", r.InOctetsDecrypted},
			{"InPktsOK", r.InPktsOK}, {"InPktsInvalid", r.InPktsInvalid}, {"InPktsNotValid", r.InPktsNotValid},
		}}
		for _, sa := range sc.SAs {
			low := uint64(1)
			if sa.PN > uint64(st.Window)+1 {
				low = sa.PN - uint64(st.Window)
			}
			scs.SAs = append(scs.SAs, SAState{AN: sa.AN, NextPN: sa.PN, LowestPN: low, Key: kernel.Fingerprint(sa.KeyID), Counters: Counters{
				{"InPktsOK", uint64(sa.Stats.InPktsOK)}, {"InPktsInvalid", uint64(sa.Stats.InPktsInvalid)},
				{"InPktsNotValid", uint64(sa.Stats.InPktsNotValid)}, {"InPktsNotUsingSA", uint64(sa.Stats.InPktsNotUsingSA)},
				{"InPktsUnusedSA", uint64(sa.Stats.InPktsUnusedSA)},
			}})
		}
		ls.RxSCs = append(ls.RxSCs, scs)
	}
}
