package mka

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/secwire/secwire/offload/macsec"
)

// The XPN facts of the standard, as the shared vectors state them
// (testdata/mka-keys.json: xpn_salt, xpn_ssci, computed from the text of
// IEEE 802.1AE-2018 10.7.8 and 10.7.13).
type xpnVectors struct {
	Salt struct {
		Cases []struct {
			MI   string `json:"key_server_mi"`
			KN   string `json:"kn"`
			Salt string `json:"salt"`
		} `json:"cases"`
	} `json:"xpn_salt"`
	SSCI struct {
		Cases []struct {
			SCIs []string          `json:"scis"`
			SSCI map[string]uint32 `json:"ssci"`
		} `json:"cases"`
	} `json:"xpn_ssci"`
}

func loadXPN(t *testing.T) xpnVectors {
	b, err := os.ReadFile("testdata/mka-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v xpnVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Salt.Cases) == 0 || len(v.SSCI.Cases) == 0 {
		t.Fatal("vector file has no xpn_salt or xpn_ssci cases")
	}
	return v
}

func TestXPNSaltVectors(t *testing.T) {
	for _, c := range loadXPN(t).Salt.Cases {
		var ki KI
		copy(ki.MI[:], unhex(t, c.MI))
		ki.KN = binary.BigEndian.Uint32(unhex(t, c.KN))
		got := salt(ki)
		if hex.EncodeToString(got[:]) != c.Salt {
			t.Errorf("salt(MI %s, KN %s) = %x, want %s", c.MI, c.KN, got, c.Salt)
		}
	}
}

func parseSCI(t *testing.T, s string) macsec.SCI {
	return macsec.SCI(binary.BigEndian.Uint64(unhex(t, s)))
}

func TestXPNSSCIVectors(t *testing.T) {
	for _, c := range loadXPN(t).SSCI.Cases {
		// Every member in turn as the key server: the numbering is the
		// same whoever assigns it.
		for ks := range c.SCIs {
			var live []*peer
			mis := map[MI]string{}
			var self MI
			for i, s := range c.SCIs {
				var mi MI
				mi[0] = byte(i + 1)
				mis[mi] = s
				if i == ks {
					self = mi
					continue
				}
				live = append(live, &peer{mi: mi, sci: parseSCI(t, s), live: true})
			}
			got := assignSSCIs(self, parseSCI(t, c.SCIs[ks]), live)
			for mi, s := range mis {
				if got[mi] != c.SSCI[s] {
					t.Errorf("key server %s: SCI %s has SSCI %d, want %d", c.SCIs[ks], s, got[mi], c.SSCI[s])
				}
			}
		}
	}
}

// The key server's MKPDU carries the standard's SSCI encoding, and a
// member reads the same numbering back from it.
func TestSSCIEncodingInKeyServerMKPDU(t *testing.T) {
	v := loadXPN(t).SSCI.Cases[1] // three members
	n := newSim(t, macsec.GCMAESXPN256)
	cak := testCAK(t, "xpn", 32)
	var nodes []*simNode
	for i, s := range v.SCIs {
		sci := parseSCI(t, s)
		nd := n.add(fmt.Sprint("m", i), byte(i+1), Options{Priority: byte(10 + i), Keys: []CAK{cak}})
		nd.sci = sci // the vector's SCI, not one made from the MAC
		nd.start()
		nodes = append(nodes, nd)
	}
	var dist *MKPDU
	n.tap = func(from *simNode, f []byte) {
		if fr, err := Decode(f); err == nil && fr.PDU.DistSAK != nil && fr.PDU.DistSAK.Wrapped != nil {
			dist = fr.PDU
		}
	}
	n.waitSecured(t, 10*time.Second, nodes...)
	if dist == nil {
		t.Fatal("no MKPDU distributed a SAK")
	}
	ksSCI := dist.SCI.String()
	if dist.Version != 3 || uint32(dist.KeyServerSSCI) != v.SSCI[fmt.Sprintf("%016x", uint64(dist.SCI))] {
		t.Errorf("key server %s: version %d, SSCI %d in the Live Peer List header; want version 3, SSCI %d",
			ksSCI, dist.Version, dist.KeyServerSSCI, v.SSCI[fmt.Sprintf("%016x", uint64(dist.SCI))])
	}
	// The Live Peer List is in SSCI order, skipping the key server's.
	var order []uint32
	for _, e := range dist.Live {
		for _, nd := range nodes {
			if pr := nd.kay.principal(); pr != nil && pr.mi == e.MI {
				order = append(order, v.SSCI[fmt.Sprintf("%016x", uint64(nd.sci))])
			}
		}
	}
	if len(order) != 2 || !slices.IsSorted(order) {
		t.Errorf("Live Peer List in SSCI order %v, want ascending and 2 entries", order)
	}
	// Every member transmits with the SSCI the vector gives its SCI.
	for _, nd := range nodes {
		want := v.SSCI[fmt.Sprintf("%016x", uint64(nd.sci))]
		if got := nd.kay.Status().Latest.SSCI; got != want {
			t.Errorf("%s (SCI %s) transmits with SSCI %d, want %d", nd.name, nd.sci, got, want)
		}
	}
}
