// Package cli is the appliance's command line, the same on the serial
// console and over SSH, in the habits of Junos and VyOS: an operational
// mode (show, clear, request) and a configuration mode that edits a
// private candidate (set, delete, show, compare, commit, rollback).
// Words may be abbreviated to unique prefixes; Tab completes and '?' lists
// what may come next at any position.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/health"
	"github.com/secwire/secwire/firmware/slots"
	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/firmware/supervisor"
	"github.com/secwire/secwire/mgmt/audit"
	"github.com/secwire/secwire/mgmt/noc"
	"github.com/secwire/secwire/mgmt/ping"
	"github.com/secwire/secwire/mgmt/show"
)

// Env is the box the shell manages; functions left nil report that the
// command is not available here.
type Env struct {
	Manager  *commit.Manager
	Audit    *audit.Log
	Log      func(n int) []string // the system log's last n lines
	Info     func() []string      // show system: version, board, boot slot ...
	Ports    func() []drivers.Port
	Sessions func() []string
	Reboot   func() error
	Zeroize  func() error
	// StallMKA hangs a link's key agreement for a while: a test hook,
	// set only when the kernel command line enables test hooks.
	StallMKA func(link string, d time.Duration) error
	// NOC is the state of clock sync, syslog and metrics (show system
	// time|syslog|metrics).
	NOC func() noc.Status
	// Uptime is the system's uptime for show system; nil reads it from
	// the kernel (tests pin it).
	Uptime func() time.Duration
	// FileDir is where commands write files (captures, key exports);
	// "" when the box keeps none.
	FileDir string
	// Minute is how long a minute of `commit confirmed N` lasts (tests).
	Minute time.Duration
	// Software is the boot slots and updates (nil: not the appliance).
	Software *slots.Manager
	// OpenConfigFile opens a file on the config partition by name.
	OpenConfigFile func(name string) (io.ReadCloser, error)
	// TrustKey trusts another release key (name, base64 public key) and
	// returns its ID.
	TrustKey func(name, key string) (string, error)
}

// Session is who uses the shell and how it talks to them.
type Session struct {
	User, From string
	Role       config.Role
	Out        io.Writer
	// AskSecret reads a line without echo; AskLine with echo.
	AskSecret func(prompt string) (string, error)
	AskLine   func(prompt string) (string, error)
	// In is the session's standard input when it carries data rather
	// than keystrokes (an SSH command without a terminal), else nil.
	In io.Reader
	// CurrentRole looks the user up in the running config before every
	// command (nil: Role holds for the whole session). A user deleted
	// meanwhile is logged out; a user demoted leaves configuration mode.
	CurrentRole func() (role config.Role, ok bool)
}

// Shell is one user's CLI session.
type Shell struct {
	env  *Env
	sess Session
	out  io.Writer
	cand *config.Config // the candidate, non-nil in configuration mode
	base *config.Config // running config when editing started
	done bool
}

// New starts a session in operational mode.
func New(env *Env, sess Session) *Shell {
	return &Shell{env: env, sess: sess, out: sess.Out}
}

// minute is how long a minute of `commit confirmed N` lasts. Env is
// shared by every session: it is read here, never defaulted in place.
func (sh *Shell) minute() time.Duration {
	if sh.env.Minute == 0 {
		return time.Minute
	}
	return sh.env.Minute
}

// hostname is the configured host name, else "secwire".
func (sh *Shell) hostname() string {
	if h := sh.env.Manager.System().Hostname; h != "" {
		return h
	}
	return "secwire"
}

// systemUptime is how long the system has run (not the links).
func systemUptime() time.Duration {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return time.Duration(si.Uptime) * time.Second
}

// Prompt is the prompt for the next line: user@host> in operational mode,
// user@host# in configuration mode. It never waits for a commit.
func (sh *Shell) Prompt() string {
	host := sh.hostname()
	if sh.cand != nil {
		return sh.sess.User + "@" + host + "# "
	}
	return sh.sess.User + "@" + host + "> "
}

// Done reports that the user logged out.
func (sh *Shell) Done() bool { return sh.done }

