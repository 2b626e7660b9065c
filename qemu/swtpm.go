package qemu

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// SWTPM is a software TPM 2.0 (Debian's swtpm) for one VM boot; its state
// directory outlives it, so the next boot of the same VM finds the same
// TPM, as a box finds its own.
type SWTPM struct {
	Socket string
	cmd    *exec.Cmd
}

// StartSWTPM starts swtpm with its state in stateDir, its messages to
// log (the VM's console log). It ends when the VM disconnects
// (--terminate) or ctx ends.
func StartSWTPM(ctx context.Context, stateDir string, log io.Writer) (*SWTPM, error) {
	if _, err := exec.LookPath("swtpm"); err != nil {
		return nil, fmt.Errorf("swtpm missing: install Debian's swtpm and swtpm-tools (make deps)")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(stateDir, "swtpm.sock")
	os.Remove(sock)
	cmd := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--terminate",
		"--tpmstate", "dir="+stateDir, "--ctrl", "type=unixio,path="+sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("swtpm: %w", err)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			go cmd.Wait()
			return &SWTPM{Socket: sock, cmd: cmd}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("swtpm did not create %s", sock)
}

// Stop ends swtpm.
func (s *SWTPM) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
}
