package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// VM is a running QEMU guest whose serial console is a pipe.
type VM struct {
	Name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	mu   sync.Mutex
	out  bytes.Buffer // everything the console printed
	pos  int          // where the next Expect starts reading
	more chan struct{}
	done chan struct{}
	err  error
	log  io.Writer
}

// Start boots a VM. The console output is copied to log (nil: discarded).
func Start(ctx context.Context, name string, s Spec, log io.Writer) (*VM, error) {
	s.SerialArgs = []string{"-serial", "stdio", "-monitor", "none"}
	args, err := s.Args()
	if err != nil {
		return nil, err
	}
	return StartCommand(ctx, name, exec.Command("qemu-system-x86_64", args...), log)
}

// StartCommand runs cmd, a QEMU or something that starts one with its
// serial console on standard input and output (such as make qemu), in
// its own process group; Stop and the end of ctx kill the whole group.
func StartCommand(ctx context.Context, name string, cmd *exec.Cmd, log io.Writer) (*VM, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if log == nil {
		log = io.Discard
	}
	vm := &VM{Name: name, cmd: cmd, in: in, more: make(chan struct{}, 1), done: make(chan struct{}), log: log}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				vm.mu.Lock()
				vm.out.Write(buf[:n])
				vm.mu.Unlock()
				vm.log.Write(buf[:n])
				select {
				case vm.more <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		vm.err = cmd.Wait()
		pw.Close()
		close(vm.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.kill()
		case <-vm.done:
		}
	}()
	return vm, nil
}

// Expect waits until the console prints something matching re after the
// previous match, and returns the match. It fails on timeout or VM exit.
func (vm *VM) Expect(re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		vm.mu.Lock()
		b := vm.out.Bytes()[vm.pos:]
		if loc := re.FindIndex(b); loc != nil {
			m := string(b[loc[0]:loc[1]])
			vm.pos += loc[1]
			vm.mu.Unlock()
			return m, nil
		}
		vm.mu.Unlock()
		select {
		case <-vm.more:
		case <-deadline:
			return "", fmt.Errorf("%s: %q not seen within %v; console tail:\n%s", vm.Name, re, timeout, vm.tail(2000))
		case <-vm.done:
			// Drain what the reader still holds before giving up.
			time.Sleep(50 * time.Millisecond)
			vm.mu.Lock()
			found := re.Match(vm.out.Bytes()[vm.pos:])
			vm.mu.Unlock()
			if !found {
				return "", fmt.Errorf("%s: qemu exited (%v) before %q; console tail:\n%s", vm.Name, vm.err, re, vm.tail(2000))
			}
		}
	}
}

// ExpectString is Expect for a literal string.
func (vm *VM) ExpectString(s string, timeout time.Duration) error {
	_, err := vm.Expect(regexp.MustCompile(regexp.QuoteMeta(s)), timeout)
	return err
}

// Send types a line on the console.
func (vm *VM) Send(line string) error {
	_, err := io.WriteString(vm.in, line+"\r")
	return err
}

// Output is everything the console printed so far.
func (vm *VM) Output() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.out.String()
}

func (vm *VM) tail(n int) string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	b := vm.out.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop kills the VM (its whole process group) and waits for it.
func (vm *VM) Stop() {
	vm.kill()
	<-vm.done
}

func (vm *VM) kill() {
	_ = syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
}

// PrivateCopy copies a file (a disk image or OVMF vars) into dir so that a
// VM can write it without touching the original. Runs of zeros stay holes,
// so a copy of a mostly empty disk image costs little space.
func PrivateCopy(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if bytes.Count(buf[:n], []byte{0}) == n {
				_, err = out.Seek(int64(n), io.SeekCurrent)
			} else {
				_, err = out.Write(buf[:n])
			}
			if err != nil {
				out.Close()
				return "", err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return "", rerr
		}
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}
