package bundle

import (
	"encoding/base64"
	"strings"
)

// CompareVersions orders release versions the way systemd-boot orders
// entry versions: runs of digits compare as numbers, other characters
// one by one, and a leading "v" is ignored. "1.10.0" > "1.9.2" > "1.9".
func CompareVersions(a, b string) int {
	a, b = strings.TrimPrefix(a, "v"), strings.TrimPrefix(b, "v")
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			da, db := digits(a), digits(b)
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(na) != len(nb) {
				return cmp(len(na), len(nb))
			}
			if na != nb {
				return strings.Compare(na, nb)
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			// A suffix such as "-rc1" or "~pre" sorts before the release
			// it precedes: "1.2~rc1" < "1.2".
			return cmp(rank(a[0]), rank(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	switch {
	case a != "" && a[0] == '~':
		return -1
	case b != "" && b[0] == '~':
		return 1
	}
	return cmp(len(a), len(b))
}

func rank(c byte) int {
	if c == '~' {
		return -1
	}
	return int(c)
}

func cmp(x, y int) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