// Configuring reports configuration mode.
func (sh *Shell) Configuring() bool { return sh.cand != nil }

func (sh *Shell) printf(f string, a ...any) { fmt.Fprintf(sh.out, f, a...) }

// Exec runs one command line and prints its output or error. An error
// about a word is shown with a caret under it.
func (sh *Shell) Exec(lineText string) {
	prompt := len(sh.Prompt())
	cmdText, pipeText, at := splitPipe(lineText)
	var err error
	if at >= 0 {
		var fs []lineFilter
		if fs, err = parsePipes(pipeText, at+1); err == nil {
			var buf bytes.Buffer
			sh.out = &buf
			err = sh.exec(cmdText)
			sh.out = sh.sess.Out
			sh.out.Write(applyPipes(buf.Bytes(), fs))
		}
	} else {
		err = sh.exec(cmdText)
	}
	if err == nil {
		return
	}
	var pe *posError
	if errors.As(err, &pe) {
		sh.printf("%s^\n", strings.Repeat(" ", prompt+pe.pos))
	}
	sh.printf("error: %v\n", err)
}

func (sh *Shell) exec(s string) error {
	toks, _, err := tokenize(s)
	if err != nil || len(toks) == 0 {
		return err
	}
	if err := sh.checkRole(); err != nil {
		return err
	}
	c, args, err := resolve(sh.commands(), toks)
	if err != nil {
		return err
	}
	if adminOnly(sh.commands(), toks[0]) && sh.sess.Role != config.RoleAdmin {
		return fmt.Errorf("permission denied: %s is an operator (show only)", sh.sess.User)
	}
	return c.run(sh, args, len(s))
}

// checkRole applies a commit that deleted or demoted this session's user.
func (sh *Shell) checkRole() error {
	if sh.sess.CurrentRole == nil {
		return nil
	}
	role, ok := sh.sess.CurrentRole()
	switch {
	case !ok:
		sh.done = true
		return fmt.Errorf("user %s was deleted: logging out", sh.sess.User)
	case role != sh.sess.Role:
		was := sh.sess.Role
		sh.sess.Role = role
		if role != config.RoleAdmin && sh.cand != nil {
			sh.cand, sh.base = nil, nil
			return fmt.Errorf("permission denied: %s is now %s (was %s); configuration mode left, the candidate discarded", sh.sess.User, role, was)
		}
	}
	return nil
}

// cmd is one command word.
type cmd struct {
	name, help string
	sub        []*cmd
	admin      bool
	// arg describes the arguments, "" when there are none; words lists
	// what they may be, for completion (nil: free text).
	arg   string
	words func(sh *Shell, args []token) []cand
	run   func(sh *Shell, args []token, end int) error
}

// resolve finds the command of toks and its arguments.
func resolve(cmds []*cmd, toks []token) (*cmd, []token, error) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	name, err := match(toks[0], names, "command")
	if err != nil {
		return nil, nil, err
	}
	c := cmds[slices.Index(names, name)]
	if len(toks) > 1 && len(c.sub) > 0 {
		sc, args, err := resolve(c.sub, toks[1:])
		if err == nil || c.run == nil || c.arg == "" {
			return sc, args, err
		}
	}
	if c.run == nil {
		if len(toks) == 1 {
			return nil, nil, errAt(toks[0], "incomplete: %s what? %s", c.name, listNames(c.sub))
		}
		return nil, nil, errAt(toks[1], "unexpected %q", toks[1].s)
	}
	if c.arg == "" && len(toks) > 1 {
		return nil, nil, errAt(toks[1], "unexpected %q: %s takes no argument", toks[1].s, c.name)
	}
	return c, toks[1:], nil
}

// adminOnly reports whether the command the first word names is for
// admins (every command below it is, too).
func adminOnly(cmds []*cmd, first token) bool {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	n, err := match(first, names, "command")
	return err == nil && cmds[slices.Index(names, n)].admin
}

func listNames(cs []*cmd) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.name)
	}
	return "expected one of: " + strings.Join(n, ", ")
}

func (sh *Shell) commands() []*cmd {
	if sh.cand != nil {
		return sh.configCommands()
	}
	return sh.opCommands()
}

