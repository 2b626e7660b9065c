package cli

import "strconv"

// options reads the `name value` pairs that follow an operational
// command's fixed arguments (count 5, seconds 30 …), in any order, and
// hands each to set. end is where the line ends, for "missing value".
func options(args []token, end int, names []string, set func(name string, v token) error) error {
	for i := 0; i < len(args); i += 2 {
		k, err := match(args[i], names, "option")
		if err != nil {
			return err
		}
		if i+1 >= len(args) {
			return &posError{end, "missing value after " + k}
		}
		if err := set(k, args[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// intOption is option name's whole-number value in lo..hi.
func intOption(name string, v token, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v.s)
	if err != nil || n < lo || n > hi {
		return 0, errAt(v, "%s %q: want %d..%d", name, v.s, lo, hi)
	}
	return n, nil
}
