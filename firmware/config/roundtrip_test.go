package config

import (
	"bytes"
	"os"
	"testing"
)

// testdata/stored.json is a config as the string-typed model before the
// typed values wrote it, with every field set, defaults spelled out and
// left out. Decoding it into the typed model and storing it again must
// give the same bytes: the format on disk did not change.
func TestStoredConfigRoundTripsByteIdentically(t *testing.T) {
	stored, err := os.ReadFile("testdata/stored.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(stored)
	if err != nil {
		t.Fatal(err)
	}
	if again := c.Marshal(); !bytes.Equal(again, stored) {
		t.Errorf("stored again:\n%s\nwant:\n%s", again, stored)
	}
	if again := c.Clone().Marshal(); !bytes.Equal(again, stored) {
		t.Errorf("a clone stored:\n%s\nwant:\n%s", again, stored)
	}
}