func linkNames(sh *Shell, _ []token) []cand {
	var c []cand
	for _, l := range sh.env.Manager.Running().Links {
		c = append(c, cand{l.Name, "link"})
	}
	return c
}

func (sh *Shell) opCommands() []*cmd {
	status := func(view func(io.Writer, supervisor.Status)) func(*Shell, []token, int) error {
		return func(sh *Shell, _ []token, _ int) error { view(sh.out, sh.env.Manager.Status()); return nil }
	}
	return []*cmd{
		{name: "clear", help: "Clear counters", admin: true, sub: []*cmd{
			{name: "counters", help: "Make show counters count from now", run: func(sh *Shell, _ []token, _ int) error {
				sh.env.Manager.ClearCounters()
				sh.printf("counters cleared\n")
				return nil
			}},
		}},
		{name: "configure", help: "Enter configuration mode (a private candidate)", admin: true, run: (*Shell).configure},
		{name: "exit", help: "Log out", run: (*Shell).logout},
		{name: "monitor", help: "Watch frames on a port", admin: true, sub: []*cmd{
			{name: "traffic", help: "Capture a port's frames, both directions (Junos monitor traffic)",
				arg: "interface <port> [count N] [seconds N] [write-file NAME]", words: monitorWords, run: (*Shell).monitor},
		}},
		{name: "ping", help: "Ping a host on a link's plaintext side (ARP and ICMP from a test source address)", admin: true,
			arg: "<address> link <link> source <address> [count N]", run: (*Shell).ping},
		{name: "quit", help: "Log out", run: (*Shell).logout},
		{name: "request", help: "Ask the system to do something", admin: true, sub: []*cmd{
			{name: "security", help: "Security requests", sub: []*cmd{
				{name: "mka", help: "MACsec Key Agreement", sub: []*cmd{
					{name: "rekey", help: "Ask a link's key server for a new SAK", arg: "<link>", words: linkNames, run: (*Shell).rekey},
					{name: "export-keys", help: "Write a link's current SAKs IN CLEAR, for decrypting a capture",
						arg: "<link> file <name> | <link> terminal", words: exportWords, run: (*Shell).exportKeys},
				}},
			}},
			{name: "system", help: "System requests", sub: sh.systemRequests()},
		}},
		{name: "show", help: "Show status and configuration", sub: []*cmd{
			{name: "configuration", help: "The running configuration", run: func(sh *Shell, _ []token, _ int) error {
				c := sh.env.Manager.Running()
				if len(flatten(c)) == 0 {
					sh.printf("(no configuration committed yet: 'configure' to start)\n")
				}
				render(sh.out, root, reflect.ValueOf(c).Elem(), false, "")
				return nil
			}},
			{name: "counters", help: "IEEE 802.1AE counters per SecY, SC and SA", run: status(show.Counters)},
			{name: "interfaces", help: "Ports: role, link, MTU, driver, offload, datapath", run: (*Shell).showInterfaces},
			{name: "log", help: "The system log; 'show log audit' for logins and commits", arg: "[audit]",
				words: func(*Shell, []token) []cand { return []cand{{"audit", "Logins, failed logins and commits"}} },
				run:   (*Shell).showLog},
			{name: "macsec", help: "SecYs, secure channels and SAs", run: status(show.MACsec)},
			{name: "mka", help: "MKA sessions: CA, peers, key server, keys", run: status(show.MKA)},
			{name: "system", help: "Version, board, uptime, boot slot and commits", run: (*Shell).showSystem, sub: []*cmd{
				{name: "metrics", help: "The Prometheus metrics endpoint", run: showNOC(func(w io.Writer, st noc.Status) { noc.ShowMetrics(w, st) })},
				{name: "software", help: "Boot slots: versions, signers, trial or good, last boot result, trusted keys", run: (*Shell).showSoftware},
				{name: "syslog", help: "Syslog collectors: state, queued and dropped messages", run: showNOC(func(w io.Writer, st noc.Status) { noc.ShowSyslog(w, st, time.Now()) })},
				{name: "time", help: "Clock: synchronised or not, offset, stratum, last sync, NTP servers", run: showNOC(func(w io.Writer, st noc.Status) { noc.ShowTime(w, st) })},
			}},
			{name: "users", help: "Who is logged in", run: func(sh *Shell, _ []token, _ int) error {
				if sh.env.Sessions == nil {
					return errors.New("not available here")
				}
				for _, s := range sh.env.Sessions() {
					sh.printf("%s\n", s)
				}
				return nil
			}},
		}},
	}
}

