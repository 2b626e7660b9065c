package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Nothing may panic, and a
// config that parses survives Check, a JSON round trip, Clone and a
// seal/unseal round trip unchanged. Key file names are cleared first:
// Check would read whatever path the input names.
func FuzzParse(f *testing.F) {
	f.Add([]byte(strings.Replace(good, "%s", key256, 1)))
	f.Add([]byte(`{"system":{"hostname":"a","management":{"interface":"eth2","vlan":7,"address":"192.0.2.1/24","gateway":"192.0.2.254"},` +
		`"ssh":{"port":2222,"idle_timeout":"5m"},"users":[{"name":"admin","role":"admin","password":"$2a$10$0123456789012345678901uKpTJbRvdpNOsGfdU6vDJLR2MxNrRAW"}]}}`))
	f.Add([]byte(`{"links":[{"name":"l0","plain":"eth0","line":"eth1","mka":{"key_chain":[{"ckn":"01","cak":"` + strings.Repeat("5a", 16) +
		`","start":"2024-01-01T00:00:00Z"}],"priority":3,"eapol_destination":"01:80:c2:00:00:00","rekey_interval":"1h"},` +
		`"vlans_in_clear":1,"mtu":9000,"eapol_ethertype":"0x876f","policy":"should-secure","datapath":"software","workers":2}]}`))
	f.Add([]byte(`{"links":[{"name":"l0","plain":"a","line":"a","send_sci":false,"validate":"check","replay_window":64,"confidentiality_offset":30}]}`))
	f.Add([]byte("{\n\"system\": {\"hostname\": \"x\",}\n}"))
	f.Add([]byte(`{"links":[{"name":"l0","mka":{"key_chain":[{"ckn":"01","cak":"sealed:AAAA"}]}}]}`))
	s, err := LoadSealer(filepath.Join(f.TempDir(), SealKeyName))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with an error")
			}
			return
		}
		for i := range c.Links {
			if st := c.Links[i].Static; st != nil {
				st.TX.KeyFile = ""
				for j := range st.RX {
					for k := range st.RX[j].SAs {
						st.RX[j].SAs[k].KeyFile = ""
					}
				}
			}
			if m := c.Links[i].MKA; m != nil {
				for j := range m.KeyChain {
					m.KeyChain[j].CAKFile = ""
				}
				if m.Fallback != nil {
					m.Fallback.CAKFile = ""
				}
			}
		}
		c.Check()
		stored := c.Marshal()
		again, err := Parse(stored)
		if err != nil {
			t.Fatalf("a parsed config does not parse again once stored: %v\n%s", err, stored)
		}
		if !bytes.Equal(again.Marshal(), stored) {
			t.Fatalf("stored form changes on a round trip:\n%s\n%s", stored, again.Marshal())
		}
		if !bytes.Equal(c.Clone().Marshal(), stored) {
			t.Fatal("Clone differs from the original")
		}
		if c.hasSealed() {
			return // sealed with another key: Unseal must refuse, tested below
		}
		sealed := c.Sealed(s)
		if err := sealed.Unseal(s); err != nil {
			t.Fatalf("unseal of a fresh seal: %v", err)
		}
		if !bytes.Equal(sealed.Marshal(), stored) {
			t.Fatalf("seal round trip changed the config:\n%s\n%s", stored, sealed.Marshal())
		}
	})
}

// Sealed values from elsewhere (or damaged) are refused, never opened.
func TestUnsealRefusesForeignValues(t *testing.T) {
	s, err := LoadSealer(filepath.Join(t.TempDir(), SealKeyName))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(`{"links":[{"name":"l0","mka":{"key_chain":[{"ckn":"01","cak":"sealed:AAAA"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Unseal(s); err == nil || !strings.Contains(err.Error(), "links[0].mka.key_chain[0].cak") {
		t.Fatalf("unseal of a damaged value: %v", err)
	}
}
