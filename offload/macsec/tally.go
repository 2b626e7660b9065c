package macsec

// A Tally gathers one datapath worker's frame counters; Flush adds them to
// the SecY's shared IEEE 802.1AE counters. Sealing and accepting with a
// tally spares each frame the atomic additions that shared counters cost
// (several per frame, as dear as the crypto of a short frame). A worker
// flushes after every batch, so readers see the counters at most one
// batch late. A Tally is for one goroutine at a time.
type Tally struct {
	tx                   *TxSA
	txPkts, txOctets     uint64
	txEncrypted          bool
	rx                   *RxSA
	rxSC                 *RxSC
	rxOK, rxDelayed      uint64
	rxOctetsD, rxOctetsV uint64
}

func (t *Tally) countTx(s *SecY, sa *TxSA, encrypted bool, octets int) {
	if t.tx != sa || t.txEncrypted != encrypted {
		s.flushTx(t)
		t.tx, t.txEncrypted = sa, encrypted
	}
	t.txPkts++
	t.txOctets += uint64(octets)
}

func (t *Tally) countRx(s *SecY, o *Opened) {
	if t.rx != o.sa {
		s.flushRx(t)
		t.rx, t.rxSC = o.sa, o.sc
	}
	if o.pn < o.lowest {
		t.rxDelayed++
	} else {
		t.rxOK++
	}
	if o.encrypted {
		t.rxOctetsD += uint64(o.secure)
	} else {
		t.rxOctetsV += uint64(o.secure)
	}
}

// Flush adds the tally's counts to the SecY's counters and clears it.
func (s *SecY) Flush(t *Tally) {
	s.flushTx(t)
	s.flushRx(t)
}

func (s *SecY) flushTx(t *Tally) {
	if t.txPkts == 0 {
		return
	}
	if t.txEncrypted {
		t.tx.Stats.OutPktsEncrypted.Add(t.txPkts)
		s.TxSC.OutPktsEncrypted.Add(t.txPkts)
		s.TxSC.OutOctetsEncrypted.Add(t.txOctets)
	} else {
		t.tx.Stats.OutPktsProtected.Add(t.txPkts)
		s.TxSC.OutPktsProtected.Add(t.txPkts)
		s.TxSC.OutOctetsProtected.Add(t.txOctets)
	}
	t.txPkts, t.txOctets = 0, 0
}

func (s *SecY) flushRx(t *Tally) {
	if t.rx == nil {
		return
	}
	if t.rxOK != 0 {
		t.rx.Stats.InPktsOK.Add(t.rxOK)
	}
	if t.rxDelayed != 0 {
		t.rxSC.Stats.InPktsDelayed.Add(t.rxDelayed)
	}
	if t.rxOctetsD != 0 {
		t.rxSC.Stats.InOctetsDecrypted.Add(t.rxOctetsD)
	}
	if t.rxOctetsV != 0 {
		t.rxSC.Stats.InOctetsValidated.Add(t.rxOctetsV)
	}
	t.rxOK, t.rxDelayed, t.rxOctetsD, t.rxOctetsV = 0, 0, 0, 0
}