func (sh *Shell) systemRequests() []*cmd {
	cmds := []*cmd{
		{name: "reboot", help: "Reboot the appliance", run: (*Shell).reboot},
		{name: "software", help: "Firmware updates: add a signed bundle, roll back", sub: softwareCommands()},
		{name: "zeroize", help: "Erase every key, user and config, then reboot to first-boot setup", run: (*Shell).zeroize},
	}
	if sh.env.StallMKA != nil {
		cmds = append(cmds, &cmd{name: "test-hook", help: "Fault injection (test hooks are enabled on the kernel command line)", sub: []*cmd{
			{name: "stall-mka", help: "Hang a link's key agreement, as a wedged one would: the watchdog resets the box",
				arg: "<link> <seconds>", words: linkNames, run: (*Shell).stallMKA},
		}})
	}
	return cmds
}

func (sh *Shell) stallMKA(args []token, end int) error {
	if len(args) != 2 {
		return &posError{end, "give a link name and a number of seconds"}
	}
	n, err := strconv.Atoi(args[1].s)
	if err != nil || n < 1 || n > 3600 {
		return errAt(args[1], "%q: want seconds, 1..3600", args[1].s)
	}
	if err := sh.env.StallMKA(args[0].s, time.Duration(n)*time.Second); err != nil {
		return errAt(args[0], "%v", err)
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "request system test-hook stall-mka", args[0].s, args[1].s)
	sh.printf("key agreement of link %s stalls for %d s\n", args[0].s, n)
	return nil
}

func (sh *Shell) configCommands() []*cmd {
	schemaWords := func(forSet bool) func(*Shell, []token) []cand {
		return func(sh *Shell, args []token) []cand { return schemaCands(sh.cand, args, forSet) }
	}
	rollbacks := func(sh *Shell, _ []token) []cand {
		var c []cand
		for _, e := range sh.env.Manager.History() {
			help := e.Time.Format(time.DateTime) + " " + commitAuthor(e)
			if e.Comment != "" {
				help += ": " + e.Comment
			}
			c = append(c, cand{strconv.Itoa(e.N), help})
		}
		return c
	}
	return []*cmd{
		{name: "commit", help: "Validate and apply the candidate", arg: "[check | confirmed [minutes] | and-quit] [comment \"text\"]",
			words: func(_ *Shell, args []token) []cand {
				if len(args) > 0 && args[len(args)-1].s == "comment" {
					return []cand{{"<text>", "Why, for the commit list (quote it)"}}
				}
				if len(args) == 1 && args[0].s == "confirmed" {
					return []cand{{"<minutes>", "Roll back after this many minutes unless confirmed (default 10)"}, {"comment", "Note why, for the commit list"}}
				}
				return []cand{{"check", "Validate only"}, {"confirmed", "Roll back automatically unless confirmed by another commit"},
					{"and-quit", "Commit, then leave configuration mode"}, {"comment", "Note why, for the commit list"}}
			},
			run: (*Shell).commit},
		{name: "compare", help: "Show the candidate's differences from the running config", arg: "[rollback N]", run: (*Shell).compare},
		{name: "delete", help: "Delete a statement or section", arg: "<path>", words: schemaWords(false), run: func(sh *Shell, args []token, end int) error {
			c := sh.cand.Clone()
			if err := del(c, args, end); err != nil {
				return err
			}
			sh.cand = c
			return nil
		}},
		{name: "exit", help: "Leave configuration mode", arg: "[discard]", run: (*Shell).exitConfig},
		{name: "quit", help: "Leave configuration mode", arg: "[discard]", run: (*Shell).exitConfig},
		{name: "rollback", help: "Load an earlier commit into the candidate (0: the running config)", arg: "[N]", words: rollbacks, run: (*Shell).rollback},
		{name: "run", help: "Run an operational command", arg: "<command>", run: func(sh *Shell, args []token, end int) error {
			if len(args) == 0 {
				return &posError{end, "incomplete: run what? (run show mka)"}
			}
			c, rest, err := resolve(sh.opCommands(), args)
			if err != nil {
				return err
			}
			if adminOnly(sh.opCommands(), args[0]) && sh.sess.Role != config.RoleAdmin {
				return fmt.Errorf("permission denied: %s is an operator (show only)", sh.sess.User)
			}
			if c.name == "configure" || c.name == "exit" || c.name == "quit" {
				return errAt(args[0], "not from configuration mode")
			}
			return c.run(sh, rest, end)
		}},
		{name: "set", help: "Set a value", arg: "<path> <value>", words: schemaWords(true), run: func(sh *Shell, args []token, end int) error {
			c := sh.cand.Clone()
			if err := set(c, args, end, sh.sess.AskSecret, sh.out); err != nil {
				return err
			}
			sh.cand = c
			return nil
		}},
		{name: "show", help: "Show the candidate (or a part of it)", arg: "[path]", words: schemaWords(false), run: (*Shell).showCandidate},
	}
}

