package cli

import (
	"fmt"
	"io"
	"reflect"
)

// render prints configuration in the hierarchical style of Junos and VyOS:
//
//	links l0 {
//	    cipher gcm-aes-xpn-256;
//	}
//
// Secrets are shown as fingerprints, marked ## SECRET-DATA.
func render(w io.Writer, n *node, v reflect.Value, inList bool, indent string) {
	for v.Kind() == reflect.Pointer && n.kind != leaf {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case n.kind == container || inList:
		for _, c := range n.children {
			fv := v.Field(c.field)
			switch c.kind {
			case leaf:
				s := leafString(fv)
				if s == "" {
					continue
				}
				switch {
				case c.isSecret():
					fmt.Fprintf(w, "%s%s %q; ## SECRET-DATA\n", indent, c.name, fingerprint(c, s))
				case fv.Kind() == reflect.Bool:
					fmt.Fprintf(w, "%s%s;\n", indent, c.name)
				default:
					fmt.Fprintf(w, "%s%s %s;\n", indent, c.name, quote(s))
				}
			case leafList:
				for i := range fv.Len() {
					fmt.Fprintf(w, "%s%s %s;\n", indent, c.name, quote(fv.Index(i).String()))
				}
			case list:
				for i := range fv.Len() {
					e := fv.Index(i)
					fmt.Fprintf(w, "%s%s %s {\n", indent, c.name, quote(leafString(e.Field(0))))
					render(w, c, e, true, indent+"    ")
					fmt.Fprintf(w, "%s}\n", indent)
				}
			case container:
				if fv.Kind() == reflect.Pointer && fv.IsNil() || fv.IsZero() {
					continue
				}
				fmt.Fprintf(w, "%s%s {\n", indent, c.name)
				render(w, c, fv, false, indent+"    ")
				fmt.Fprintf(w, "%s}\n", indent)
			}
		}
	case n.kind == list:
		for i := range v.Len() {
			e := v.Index(i)
			fmt.Fprintf(w, "%s%s {\n", indent, quote(leafString(e.Field(0))))
			render(w, n, e, true, indent+"    ")
			fmt.Fprintf(w, "%s}\n", indent)
		}
	case n.kind == leaf:
		if s := leafString(v); s != "" {
			if n.isSecret() {
				s = fingerprint(n, s) + " ## SECRET-DATA"
			}
			fmt.Fprintf(w, "%s%s;\n", indent, s)
		}
	case n.kind == leafList:
		for i := range v.Len() {
			fmt.Fprintf(w, "%s%s;\n", indent, quote(v.Index(i).String()))
		}
	}
}

// diff lists the statements that differ between two configs as
// "- set ..." and "+ set ..." lines, in order (a longest common
// subsequence of the flattened statements).
func diff(a, b []line) []string {
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i] = a[i].String()
	}
	for i := range b {
		bs[i] = b[i].String()
	}
	// lcs[i][j] is the LCS length of as[i:] and bs[j:].
	lcs := make([][]int, len(as)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bs)+1)
	}
	for i := len(as) - 1; i >= 0; i-- {
		for j := len(bs) - 1; j >= 0; j-- {
			if as[i] == bs[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		switch {
		case i < len(as) && j < len(bs) && as[i] == bs[j]:
			i, j = i+1, j+1
		case i < len(as) && (j == len(bs) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- set "+as[i])
			i++
		default:
			out = append(out, "+ set "+bs[j])
			j++
		}
	}
	return out
}
