// Package golden is what the golden-file tests share: a diff a reviewer
// can read when a transcript, a message list or a generated file differs
// from what is committed.
package golden

import (
	"fmt"
	"strings"
)

// maxLines bounds a diff: one changed message can shift a whole file.
const maxLines = 40

// Diff lists the lines where got differs from want, by line number.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			continue
		}
		if shown == maxLines {
			b.WriteString("(more lines differ)\n")
			break
		}
		shown++
		fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
	}
	if shown == 0 {
		return "(only the line count or line endings differ)\n"
	}
	return b.String()
}
