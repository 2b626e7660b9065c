package golden

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	for _, c := range []struct{ want, got, diff string }{
		{"a\nb\n", "a\nb\n", ""},
		{"a\nb\nc", "a\nB\nc", "line 2:\n  want: b\n  got:  B\n"},
		{"a", "a\nextra", "line 2:\n  want: \n  got:  extra\n"},
		{"a\n", "a", "(only the line count or line endings differ)\n"},
	} {
		if got := Diff(c.want, c.got); got != c.diff {
			t.Errorf("Diff(%q, %q) = %q, want %q", c.want, c.got, got, c.diff)
		}
	}
}

func TestDiffIsBounded(t *testing.T) {
	want := strings.Repeat("x\n", 100)
	got := strings.Repeat("y\n", 100)
	d := Diff(want, got)
	if n := strings.Count(d, "line "); n != maxLines {
		t.Errorf("diff shows %d lines, want %d", n, maxLines)
	}
	if !strings.HasSuffix(d, "(more lines differ)\n") {
		t.Errorf("a cut diff does not say so:\n%s", d)
	}
}
