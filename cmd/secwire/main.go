// Command secwire is the appliance firmware and its offline tools in one
// binary: `secwire boot` is the image's uinit, the other subcommands run on
// any Linux host.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secwire/secwire/firmware/boot"
	"github.com/secwire/secwire/mgmt/appliance"
)

// version is set by the build (-ldflags -X main.version=...).
var version = "dev"

const usage = `usage: secwire COMMAND [ARGS]

commands:
  boot                  run the appliance firmware (the image's uinit)
  daemon --config FILE [--ssh ADDR]  run the links of a config file on this host;
                        --ssh serves the management CLI (commit writes FILE)
  config check FILE     check a config file, listing every problem
  show interfaces|macsec|mka|counters  status of the running daemon
  show system time|syslog|metrics  clock sync, syslog collectors, metrics endpoint
  clear counters        make 'show counters' count from now
  request mka rekey LINK  ask the link's key server for a new SAK
  frame protect|validate  protect or validate one frame (see 'secwire frame -h')
  pcap decrypt          decrypt the MACsec frames of a capture (see 'secwire pcap -h')
  passwd                print a password hash for a config file's users
  version               print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	usages := map[string]string{"daemon": daemonUsage, "config": configUsage, "show": showUsage, "request": requestUsage,
		"frame": frameUsage, "pcap": pcapUsage, "passwd": passwdUsage}
	if u, ok := usages[os.Args[1]]; ok && wantsHelp(os.Args[2:]) {
		fmt.Println(u)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "boot":
		appliance.Version = version
		err = boot.Run(ctx, stdio{}, boot.Options{Manage: appliance.Run})
	case "passwd":
		err = passwdCmd(os.Args[2:], os.Stdin, os.Stdout)
	case "frame":
		err = frameCmd(os.Args[2:], os.Stdout)
	case "daemon":
		err = daemonCmd(ctx, os.Args[2:])
	case "config":
		err = configCmd(os.Args[2:], os.Stdout)
	case "show":
		err = showCmd(os.Args[2:], os.Stdout)
	case "clear":
		err = clearCmd(os.Args[2:])
	case "request":
		err = requestCmd(os.Args[2:])
	case "pcap":
		err = pcapCmd(os.Args[2:], os.Stderr)
	case "version":
		fmt.Println("secwire", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "secwire: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	var help helpRequested
	if errors.As(err, &help) {
		fmt.Println(help.usage)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "secwire %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
