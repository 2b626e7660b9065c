package drivers

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Board is a board definition from board/<name>.json: which NIC plays which
// role, the serial console, the watchdog and the modules to load.
type Board struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Console     string      `json:"console"`  // kernel console=, e.g. ttyS0,115200
	Watchdog    *Watchdog   `json:"watchdog"` // nil when the board has none
	Modules     []string    `json:"modules"`
	Ports       []BoardPort `json:"ports"`
}

// Watchdog is the board's hardware watchdog.
type Watchdog struct {
	Module   string `json:"module"`
	Device   string `json:"device"`
	TimeoutS int    `json:"timeout_s"`
}

// BoardPort says how to find one port. Exactly one of PCI, MAC or Order
// selects the NIC; Driver narrows Order to one driver's ports.
type BoardPort struct {
	Role   string `json:"role"` // plaintext, line or management
	PCI    string `json:"pci,omitempty"`
	MAC    string `json:"mac,omitempty"`
	Driver string `json:"driver,omitempty"`
	Order  *int   `json:"order,omitempty"` // n-th matching port in PCI address order
}

func (bp BoardPort) String() string {
	switch {
	case bp.PCI != "":
		return fmt.Sprintf("%s port at PCI %s", bp.Role, bp.PCI)
	case bp.MAC != "":
		return fmt.Sprintf("%s port with MAC %s", bp.Role, bp.MAC)
	case bp.Driver != "":
		return fmt.Sprintf("%s port: %s port number %d", bp.Role, bp.Driver, *bp.Order)
	}
	return fmt.Sprintf("%s port: Ethernet port number %d", bp.Role, *bp.Order)
}

// LoadBoard reads and checks a board file.
func LoadBoard(path string) (*Board, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var bd Board
	if err := json.Unmarshal(b, &bd); err != nil {
		return nil, fmt.Errorf("board %s: %w", path, err)
	}
	return &bd, bd.Check()
}

// Check reports the first problem in the board definition.
func (b *Board) Check() error {
	roles := map[string]int{}
	for i, p := range b.Ports {
		n := 0
		for _, set := range []bool{p.PCI != "", p.MAC != "", p.Order != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("board %s: ports[%d]: give exactly one of pci, mac or order", b.Name, i)
		}
		if p.Role != "plaintext" && p.Role != "line" && p.Role != "management" {
			return fmt.Errorf("board %s: ports[%d].role %q: want plaintext, line or management", b.Name, i, p.Role)
		}
		roles[p.Role]++
	}
	if roles["plaintext"] != 1 || roles["line"] != 1 {
		return fmt.Errorf("board %s: needs exactly one plaintext and one line port", b.Name)
	}
	if roles["management"] > 1 {
		return fmt.Errorf("board %s: at most one management port", b.Name)
	}
	return nil
}

// Assign gives the board's roles to inventory ports. It returns the ports
// with roles set and, for each board port it could not find, a message that
// names the board entry.
func (b *Board) Assign(ports []Port) ([]Port, []string) {
	var missing []string
	for _, bp := range b.Ports {
		idx := -1
		n := 0
		for i, p := range ports {
			switch {
			case bp.PCI != "" && p.PCI == bp.PCI,
				bp.MAC != "" && strings.EqualFold(p.MAC, bp.MAC):
				idx = i
			case bp.Order != nil && (bp.Driver == "" || bp.Driver == p.Driver):
				if n == *bp.Order {
					idx = i
				}
				n++
			}
			if idx >= 0 {
				break
			}
		}
		if idx < 0 || ports[idx].Role != "" {
			missing = append(missing, fmt.Sprintf("board %s: %s not found", b.Name, bp))
			continue
		}
		ports[idx].Role = bp.Role
	}
	return ports, missing
}

// ConsoleArg is the kernel command line's console= for the board.
func (b *Board) ConsoleArg() string {
	if b.Console == "" {
		return "console=ttyS0,115200"
	}
	return "console=" + b.Console
}
