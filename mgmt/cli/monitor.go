package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	err := options(args[2:], end, []string{"count", "seconds", "write-file"}, func(k string, v token) (err error) {
		switch k {
		case "count":
			o.Count, err = intOption(k, v, 1, 100000)
		case "seconds":
			var n int
			n, err = intOption(k, v, 1, 3600)
			o.Max = time.Duration(n) * time.Second
		case "write-file":
			o.File, err = sh.filePath(v)
		}
		return err
	})
	if err != nil {
		return err
	}
	sh.env.Audit.Record(commit.Who{User: sh.sess.User, From: sh.sess.From}, "monitor traffic interface "+o.Port)
	release := sh.env.Manager.Monitor(o.Port)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), o.Max+time.Second)
	defer cancel()
	_, err = monitor.Run(ctx, sh.out, o)
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