func (sh *Shell) logout(_ []token, _ int) error {
	sh.done = true
	return nil
}

func (sh *Shell) configure(_ []token, _ int) error {
	sh.cand = sh.env.Manager.Running()
	sh.base = sh.cand.Clone()
	sh.printf("Entering configuration mode\n")
	if d := sh.env.Manager.Pending(); !d.IsZero() {
		sh.printf("[a commit confirmed rolls back at %s unless you commit]\n", d.Format(time.TimeOnly))
	}
	sh.printf("\n[edit]\n")
	return nil
}

func (sh *Shell) changes() []string {
	return diff(flatten(sh.env.Manager.Running()), flatten(sh.cand))
}

func (sh *Shell) exitConfig(args []token, _ int) error {
	discard := len(args) == 1 && strings.HasPrefix("discard", args[0].s)
	if len(args) > 1 || len(args) == 1 && !discard {
		return errAt(args[0], "unexpected %q: exit takes only 'discard'", args[0].s)
	}
	if len(sh.changes()) > 0 && !discard {
		return errors.New("uncommitted changes: 'commit' them, or 'exit discard' to drop them")
	}
	sh.cand, sh.base = nil, nil
	sh.printf("Exiting configuration mode\n")
	return nil
}

func (sh *Shell) showCandidate(args []token, end int) error {
	if len(args) == 0 {
		render(sh.out, root, reflect.ValueOf(sh.cand).Elem(), false, "")
		return nil
	}
	cur, rest, err := descend(sh.cand.Clone(), args, false)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return errAt(rest[0], "unexpected %q", rest[0].s)
	}
	render(sh.out, cur.n, cur.v, cur.inList, "")
	return nil
}

func (sh *Shell) compare(args []token, end int) error {
	against := sh.env.Manager.Running()
	switch {
	case len(args) == 0:
	case len(args) == 2 && strings.HasPrefix("rollback", args[0].s):
		n, err := strconv.Atoi(args[1].s)
		if err != nil {
			return errAt(args[1], "want a rollback number")
		}
		if against, err = sh.env.Manager.Rollback(n); err != nil {
			return errAt(args[1], "%v", err)
		}
	default:
		return errAt(args[0], "expected nothing or 'rollback N'")
	}
	d := diff(flatten(against), flatten(sh.cand))
	if len(d) == 0 {
		sh.printf("no differences\n")
	}
	for _, l := range d {
		sh.printf("%s\n", l)
	}
	if len(args) == 0 {
		for _, l := range planLines(sh.cand, sh.env.Manager.Plan(sh.cand), true) {
			sh.printf("%s\n", l)
		}
	}
	return nil
}

