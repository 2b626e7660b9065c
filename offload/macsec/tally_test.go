package macsec

import "testing"

// TestTallyCountsAsSharedCounters: frames sealed and accepted through a
// tally, once flushed, show in the same IEEE 802.1AE counters as frames
// protected and validated one by one.
func TestTallyCountsAsSharedCounters(t *testing.T) {
	for _, integrityOnly := range []bool{false, true} {
		cfg := Config{Suite: GCMAESXPN256, SendSCI: true, IntegrityOnly: integrityOnly, ReplayWindow: 64}
		tx1, rx1 := pair(t, cfg, 1)
		tx2, rx2 := pair(t, cfg, 1)
		var tally Tally
		for i := range 50 {
			f := ethFrame(60 + i*20)
			p1 := mustProtect(t, tx1, f)
			if _, err := rx1.Validate(nil, p1); err != nil {
				t.Fatal(err)
			}
			r, err := tx2.Reserve(f)
			if err != nil {
				t.Fatal(err)
			}
			p2 := tx2.Seal(nil, f, r, &tally)
			_, o, err := rx2.Open(nil, p2)
			if err != nil {
				t.Fatal(err)
			}
			if err := rx2.Accept(&o, &tally); err != nil {
				t.Fatal(err)
			}
		}
		if n := tx2.TxSC.OutPktsEncrypted.Load() + tx2.TxSC.OutPktsProtected.Load(); n != 0 {
			t.Fatalf("%d frames counted before the tally was flushed", n)
		}
		tx2.Flush(&tally)
		rx2.Flush(&tally)
		if a, b := *countersOf(tx1, rx1), *countersOf(tx2, rx2); a != b || a.ok != 50 {
			t.Errorf("integrity only %v: one by one %+v, through a tally %+v", integrityOnly, a, b)
		}
	}
}

type counters struct {
	saEnc, saProt, scEnc, scProt, octEnc, octProt, ok, delayed, octD, octV uint64
}

func countersOf(tx, rx *SecY) *counters {
	sa := tx.TxSA(uint8(tx.EncodingSA()))
	var rsa *RxSA
	var rsc *RxSC
	for _, sc := range rx.RxSCs() {
		rsc = sc
		for an := range uint8(4) {
			if sc.SA(an) != nil {
				rsa = sc.SA(an)
			}
		}
	}
	return &counters{sa.Stats.OutPktsEncrypted.Load(), sa.Stats.OutPktsProtected.Load(),
		tx.TxSC.OutPktsEncrypted.Load(), tx.TxSC.OutPktsProtected.Load(), tx.TxSC.OutOctetsEncrypted.Load(), tx.TxSC.OutOctetsProtected.Load(),
		rsa.Stats.InPktsOK.Load(), rsc.Stats.InPktsDelayed.Load(), rsc.Stats.InOctetsDecrypted.Load(), rsc.Stats.InOctetsValidated.Load()}
}
