package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// helpRequested is a command's usage asked for with -h, --help or help:
// main prints it on standard output and exits 0.
type helpRequested struct{ usage string }

func (h helpRequested) Error() string { return h.usage }

// wantsHelp reports whether args ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" || a == "help" {
			return true
		}
	}
	return false
}

// parseFlags parses args into fs. Help comes back as helpRequested; any
// other problem names the option in --name form, then the usage.
func parseFlags(fs *flag.FlagSet, args []string, usage string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return helpRequested{usage}
	}
	return fmt.Errorf("%s\n%s", flagMsg(err), shortUsage(usage))
}

// shortUsage is a usage's synopsis, without the explanation after it.
func shortUsage(usage string) string {
	syn, _, _ := strings.Cut(usage, "\n\n")
	return syn + "\n(--help explains more)"
}

var (
	flagUnknown = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagNoValue = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	flagBad     = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -+([^:]*): (.*)$`)
)

// flagMsg rewrites the flag package's messages the way the rest of the
// command line speaks.
func flagMsg(err error) string {
	s := err.Error()
	if m := flagUnknown.FindStringSubmatch(s); m != nil {
		return "unknown option --" + m[1]
	}
	if m := flagNoValue.FindStringSubmatch(s); m != nil {
		return "--" + m[1] + " needs a value"
	}
	if m := flagBad.FindStringSubmatch(s); m != nil {
		why := m[3]
		switch {
		case strings.Contains(why, "parse error"):
			why = "not a number"
		case strings.Contains(why, "out of range"):
			why = "out of range"
		}
		return fmt.Sprintf("--%s %q: %s", m[2], m[1], why)
	}
	return s
}