// planLines says what a commit does, or will do, to each link: which
// restart (the plaintext port goes down while the link comes up again)
// and which take the change in place.
func planLines(c *config.Config, plan []supervisor.Change, will bool) []string {
	var out []string
	for _, ch := range plan {
		var fields []string
		for _, f := range ch.Fields {
			fields = append(fields, strings.TrimPrefix(cliRef(c, f), "links "+ch.Link+" "))
		}
		what := strings.Join(fields, ", ")
		var l string
		switch {
		case ch.Action == supervisor.ActionRestart && will:
			l = "link " + ch.Link + " will restart (new SecY and CA, its plaintext port goes down meanwhile) for: " + what
		case ch.Action == supervisor.ActionRestart:
			l = "link " + ch.Link + " restarted for: " + what
		case ch.Action == supervisor.ActionInPlace && will:
			l = "link " + ch.Link + " will change in place (no restart, the ports stay up): " + what
		case ch.Action == supervisor.ActionInPlace:
			l = "link " + ch.Link + " changed in place: " + what
		case will:
			l = "link " + ch.Link + " will " + string(ch.Action)
		case ch.Action == supervisor.ActionStart:
			l = "link " + ch.Link + " started"
		default:
			l = "link " + ch.Link + " stopped"
		}
		out = append(out, l)
	}
	return out
}

func (sh *Shell) rollback(args []token, _ int) error {
	n := 0
	if len(args) > 1 {
		return errAt(args[1], "unexpected %q", args[1].s)
	}
	if len(args) == 1 {
		var err error
		if n, err = strconv.Atoi(args[0].s); err != nil || n < 0 {
			return errAt(args[0], "%q: want a rollback number (0: the running config)", args[0].s)
		}
	}
	c, err := sh.env.Manager.Rollback(n)
	if n == 0 && err != nil {
		c, err = sh.env.Manager.Running(), nil // nothing committed yet
	}
	if err != nil {
		if len(args) == 1 {
			return errAt(args[0], "%v", err)
		}
		return err
	}
	// The loaded config is a whole candidate of its own: it is compared
	// with, and committed over, what runs now.
	sh.cand, sh.base = c, sh.env.Manager.Running()
	sh.printf("load complete (rollback %d); 'compare' shows it, 'commit' applies it\n", n)
	return nil
}

func (sh *Shell) commit(args []token, end int) error {
	var confirm time.Duration
	check, quit := false, false
	comment := ""
	for i, a := range args {
		if len(a.s) >= 4 && strings.HasPrefix("comment", a.s) {
			if i != len(args)-2 {
				return &posError{end, "comment takes one text, last on the line: commit comment \"why\""}
			}
			comment, args = args[i+1].s, args[:i]
			break
		}
	}
	switch {
	case len(args) == 0:
	case strings.HasPrefix("check", args[0].s) && len(args) == 1:
		check = true
	case strings.HasPrefix("and-quit", args[0].s) && len(args) == 1:
		quit = true
	case strings.HasPrefix("confirmed", args[0].s) && len(args) <= 2:
		mins := 10
		if len(args) == 2 {
			n, err := strconv.Atoi(args[1].s)
			if err != nil || n < 1 || n > 65535 {
				return errAt(args[1], "%q: want minutes, 1..65535", args[1].s)
			}
			mins = n
		}
		confirm = time.Duration(mins) * sh.minute()
	default:
		return errAt(args[0], "unexpected %q: want check, confirmed [minutes] or and-quit", args[0].s)
	}
	if errs := sh.cand.Check(); len(errs) > 0 {
		sh.printf("error: configuration check-out failed: %d problem(s)\n", len(errs))
		for _, e := range errs {
			sh.printf("  %s: %s\n", cliRef(sh.cand, e.Path), cliMsg(sh.cand, e.Msg))
		}
		return errors.New("commit failed: nothing changed")
	}
	if check {
		for _, l := range planLines(sh.cand, sh.env.Manager.Plan(sh.cand), true) {
			sh.printf("%s\n", l)
		}
		sh.printf("configuration check succeeds\n")
		return nil
	}
	running := sh.env.Manager.Running()
	if len(diff(flatten(sh.base), flatten(running))) > 0 {
		if e := sh.env.Manager.LastExpiry(); e != nil && sameConfig(sh.base, e.RolledBack) && sameConfig(running, e.Restored) {
			// The only change since editing began is the automatic
			// rollback of this candidate's own commit confirmed.
			sh.base = running
			return fmt.Errorf("your commit confirmed was not confirmed in time and was rolled back at %s; your candidate still holds it ('compare' shows the changes): 'commit' applies it again, 'commit confirmed' with a new timer, 'rollback 0' drops it",
				e.At.Format(time.TimeOnly))
		}
		return errors.New("the running config was changed by another commit since you started editing: 'rollback 0' loads the running config (dropping your changes) to make them again, 'rollback N' an earlier commit")
	}
	changes := sh.changes()
	pending := !sh.env.Manager.Pending().IsZero()
	if len(changes) == 0 && confirm == 0 && !pending {
		sh.printf("commit complete (no changes)\n")
		return sh.afterCommit(quit)
	}
	r, err := sh.env.Manager.Commit(sh.cand, commit.Who{User: sh.sess.User, From: sh.sess.From, Comment: comment}, changes, confirm)
	if err != nil {
		return fmt.Errorf("commit failed: %w", err)
	}
	sh.base = sh.env.Manager.Running()
	if r.Confirmed {
		sh.printf("commit confirmed by this commit: the automatic rollback is cancelled\n")
	}
	if !r.Confirm.IsZero() {
		sh.printf("commit confirmed will be automatically rolled back at %s unless confirmed by 'commit'\n", r.Confirm.Format(time.TimeOnly))
	}
	for _, l := range planLines(sh.env.Manager.Running(), r.Changes, false) {
		sh.printf("%s\n", l)
	}
	sh.printf("commit complete\n")
	return sh.afterCommit(quit)
}

