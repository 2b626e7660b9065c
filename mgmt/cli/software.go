package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/slots"
)

// The software lifecycle commands: show system software, request system
// software add|rollback|trust-key (firmware/slots does the work).

func softwareCommands() []*cmd {
	return []*cmd{
		{name: "add", help: "Verify a signed release bundle and write it to the other boot slot for a trial boot",
			arg: "<file on the config partition> | - [force] [tries N]", words: func(*Shell, []token) []cand {
				return []cand{{"-", "Read the bundle from standard input: ssh admin@box request system software add - < secwire.bundle"},
					{"force", "Allow an older version (a downgrade)"}, {"tries", "Boots the new slot gets to become healthy (default 3)"}}
			}, run: (*Shell).softwareAdd},
		{name: "rollback", help: "Boot the other slot's good firmware at the next reboot", run: (*Shell).softwareRollback},
		{name: "trust-key", help: "Trust another release signing key (serial console only)", arg: "<name> <base64 public key>", run: (*Shell).trustKey},
	}
}

func (sh *Shell) softwareAdd(args []token, end int) error {
	sw := sh.env.Software
	if sw == nil {
		return errors.New("not available here: this is not the appliance")
	}
	if len(args) == 0 {
		return &posError{end, "incomplete: add <file> | - (the bundle on standard input)"}
	}
	o := slots.AddOptions{Out: sh.out, Who: sh.sess.User + " via " + sh.sess.From}
	for i := 1; i < len(args); i++ {
		switch {
		case strings.HasPrefix("force", args[i].s):
			o.Force = true
		case strings.HasPrefix("tries", args[i].s) && i+1 < len(args):
			i++
			if _, err := fmt.Sscanf(args[i].s, "%d", &o.Tries); err != nil || o.Tries < 1 || o.Tries > 9 {
				return errAt(args[i], "%q: want 1 to 9 boots", args[i].s)
			}
		default:
			return errAt(args[i], "unexpected %q: want force or tries N", args[i].s)
		}
	}
	var in io.Reader
	if args[0].s == "-" {
		if sh.sess.In == nil {
			return errAt(args[0], "'-' reads the bundle from standard input, which this session has not: from a host, ssh admin@box request system software add - < secwire.bundle")
		}
		in = sh.sess.In
	} else {
		if sh.env.OpenConfigFile == nil {
			return errors.New("not available here")
		}
		f, err := sh.env.OpenConfigFile(args[0].s)
		if err != nil {
			return errAt(args[0], "%v", err)
		}
		defer f.Close()
		in = f
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "request system software add "+args[0].s)
	if err := sw.Add(in, o); err != nil {
		return err
	}
	return nil
}

func (sh *Shell) softwareRollback(_ []token, _ int) error {
	sw := sh.env.Software
	if sw == nil {
		return errors.New("not available here: this is not the appliance")
	}
	s, err := sw.Rollback(sh.sess.User + " via " + sh.sess.From)
	if err != nil {
		return err
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "request system software rollback to slot "+slots.Label(s.Name))
	sh.printf("the next boot runs slot %s (secwire %s); 'request system reboot' to boot it now\n", slots.Label(s.Name), s.Manifest.Version)
	return nil
}

func (sh *Shell) trustKey(args []token, end int) error {
	if sh.env.TrustKey == nil {
		return errors.New("not available here: this is not the appliance")
	}
	if sh.sess.From != "console" {
		return errors.New("a release key can only be added on the serial console (or by installing a signed bundle whose image trusts it)")
	}
	if len(args) != 2 {
		return &posError{end, "give a name and the key: trust-key <name> <base64 of the PEM PUBLIC KEY's DER>"}
	}
	id, err := sh.env.TrustKey(args[0].s, args[1].s)
	if err != nil {
		return errAt(args[1], "%v", err)
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "request system software trust-key "+args[0].s+" "+id)
	sh.printf("release key %s (%s) trusted: bundles it signs are accepted\n", id, args[0].s)
	return nil
}

func (sh *Shell) showSoftware(_ []token, _ int) error {
	sw := sh.env.Software
	if sw == nil {
		return errors.New("not available here: this is not the appliance")
	}
	running := "a direct kernel boot (not from a boot slot: updates need a boot from the disk)"
	if sw.Running != "" {
		running = "slot " + slots.Label(sw.Running)
		if sw.Trial() {
			running += " on trial (marked good once healthy)"
		}
	}
	sh.printf("Running: secwire %s, %s\n", sw.Version, running)
	st, err := sw.Status()
	if err != nil {
		sh.printf("Boot slots: %v\n", err)
	} else {
		sh.printf("Boot slots:\n  %-5s %-26s %-40s %s\n", "Slot", "Version", "Signed by", "State")
		for _, s := range st.Slots {
			version, signer := s.Manifest.Version, s.Signer.String()
			if s.Empty() {
				version, signer = "-", "-"
			}
			if s.HeadErr != nil {
				signer = "(" + s.HeadErr.Error() + ")"
			}
			state := s.State()
			if s.Name == sw.Running {
				state += ", running"
			}
			sh.printf("  %-5s %-26s %-40s %s\n", slots.Label(s.Name), version, signer, state)
		}
		if st.Next != "" {
			sh.printf("Next boot: slot %s (secwire %s)\n", slots.Label(st.Next), st.Slot(st.Next).Manifest.Version)
		}
		if s := st.Slot(sw.Running); sw.Running != "" && s.Signer.Development {
			sh.printf("WARNING: the running firmware is signed with a development key made by the build (not for production: build with SIGNING_KEY=)\n")
		}
	}
	events := sw.History.Events()
	lastBoot, lastResult := "", ""
	for _, e := range events {
		switch e.Kind {
		case "boot":
			lastBoot, lastResult = e.Time.Format(time.DateTime)+" "+e.Detail+" (secwire "+e.Version+")", "no result yet"
		case "healthy", "unhealthy":
			lastResult = e.Kind + ": " + e.Detail
		}
	}
	if lastBoot != "" {
		sh.printf("Last boot: %s: %s\n", lastBoot, lastResult)
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == "trial failed" {
			sh.printf("Last failed trial: %s %s\n", events[i].Time.Format(time.DateTime), events[i].Detail)
			break
		}
	}
	sh.printf("Trusted release keys:\n")
	for _, k := range sw.ESP.TrustList() {
		sh.printf("  %s (%s)\n", k, k.Source)
	}
	sh.printf("Software history (latest last):\n")
	if len(events) == 0 {
		sh.printf("  (none)\n")
	}
	for _, e := range events[max(0, len(events)-8):] {
		line := e.Time.Format(time.DateTime) + "  " + e.Kind
		if e.Slot != "" {
			line += " slot " + slots.Label(e.Slot)
		}
		if e.Version != "" {
			line += " " + e.Version
		}
		if e.By != "" {
			line += " by " + e.By
		}
		if e.Detail != "" && e.Kind != "trial failed" {
			line += ": " + e.Detail
		}
		sh.printf("  %s\n", line)
	}
	return nil
}
