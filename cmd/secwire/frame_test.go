package main

import (
	"bytes"
	"strings"
	"testing"
)

// The Annex C 60-octet GCM-AES-128 frame, protected and validated through
// the command line.
const (
	vecKey   = "ad7a2bd03eac835a6f620fdcb506b345"
	vecSCI   = "12153524c0895e81"
	vecFrame = "d609b1f056637a0d46df998d08000f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a0002"
	vecProt  = "d609b1f056637a0d46df998d88e52e00b2c2846512153524c0895e81701afa1cc039c0d765128a665dab69243899bf7318ccdc81c9931da17fbe8edd7d17cb8b4c26fc81e3284f2b7fba713d4f8d55e7d3f06fd5a13c0c29b9d5b880"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := frameCmd(args, &out)
	return strings.TrimSpace(out.String()), err
}

func TestFrameProtectValidate(t *testing.T) {
	got, err := run(t, "protect", "--cipher", "gcm-aes-128", "--key", vecKey, "--sci", vecSCI, "--pn", "0xb2c28465", "--an", "2", vecFrame)
	if err != nil || got != vecProt {
		t.Fatalf("protect: %v\n got %s\nwant %s", err, got, vecProt)
	}
	got, err = run(t, "validate", "--key", vecKey, "--sci", vecSCI, "--an", "2", vecProt)
	if err != nil || got != vecFrame {
		t.Fatalf("validate: %v\n got %s", err, got)
	}
}

func TestFrameValidateReasons(t *testing.T) {
	bad := []byte(vecProt)
	bad[len(bad)-1] ^= 1 // flips the last hex digit of the ICV
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--an", "2", string(bad)}, "bad ICV"},
		{[]string{"--an", "1", vecProt}, "no receive SA for AN: 2"},
		{[]string{"--an", "2", "--pn", "0xb2c28466", vecProt}, "late PN"},
		{[]string{"--an", "2", vecProt[:28] + "ae" + vecProt[30:]}, "malformed SecTAG at byte 14"},
	} {
		args := append([]string{"validate", "--key", vecKey, "--sci", vecSCI}, c.args...)
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := run(t, "protect", "--key", "abcd", "--sci", vecSCI, vecFrame); err == nil || strings.Contains(err.Error(), "abcd") {
		t.Errorf("short key: %v", err)
	}
}