func sameConfig(a, b *config.Config) bool { return len(diff(flatten(a), flatten(b))) == 0 }

// Watch prints the notices every session should see at once (an
// automatic rollback) as they happen, until stop.
func (sh *Shell) Watch() (stop func()) {
	return sh.env.Manager.Watch(func(msg string) { fmt.Fprintf(sh.sess.Out, "\n[%s]\n", msg) })
}

func (sh *Shell) afterCommit(quit bool) error {
	if quit {
		sh.cand, sh.base = nil, nil
		sh.printf("Exiting configuration mode\n")
	}
	return nil
}

func (sh *Shell) rekey(args []token, end int) error {
	if len(args) != 1 {
		return &posError{end, "give one link name"}
	}
	if err := sh.env.Manager.Rekey(args[0].s); err != nil {
		return errAt(args[0], "%v", err)
	}
	sh.printf("rekey requested on link %s\n", args[0].s)
	return nil
}

func (sh *Shell) reboot(_ []token, _ int) error {
	if sh.env.Reboot == nil {
		return errors.New("not available here: this is not the appliance")
	}
	if !sh.confirm("Reboot the system? [yes,no] ") {
		sh.printf("reboot cancelled\n")
		return nil
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "request system reboot")
	sh.printf("Rebooting\n")
	return sh.env.Reboot()
}

func (sh *Shell) zeroize(_ []token, _ int) error {
	if sh.env.Zeroize == nil {
		return errors.New("not available here: this is not the appliance")
	}
	if !sh.confirm("Erase every key, user and the whole configuration, then reboot? [yes,no] ") {
		sh.printf("zeroize cancelled\n")
		return nil
	}
	sh.printf("Zeroizing and rebooting\n")
	return sh.env.Zeroize()
}

func (sh *Shell) confirm(prompt string) bool {
	if sh.sess.AskLine == nil {
		return false
	}
	a, err := sh.sess.AskLine(prompt)
	return err == nil && strings.TrimSpace(a) == "yes"
}

func (sh *Shell) showLog(args []token, _ int) error {
	switch {
	case len(args) == 0:
		if sh.env.Log == nil {
			return errors.New("not available here")
		}
		for _, l := range sh.env.Log(100) {
			sh.printf("%s\n", l)
		}
	case len(args) == 1 && strings.HasPrefix("audit", args[0].s):
		for _, l := range sh.env.Audit.Tail(100) {
			sh.printf("%s\n", l)
		}
	default:
		return errAt(args[0], "unexpected %q: want nothing or 'audit'", args[0].s)
	}
	return nil
}

