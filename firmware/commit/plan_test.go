package commit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/supervisor"
)

// A commit compares typed values: spelling a default out, or spelling a
// value another way, is no change and restarts nothing. A real change
// still restarts the link.
func TestCommitComparesTypedValues(t *testing.T) {
	link := func(fields string) *config.Config {
		t.Helper()
		c, err := config.Parse(fmt.Appendf(nil, `{"links": [{"name": "l0", "plain": "p", "line": "q"%s,
		  "mka": {"key_chain": [{"ckn": "0a0b", "cak": "%s", "start": "2026-12-01T01:00:00+01:00"}]}}]}`, fields, strings.Repeat("11", 16)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	running := link(`, "cipher": "gcm-aes-128"`)
	for _, same := range []string{
		``,
		`, "cipher": ""`,
		`, "cipher": "GCM-AES-128"`,
		`, "cipher": "gcm-aes-128", "validate": "strict", "policy": "must-secure", "datapath": "auto", "send_sci": true, "mtu": 1500`,
	} {
		if plan := supervisor.Plan(running, link(same)); len(plan) != 0 {
			t.Errorf("%q: plan %+v, want no change", same, plan)
		}
	}
	// The same instant written in UTC is no change either.
	utc := link(`, "cipher": "gcm-aes-128"`)
	utc.Links[0].MKA.KeyChain[0].Start = running.Links[0].MKA.KeyChain[0].Start.UTC()
	if plan := supervisor.Plan(running, utc); len(plan) != 0 {
		t.Errorf("start in UTC: plan %+v, want no change", plan)
	}
	plan := supervisor.Plan(running, link(`, "cipher": "gcm-aes-256"`))
	if len(plan) != 1 || plan[0].Action != supervisor.ActionRestart || strings.Join(plan[0].Fields, " ") != "links[0].cipher" {
		t.Errorf("gcm-aes-256: plan %+v, want a restart for links[0].cipher", plan)
	}
}
