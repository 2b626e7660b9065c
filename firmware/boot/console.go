package boot

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secwire/secwire/drivers"
	"github.com/secwire/secwire/firmware/store"
)

// Prompt is the placeholder management prompt.
const Prompt = "secwire> "

// Console is a PLACEHOLDER for the management CLI (its own issue): a few
// commands to inspect the box and to prove that the config partition keeps
// what is written to it. It offers no shell and no way to change keys.
func Console(ctx context.Context, rw io.ReadWriter, board *drivers.Board) error {
	fmt.Fprintln(rw, "secwire: management CLI not implemented yet: PLACEHOLDER prompt. Type 'help'.")
	in := bufio.NewScanner(rw)
	for {
		fmt.Fprint(rw, Prompt)
		if !in.Scan() {
			// Console closed: keep the appliance running, never exit to a shell.
			<-ctx.Done()
			return ctx.Err()
		}
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 0:
		case f[0] == "help":
			fmt.Fprintln(rw, "show interfaces | show config | set hostname NAME | reboot")
		case len(f) == 2 && f[0] == "show" && f[1] == "interfaces":
			ports, missing := board.Assign(mustInventory())
			for _, p := range ports {
				fmt.Fprintf(rw, "  %s\n", p)
			}
			for _, m := range missing {
				fmt.Fprintf(rw, "  ERROR: %s\n", m)
			}
		case len(f) == 2 && f[0] == "show" && f[1] == "config":
			b, err := os.ReadFile(ConfigFile)
			if err != nil {
				fmt.Fprintf(rw, "no stored configuration (%v)\n", err)
			} else {
				fmt.Fprintf(rw, "%s\n", b)
			}
		case len(f) == 3 && f[0] == "set" && f[1] == "hostname":
			b, _ := json.Marshal(map[string]any{"system": map[string]string{"hostname": f[2]}})
			if err := store.WriteAtomic(ConfigFile, b, 0o600); err != nil {
				fmt.Fprintf(rw, "error: %v\n", err)
			} else {
				fmt.Fprintln(rw, "stored")
			}
		case f[0] == "reboot":
			fmt.Fprintln(rw, "rebooting")
			unix.Sync()
			_ = unix.Unmount(ConfigMount, 0)
			time.Sleep(100 * time.Millisecond)
			if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
				fmt.Fprintf(rw, "error: reboot: %v\n", err)
			}
		default:
			fmt.Fprintf(rw, "error: unknown command %q; type 'help'\n", f[0])
		}
	}
}

func mustInventory() []drivers.Port {
	p, _ := drivers.Inventory("/sys")
	return p
}