func (sh *Shell) showSystem(_ []token, _ int) error {
	up := sh.env.Uptime
	if up == nil {
		up = systemUptime
	}
	sh.printf("Hostname: %s\nUptime: %s\n", sh.hostname(), up().Round(time.Second))
	if sh.env.Info != nil {
		for _, l := range sh.env.Info() {
			sh.printf("%s\n", l)
		}
	}
	if d := sh.env.Manager.Pending(); !d.IsZero() {
		sh.printf("Commit confirmed pending: rolls back at %s unless confirmed\n", d.Format(time.TimeOnly))
	}
	sh.printf("Commits kept for rollback:\n")
	if len(sh.env.Manager.History()) == 0 {
		sh.printf("  (none yet)\n")
	}
	for _, e := range sh.env.Manager.History() {
		sh.printf("  %2d  %s %s\n", e.N, e.Time.Format(time.DateTime), commitAuthor(e))
		if e.Comment != "" {
			sh.printf("      %s\n", e.Comment)
		}
	}
	return nil
}

// showNOC runs a view of the NOC services.
func showNOC(view func(io.Writer, noc.Status)) func(*Shell, []token, int) error {
	return func(sh *Shell, _ []token, _ int) error {
		if sh.env.NOC == nil {
			return errors.New("not available here")
		}
		view(sh.out, sh.env.NOC())
		return nil
	}
}

// commitAuthor says who made a stored commit and from where.
func commitAuthor(e store.Entry) string {
	switch {
	case e.User == "":
		return "(not committed from the CLI)"
	case e.From == "":
		return "by " + e.User
	}
	return "by " + e.User + " via " + e.From
}

func (sh *Shell) showInterfaces(_ []token, _ int) error {
	if sh.env.Ports != nil {
		sh.printf("Ports:\n")
		for _, p := range sh.env.Ports() {
			sh.printf("  %s\n", p)
		}
		sh.printf("\n")
	}
	show.Interfaces(sh.out, sh.env.Manager.Status())
	return nil
}

func (sh *Shell) ping(args []token, end int) error {
	if len(args) == 0 {
		return &posError{end, "incomplete: ping <address> link <link> source <address> [count N]"}
	}
	o := ping.Options{Count: 5}
	target, err := netip.ParseAddr(args[0].s)
	if err != nil || !target.Is4() {
		return errAt(args[0], "%q: want an IPv4 address", args[0].s)
	}
	o.Target = target
	err = options(args[1:], end, []string{"link", "source", "count"}, func(k string, v token) (err error) {
		switch k {
		case "link":
			for _, l := range sh.env.Manager.Running().Links {
				if l.Name == v.s {
					o.Port = l.Plain
				}
			}
			if o.Port == "" {
				return errAt(v, "no link %q", v.s)
			}
		case "source":
			if o.Src, err = netip.ParseAddr(v.s); err != nil || !o.Src.Is4() {
				return errAt(v, "%q: want an IPv4 address on the plaintext side's subnet", v.s)
			}
		case "count":
			o.Count, err = intOption(k, v, 1, 100)
		}
		return err
	})
	if err != nil {
		return err
	}
	if o.Port == "" || !o.Src.IsValid() {
		return &posError{end, "give link <link> and source <address>"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.Count+5)*time.Second)
	defer cancel()
	return ping.Run(ctx, sh.out, o)
}

// Heartbeat runs a silent operator session that prints the prompt and
// runs `show mka` every period, as an operator would, and marks beat each
// time that answered: the watchdog's proof that the management plane
// works. It runs until ctx ends.
func Heartbeat(ctx context.Context, env *Env, beat *health.Beat, every time.Duration) {
	sh := &Shell{env: env, sess: Session{User: "watchdog", Role: config.RoleOperator, Out: io.Discard}, out: io.Discard}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sh.Prompt()
		sh.Exec("show mka")
		beat.Mark(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
