// Package ctl is the daemon's local management socket: a Unix socket,
// owner-only, that serves the supervisor's status as JSON over HTTP. The
// `secwire show` commands are its client.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/secwire/secwire/firmware/supervisor"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/secwire/secwire.sock"

// Serve answers GET /status on the socket at path until ctx is done.
func Serve(ctx context.Context, path string, status func() supervisor.Status) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	os.Remove(path) // a stale socket from a killed daemon
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("management socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		os.Remove(path)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Status asks the daemon at path for its status.
func Status(path string) (supervisor.Status, error) {
	var st supervisor.Status
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	resp, err := c.Get("http://secwire/status")
	if err != nil {
		return st, fmt.Errorf("no secwire daemon answers on %s (is it running? --socket names another): %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("daemon: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
