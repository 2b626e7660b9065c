package mka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// A deterministic CA on a shared segment: KaYs driven step by step on a
// virtual clock, each with a real codec SecY, every MKPDU broadcast to
// the other members. Tests and the fuzz target inspect it between steps.

type simNet struct {
	tb    testing.TB
	now   time.Time
	suite macsec.CipherSuite
	nodes []*simNode
	queue []simFrame
	// txUse records every transmit SA installed: (SAK, SSCI or SCI) to the
	// transmitter (node and MI) that uses it.
	txUse map[string]string
	// violation is the first invariant broken, "" while none.
	violation string
	// tap sees every MKPDU sent (tests capture and replay them).
	tap func(from *simNode, frame []byte)
	// mutate may rewrite or drop (nil) an MKPDU in flight (fuzzing).
	mutate func(from *simNode, frame []byte) []byte
}

type simFrame struct {
	from  *simNode
	frame []byte
}

type simNode struct {
	net  *simNet
	name string
	mac  net.HardwareAddr
	sci  macsec.SCI
	kay  *KaY
	secy *macsec.SecY
	opts Options
	down bool // cut from the segment: sends and receives nothing
	// transmitted: the node transmitted with a SAK since its CA formed
	// (a non-key-server must then always keep a transmit SA).
	transmitted bool
	losses      uint64 // CA losses seen by check
	seq         uint32
}

// recSecY records the transmit SAs a node installs.
type recSecY struct {
	*macsec.SecY
	n *simNode
}

func (r recSecY) InstallTxSA(p macsec.SAParams) error {
	n := r.n
	id := fmt.Sprintf("%s/%d", p.Key.Fingerprint(), p.SSCI)
	if !n.net.suite.XPN() {
		id = fmt.Sprintf("%s/%s", p.Key.Fingerprint(), n.sci)
	}
	who := n.name
	if pr := n.kay.principal(); pr != nil {
		who += "/" + pr.mi.String()
	}
	if prev, ok := n.net.txUse[id]; ok && prev != who {
		n.net.fail("transmitters %s and %s share SAK/SSCI %s", prev, who, id)
	}
	n.net.txUse[id] = who
	return r.SecY.InstallTxSA(p)
}

func newSim(tb testing.TB, suite macsec.CipherSuite) *simNet {
	return &simNet{tb: tb, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), suite: suite, txUse: map[string]string{}}
}

func (n *simNet) fail(f string, a ...any) {
	if n.violation == "" {
		n.violation = fmt.Sprintf(f, a...)
	}
}

// add starts a KaY with MAC 02:00:00:00:00:id (the SCI grows with id).
func (n *simNet) add(name string, id byte, o Options) *simNode {
	nd := &simNode{net: n, name: name, mac: net.HardwareAddr{2, 0, 0, 0, 0, id}}
	nd.sci = macsec.MakeSCI(nd.mac, 1)
	nd.opts = o
	n.nodes = append(n.nodes, nd)
	nd.start()
	return nd
}

// start (re)creates the node's KaY and SecY: a restart forgets everything.
func (nd *simNode) start() {
	n := nd.net
	s, err := macsec.NewSecY(macsec.Config{Suite: n.suite, SCI: nd.sci, SendSCI: true})
	if err != nil {
		n.tb.Fatal(err)
	}
	nd.secy, nd.transmitted = s, false
	o := nd.opts
	o.SecY, o.SCI, o.MAC, o.Suite = recSecY{s, nd}, nd.sci, nd.mac, n.suite
	o.Now = func() time.Time { return n.now }
	if o.Log == nil {
		o.Log = logger(nil).With("node", nd.name)
	}
	o.Send = func(f []byte) error {
		if !nd.down {
			n.queue = append(n.queue, simFrame{nd, f})
		}
		return nil
	}
	k, err := New(o)
	if err != nil {
		n.tb.Fatal(err)
	}
	nd.kay = k
}

// run advances the clock by d in ticks, delivering every MKPDU.
func (n *simNet) run(d time.Duration) {
	for end := n.now.Add(d); n.now.Before(end); n.now = n.now.Add(tick) {
		for _, nd := range n.nodes {
			nd.kay.handle(nil)
		}
		n.deliver()
		n.check()
	}
}

