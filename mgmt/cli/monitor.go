package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/secwire/secwire/firmware/commit"
	"github.com/secwire/secwire/mgmt/monitor"
)

func monitorWords(sh *Shell, args []token) []cand {
	if len(args) == 0 {
		return []cand{{"interface", "The port to watch"}}
	}
	if len(args) == 1 {
		var c []cand
		for _, l := range sh.env.Manager.Running().Links {
			c = append(c, cand{l.Plain, "link " + l.Name + " plaintext port"}, cand{l.Line, "link " + l.Name + " line port"})
		}
		return c
	}
	return []cand{{"count", "Stop after N frames (default 20)"}, {"seconds", "Stop after N seconds (default 30)"},
		{"write-file", "Also write the frames to a pcap file"}}
}

// monitor runs `monitor traffic interface PORT [count N] [seconds N]
// [write-file NAME]`.
func (sh *Shell) monitor(args []token, end int) error {
	if len(args) < 2 || !strings.HasPrefix("interface", args[0].s) {
		return &posError{end, "incomplete: monitor traffic interface <port> [count N] [seconds N] [write-file NAME]"}
	}
	o := monitor.Options{Port: args[1].s, Count: 20, Max: 30 * time.Second}
	for i := 2; i < len(args); i += 2 {
		k, err := match(args[i], []string{"count", "seconds", "write-file"}, "option")
		if err != nil {
			return err
		}
		if i+1 >= len(args) {
			return &posError{end, "missing value after " + k}
		}
		v := args[i+1]
		switch k {
		case "count":
			n, err := strconv.Atoi(v.s)
			if err != nil || n < 1 || n > 100000 {
				return errAt(v, "%q: want 1..100000", v.s)
			}
			o.Count = n
		case "seconds":
			n, err := strconv.Atoi(v.s)
			if err != nil || n < 1 || n > 3600 {
				return errAt(v, "%q: want 1..3600", v.s)
			}
			o.Max = time.Duration(n) * time.Second
		case "write-file":
			p, err := sh.filePath(v)
			if err != nil {
				return err
			}
			o.File = p
		}
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "monitor traffic interface "+o.Port)
	release := sh.env.Manager.Monitor(o.Port)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), o.Max+time.Second)
	defer cancel()
	_, err := monitor.Run(ctx, sh.out, o)
	return err
}

// filePath is where a file named by the user goes: a plain name inside
// Env.FileDir.
func (sh *Shell) filePath(name token) (string, error) {
	if sh.env.FileDir == "" {
		return "", errAt(name, "this box keeps no files; leave out the file")
	}
	if name.s == "" || strings.ContainsAny(name.s, "/\\") || strings.HasPrefix(name.s, ".") {
		return "", errAt(name, "%q: give a plain file name (it goes into %s)", name.s, sh.env.FileDir)
	}
	if err := os.MkdirAll(sh.env.FileDir, 0o700); err != nil {
		return "", errors.New("cannot make " + sh.env.FileDir + ": " + err.Error())
	}
	return filepath.Join(sh.env.FileDir, name.s), nil
}
