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
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secwire/secwire/firmware/health"
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
	// Health says why the daemon is not making progress, nil when it is.
	Health func(now time.Time) error
	// StallMKA hangs a link's key agreement (fault injection). When it is
	// set the socket also serves goroutine stacks: both only with test
	// hooks on.
	StallMKA func(link string, d time.Duration) error
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

// Serve answers on ln (from Listen) until ctx is done, then removes the
// socket:
//
//	GET  /status                         the links' status (JSON)
//	POST /rekey?link=NAME                a new SAK
//	POST /clear-counters
//	GET  /NAME                           Handlers.Get
//	GET  /health                         200 "ok", or 503 and what is wedged
//	GET  /debug/runtime[?free=1]         goroutines, threads, RSS (JSON);
//	                                     free=1 returns unused heap to the OS first
//	POST /test/stall-mka?link=&seconds=  test hooks only
//	GET  /debug/stacks                   test hooks only
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
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if h.Health != nil {
			if err := h.Health(time.Now()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /debug/runtime", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("free") == "1" {
			debug.FreeOSMemory() // what is left is what is in use
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(health.ReadRuntime())
	})
	if h.StallMKA != nil {
		mux.HandleFunc("POST /test/stall-mka", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			sec, err := strconv.Atoi(q.Get("seconds"))
			if err != nil || sec < 1 || sec > 3600 {
				http.Error(w, "seconds: want 1..3600", http.StatusBadRequest)
				return
			}
			if err := h.StallMKA(q.Get("link"), time.Duration(sec)*time.Second); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
			}
		})
		mux.HandleFunc("GET /debug/stacks", func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 1<<20)
			for {
				n := runtime.Stack(buf, true)
				if n < len(buf) {
					w.Write(buf[:n])
					return
				}
				buf = make([]byte, 2*len(buf))
			}
		})
	}
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

// client talks to the socket at path, one connection per request: an
// idle kept-alive connection would hold a goroutine in the daemon.
func client(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// Rekey asks the daemon at path for a new SAK on link.
func Rekey(path, link string) error {
	_, err := call(path, http.MethodPost, "/rekey?link="+url.QueryEscape(link))
	return err
}

// Status asks the daemon at path for its status.
func Status(path string) (supervisor.Status, error) {
	var st supervisor.Status
	return st, Get(path, "status", &st)
}

// ClearCounters asks the daemon at path to clear its counters.
func ClearCounters(path string) error {
	_, err := call(path, http.MethodPost, "/clear-counters")
	return err
}

// Get reads the status the daemon at path serves at /name into v.
func Get(path, name string, v any) error {
	b, err := get(path, "/"+name)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// get fetches a path from the daemon.
func get(sock, p string) ([]byte, error) { return call(sock, http.MethodGet, p) }

// call sends one request to the daemon and returns the body of a 200
// answer, or an error that says why: no daemon, or the daemon's own
// message (its status line when it sent none).
func call(sock, method, p string) ([]byte, error) {
	req, err := http.NewRequest(method, "http://secwire"+p, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client(sock).Do(req)
	if err != nil {
		return nil, noDaemon(sock, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = "daemon: " + resp.Status
		}
		return b, errors.New(msg)
	}
	return b, nil
}

// Health asks the daemon at path whether it is making progress: nil, or
// what is wedged.
func Health(path string) error {
	_, err := get(path, "/health")
	return err
}

// ReadRuntime asks the daemon at path for its goroutines, threads and RSS;
// with free, after it returned its unused heap to the OS (a leak check
// then sees what is in use, not what the GC has yet to give back).
func ReadRuntime(path string, free bool) (health.Runtime, error) {
	var r health.Runtime
	q := ""
	if free {
		q = "?free=1"
	}
	b, err := get(path, "/debug/runtime"+q)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

// Stacks is every goroutine's stack in the daemon at path (test hooks).
func Stacks(path string) (string, error) {
	b, err := get(path, "/debug/stacks")
	return string(b), err
}

// StallMKA hangs link's key agreement for d in the daemon at path (test
// hooks).
func StallMKA(path, link string, d time.Duration) error {
	_, err := call(path, http.MethodPost, fmt.Sprintf("/test/stall-mka?link=%s&seconds=%d", url.QueryEscape(link), int(d/time.Second)))
	return err
}