func (n *simNet) deliver() {
	for i := 0; len(n.queue) > 0 && i < 10000; i++ {
		f := n.queue[0]
		n.queue = n.queue[1:]
		if n.tap != nil {
			n.tap(f.from, f.frame)
		}
		frame := f.frame
		if n.mutate != nil {
			if frame = n.mutate(f.from, frame); frame == nil {
				continue
			}
		}
		for _, to := range n.nodes {
			if to != f.from && !to.down && !f.from.down {
				to.kay.handle(append([]byte(nil), frame...))
			}
		}
	}
}

// check asserts the invariants that hold at every moment.
func (n *simNet) check() {
	for _, nd := range n.nodes {
		k := nd.kay
		pr := k.principal()
		if k.Secured() && (pr == nil || !pr.hasLive()) {
			n.fail("%s: secured without a live peer", nd.name)
		}
		if pr == nil || k.stats.CALosses != nd.losses {
			nd.transmitted, nd.losses = false, k.stats.CALosses
		}
		if pr == nil {
			continue
		}
		if tx := k.transmitting(); tx != nil {
			nd.transmitted = true
			if enc := nd.secy.EncodingSA(); enc != int(tx.an) || nd.secy.TxSA(tx.an) == nil {
				n.fail("%s: transmits with AN %d but the SecY's encoding SA is %d", nd.name, tx.an, enc)
			}
		} else if nd.transmitted && !k.isKeyServer(pr) {
			n.fail("%s: a non-key-server lost its transmit SA while keyed (CP %s)", nd.name, k.cp)
		}
		if got := k.cpFromSAs(); got != k.cp {
			n.fail("%s: CP state %s, but the SAKs say %s", nd.name, k.cp, got)
		}
	}
}

// cpFromSAs derives the CP state from the installed SAKs.
func (k *KaY) cpFromSAs() cpState {
	switch {
	case k.latest == nil:
		return cpUnsecured
	case !k.latest.txOn:
		return cpReceiving
	case k.old != nil:
		return cpTransmitting
	}
	return cpSecured
}

// frame sends one data frame from nd and reports which nodes validated it.
func (nd *simNode) frame() (map[*simNode]error, error) {
	nd.seq++
	f := make([]byte, 80)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], nd.mac)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	binary.BigEndian.PutUint32(f[20:], nd.seq)
	p, err := nd.secy.Protect(nil, f)
	if err != nil {
		return nil, err
	}
	out := map[*simNode]error{}
	for _, to := range nd.net.nodes {
		if to == nd || to.down {
			continue
		}
		pt, err := to.secy.Validate(nil, p)
		if err == nil && !bytes.Equal(pt, f) {
			err = fmt.Errorf("frame changed")
		}
		out[to] = err
	}
	return out, nil
}

// traffic sends a frame from every node in group to every other one and
// fails the test if any is not received.
func (n *simNet) traffic(tb testing.TB, what string, group ...*simNode) {
	tb.Helper()
	for _, from := range group {
		got, err := from.frame()
		if err != nil {
			tb.Fatalf("%s: %s cannot send: %v (CP %s)", what, from.name, err, from.kay.cp)
		}
		for _, to := range group {
			if to != from && got[to] != nil {
				tb.Fatalf("%s: frame %s -> %s lost: %v", what, from.name, to.name, got[to])
			}
		}
	}
}

// runWithTraffic advances time while frames flow within group.
func (n *simNet) runWithTraffic(tb testing.TB, d time.Duration, what string, group ...*simNode) {
	tb.Helper()
	for end := n.now.Add(d); n.now.Before(end); {
		n.run(tick)
		n.traffic(tb, what, group...)
		if n.violation != "" {
			tb.Fatal(n.violation)
		}
	}
}

func (n *simNet) allSecured(group ...*simNode) bool {
	var kn uint32
	for i, nd := range group {
		st := nd.kay.Status()
		if !st.Secured || st.Latest == nil || st.Old != nil {
			return false
		}
		if i > 0 && st.Latest.KN != kn {
			return false
		}
		kn = st.Latest.KN
	}
	return true
}

func (n *simNet) waitSecured(tb testing.TB, within time.Duration, group ...*simNode) {
	tb.Helper()
	for end := n.now.Add(within); !n.allSecured(group...); n.run(tick) {
		if n.now.After(end) {
			for _, nd := range group {
				st := nd.kay.Status()
				tb.Logf("%s: secured %v CP %s latest %+v old %+v diagnosis %q", nd.name, st.Secured, st.CPState, st.Latest, st.Old, st.Diagnosis)
			}
			tb.Fatalf("not secured within %s", within)
		}
	}
	if n.violation != "" {
		tb.Fatal(n.violation)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
