package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/secwire/secwire/firmware/config"
)

const passwdUsage = `usage: secwire passwd

Reads a password (twice, without echo, on a terminal; one line on a pipe)
and prints its bcrypt hash for a user's "password" in a config file:

  "users": [{"name": "admin", "role": "admin", "password": "$2a$10$..."}]`

// passwdCmd prints a password hash so a config can be prepared offline.
func passwdCmd(args []string, in *os.File, out io.Writer) error {
	if len(args) != 0 {
		return errors.New(passwdUsage)
	}
	var pw string
	if term.IsTerminal(int(in.Fd())) {
		a, err := readNoEcho(in, "Password: ")
		if err != nil {
			return err
		}
		b, err := readNoEcho(in, "Retype password: ")
		if err != nil {
			return err
		}
		if a != b {
			return errors.New("the passwords differ")
		}
		pw = a
	} else {
		l, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && l == "" {
			return fmt.Errorf("no password on standard input")
		}
		pw = strings.TrimRight(l, "\r\n")
	}
	h, err := config.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("password %v", err)
	}
	fmt.Fprintln(out, h)
	return nil
}

func readNoEcho(in *os.File, prompt string) (string, error) {
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(os.Stderr)
	return string(b), err
}
