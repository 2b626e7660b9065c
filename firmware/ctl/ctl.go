// Package ctl is the daemon's local management socket: a Unix socket,
// owner-only, that serves the supervisor's status as JSON over HTTP. The
// `secwire show` commands are its client.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/secwire/secwire/firmware/supervisor"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/secwire/secwire.sock"

// Handlers are what the socket serves.
type Handlers struct {
	Status func() supervisor.Status
	// Rekey asks a link's key server for a new SAK.
	Rekey func(link string) error
	// ClearCounters makes `show counters` count from now.
	ClearCounters func()
	// Get serves more status as JSON at GET /NAME (the NOC services).
	Get map[string]func() any
}

// Listen takes the management socket at path. A socket another daemon
// still answers on is refused (two daemons on one socket would make
// `secwire show` talk to the wrong one); a stale one is replaced.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("management socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another secwire daemon is running on management socket %s: stop it, or give this one its own --socket PATH and --state DIR", path)
	}
	os.Remove(path) // a stale socket from a killed daemon
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("management socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("management socket: %w", err)
	}
	return ln, nil
}

// Serve answers GET /status and POST /rekey?link=NAME on ln (from
// Listen) until ctx is done, then removes the socket.
func Serve(ctx context.Context, ln net.Listener, h Handlers) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.Status())
	})
	mux.HandleFunc("POST /rekey", func(w http.ResponseWriter, r *http.Request) {
		if err := h.Rekey(r.URL.Query().Get("link")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	mux.HandleFunc("POST /clear-counters", func(w http.ResponseWriter, r *http.Request) {
		if h.ClearCounters == nil {
			http.Error(w, "not available", http.StatusNotImplemented)
			return
		}
		h.ClearCounters()
	})
	for name, f := range h.Get {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(f())
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close() // closing the listener removes the socket file
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// noDaemon says, in operator terms, why nobody answered on path.
func noDaemon(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no secwire daemon is running: %s does not exist (start one with 'secwire daemon --config FILE', or name its socket with --socket PATH)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no secwire daemon answers on %s (it stopped without removing the socket; start it again)", path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: permission denied (the management socket is for root)", path)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	return fmt.Errorf("cannot reach the secwire daemon on %s: %v", path, err)
}

func client(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// Rekey asks the daemon at path for a new SAK on link.
func Rekey(path, link string) error {
	resp, err := client(path).Post("http://secwire/rekey?link="+url.QueryEscape(link), "", nil)
	if err != nil {
		return noDaemon(path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return errors.New(strings.TrimSpace(string(b)))
	}
	return nil
}

// Status asks the daemon at path for its status.
func Status(path string) (supervisor.Status, error) {
	var st supervisor.Status
	resp, err := client(path).Get("http://secwire/status")
	if err != nil {
		return st, noDaemon(path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("daemon: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// ClearCounters asks the daemon at path to clear its counters.
func ClearCounters(path string) error {
	resp, err := client(path).Post("http://secwire/clear-counters", "", nil)
	if err != nil {
		return fmt.Errorf("no secwire daemon answers on %s (is it running? --socket names another): %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon: %s", resp.Status)
	}
	return nil
}

// Get reads the status the daemon at path serves at /name into v.
func Get(path, name string, v any) error {
	resp, err := client(path).Get("http://secwire/" + name)
	if err != nil {
		return fmt.Errorf("no secwire daemon answers on %s (is it running? --socket names another): %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon: %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
