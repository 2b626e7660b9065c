package cli

import (
	"fmt"
	"strings"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/sakexport"
)

func exportWords(sh *Shell, args []token) []cand {
	switch len(args) {
	case 0:
		return linkNames(sh, nil)
	case 1:
		return []cand{{"file", "Write them to a file (owner-only, never replacing one)"}, {"terminal", "Print them here"}}
	}
	if args[1].s == "file" {
		return []cand{{"<name>", "File name"}}
	}
	return nil
}

// exportKeys runs `request security mka export-keys LINK file NAME|terminal`:
// the link's current SAKs in clear, after a confirmation, audited.
func (sh *Shell) exportKeys(args []token, end int) error {
	if len(args) < 2 {
		return &posError{end, "incomplete: request security mka export-keys <link> file <name> | <link> terminal"}
	}
	where, err := match(args[1], []string{"file", "terminal"}, "destination")
	if err != nil {
		return err
	}
	path := ""
	switch {
	case where == "file" && len(args) != 3:
		return &posError{end, "give one file name: export-keys " + args[0].s + " file <name>"}
	case where == "file":
		if path, err = sh.filePath(args[2]); err != nil {
			return err
		}
	case len(args) > 2:
		return errAt(args[2], "unexpected %q", args[2].s)
	}
	f, err := sh.env.Manager.ExportKeys(args[0].s)
	if err != nil {
		return errAt(args[0], "%v", err)
	}
	var kns []string
	for _, s := range f.SAKs {
		kns = append(kns, fmt.Sprintf("KN %d (AN %d)", s.KN, s.AN))
	}
	dest := "this terminal"
	if path != "" {
		dest = path
	}
	sh.printf("This writes %d SAK(s) of link %s IN CLEAR to %s: %s.\n", len(f.SAKs), f.Link, dest, strings.Join(kns, ", "))
	sh.printf("Whoever holds them can decrypt the link's traffic protected with them, until the next rekey and\n" +
		"in any capture taken meanwhile. The export is in the audit log.\n")
	if sh.sess.AskLine == nil {
		return fmt.Errorf("export-keys needs a confirmation: run it in an interactive session (ssh -t)")
	}
	if !sh.confirm("Export these keys? [yes,no] ") {
		sh.printf("export cancelled\n")
		return nil
	}
	who := commit.Who{User: sh.sess.User, From: sh.sess.From}
	if path == "" {
		b, err := sakexport.Marshal(f)
		if err != nil {
			return err
		}
		sh.env.Audit.Record(who, fmt.Sprintf("request security mka export-keys %s: %s shown on the terminal", f.Link, strings.Join(kns, ", ")))
		sh.out.Write(b)
		clear(b)
		return nil
	}
	if err := sakexport.Write(path, f); err != nil {
		return err
	}
	sh.env.Audit.Record(who, fmt.Sprintf("request security mka export-keys %s: %s written to %s", f.Link, strings.Join(kns, ", "), path))
	sh.printf("written to %s (mode 0600); 'secwire pcap decrypt --keys %s IN OUT' reads it. Delete it when done.\n", path, path)
	return nil
}
