package mka

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// FuzzKaY drives two KaYs with authenticated MKPDUs: the fuzzer holds the
// CAK, so it can drop, replay and rewrite any decoded parameter set and
// sign the result again. After every step the invariants of the
// simulated CA hold (simNet.check and recSecY): never secured without a
// live peer, a keyed non-key-server always has a transmit SA, the CP state
// agrees with the installed SAKs, and no two transmitters ever share an
// (SAK, SSCI) pair. Rewritten SCIs stay those of the two ends: a third
// transmitter the fuzzer invented is not one the invariant is about.
func FuzzKaY(f *testing.F) {
	f.Add(byte(3), []byte{0, 20, 0, 20, 1, 0, 30, 2, 0})
	f.Add(byte(0), []byte{0, 40, 5, 4, 0, 40, 3, 1, 0, 40})
	f.Add(byte(3), []byte{6, 0, 0, 9, 6, 1, 0, 9, 6, 2, 0, 9, 6, 5, 0, 30})
	f.Add(byte(2), []byte{0, 39, 4, 0, 0, 39, 4, 0, 0, 39, 1, 0, 39})
	f.Fuzz(func(t *testing.T, suiteSel byte, script []byte) {
		if len(script) > 600 {
			return
		}
		suite := macsec.CipherSuites[int(suiteSel)%len(macsec.CipherSuites)]
		n := newSim(t, suite)
		key := make([]byte, 16)
		for i := range key {
			key[i] = byte(i * 7)
		}
		cak := CAK{CKN: []byte("fuzz"), Key: macsec.NewKey(key)}
		a := n.add("a", 1, Options{Priority: 1, Keys: []CAK{cak}, Log: fuzzLog()})
		b := n.add("b", 2, Options{Priority: 2, Keys: []CAK{cak}, Log: fuzzLog()})
		ick, _ := ICK(cak.Key.Bytes(), cak.CKN)
		scis := []macsec.SCI{a.sci, b.sci}
		r := &byteReader{b: script}
		var saved [][]byte
		n.mutate = func(from *simNode, frame []byte) []byte {
			if len(saved) < 32 {
				saved = append(saved, frame)
			}
			switch op := r.next(); {
			case op < 160:
				return frame
			case op < 180:
				return nil
			default:
				return rewrite(frame, ick, r, scis)
			}
		}
		for r.more() {
			switch r.next() % 8 {
			case 0, 1:
				n.run(time.Duration(1+r.next()%40) * tick)
			case 2:
				_ = a.kay.Rekey("fuzz")
				_ = b.kay.Rekey("fuzz")
			case 3:
				if len(saved) > 0 {
					f := saved[int(r.next())%len(saved)]
					to := []*simNode{a, b}[r.next()%2]
					to.kay.handle(append([]byte(nil), f...))
					n.deliver()
				}
			case 4:
				[]*simNode{a, b}[r.next()%2].start()
			case 5:
				nd := []*simNode{a, b}[r.next()%2]
				nd.down = !nd.down
			case 6:
				nd := []*simNode{a, b}[r.next()%2]
				_ = nd.kay.Reconfigure(Tunables{Priority: r.next() % 4, Hello: HelloTime})
			case 7:
				n.run(time.Duration(r.next()) * 100 * time.Millisecond)
			}
			n.check()
			if n.violation != "" {
				t.Fatal(n.violation)
			}
		}
		// Left alone, the two ends secure again.
		a.down, b.down, n.mutate = false, false, nil
		for end := n.now.Add(30 * time.Second); !n.allSecured(a, b); n.run(tick) {
			if n.now.After(end) {
				for _, nd := range []*simNode{a, b} {
					st := nd.kay.Status()
					t.Logf("%s: CP %s latest %+v old %+v CAs %+v", nd.name, st.CPState, st.Latest, st.Old, st.CAs)
					if nd.kay.latest != nil {
						t.Logf("%s: latest members %v distSAK %v", nd.name, nd.kay.latest.members, nd.kay.latest.distSAK != nil)
					}
					for _, pe := range nd.kay.principal().peers {
						t.Logf("%s: peer %s live %v use %+v", nd.name, pe.mi, pe.live, pe.use)
					}
				}
				t.Fatalf("not secured 30 s after the fuzzing stopped: a %q, b %q", a.kay.Status().Diagnosis, b.kay.Status().Diagnosis)
			}
		}
		if n.violation != "" {
			t.Fatal(n.violation)
		}
	})
}

type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) more() bool { return r.i < len(r.b) }

func (r *byteReader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// rewrite changes one decoded field of an MKPDU and signs it again.
func rewrite(frame, ick []byte, r *byteReader, scis []macsec.SCI) []byte {
	f, err := Decode(frame)
	if err != nil {
		return frame
	}
	m := f.PDU
	v := r.next()
	switch r.next() % 16 {
	case 0:
		m.MN += uint32(v) - 128
	case 1:
		m.MI[v%12] ^= 1 << (v % 8)
	case 2:
		m.SCI = scis[v%2]
	case 3:
		m.Priority = v
	case 4:
		m.KeyServer = !m.KeyServer
	case 5:
		if len(m.Live) > 0 {
			m.Live = m.Live[1:]
		}
	case 6:
		if len(m.Live) > 1 {
			m.Live[0], m.Live[1] = m.Live[1], m.Live[0]
		}
		if m.DistSAK == nil {
			// Making a potential member live in the MKPDU that hands out a
			// SAK is the key server's decision: a holder of the CAK who
			// forges it can give any member any SAK (it could distribute
			// its own), which no KaY can tell from the real thing. The
			// fuzzer leaves that one alone.
			m.Potential, m.Live = m.Live, m.Potential
		}
	case 7:
		for i := range m.Live {
			m.Live[i].MN += uint32(v)
		}
	case 8:
		if u := m.SAKUse; u != nil {
			u.LatestAN, u.LatestTx, u.LatestRx = v&3, v&4 != 0, v&8 != 0
		}
	case 9:
		if u := m.SAKUse; u != nil {
			u.Latest.KN += uint32(v % 3)
			u.LatestLowest = uint64(v) << (v % 40)
		}
	case 10:
		if u := m.SAKUse; u != nil {
			u.OldAN, u.OldTx, u.OldRx = v&3, v&4 != 0, v&8 != 0
			u.Old, u.Latest = u.Latest, u.Old
		}
	case 11:
		if d := m.DistSAK; d != nil {
			d.AN = v & 3
		}
	case 12:
		if d := m.DistSAK; d != nil {
			d.KN += uint32(v % 4)
		}
	case 13:
		m.KeyServerSSCI = v % 4
	case 14:
		if d := m.DistSAK; d != nil && len(d.Wrapped) > 0 {
			d.Wrapped[int(v)%len(d.Wrapped)] ^= 1
		}
	case 15:
		m.Version = 1 + v%3
		m.XPN = v&4 != 0
	}
	out, err := m.Encode(f.Dst, f.Src, EtherTypeEAPOL, ick)
	if err != nil {
		return frame
	}
	return out
}

// fuzzLog is silent unless SECWIRE_FUZZ_LOG is set (to replay a failure).
func fuzzLog() *slog.Logger {
	if os.Getenv("SECWIRE_FUZZ_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet()
}
