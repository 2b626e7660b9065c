package access

import (
	"io"
	"sync"
	"time"
)

// Idle wraps a reader that ends (io.EOF) after d without input, calling
// onIdle once; d == 0 never ends. The wrapped reader's Read runs in a
// goroutine, so a blocked Read does not keep the timeout from firing.
// Close stops that goroutine once the wrapped reader returns; Interrupt
// ends the current and the next Read with io.EOF (a session ended from
// outside).
type Idle struct {
	ch   chan chunk
	done chan struct{}
	stop sync.Once

	mu        sync.Mutex
	d         time.Duration
	onIdle    func()
	interrupt chan struct{}

	buf []byte
	err error
}

type chunk struct {
	b   []byte
	err error
}

// NewIdle starts reading r.
func NewIdle(r io.Reader, d time.Duration, onIdle func()) *Idle {
	i := &Idle{ch: make(chan chunk), done: make(chan struct{}), d: d, onIdle: onIdle, interrupt: make(chan struct{})}
	go func() {
		defer close(i.ch)
		for {
			b := make([]byte, 1024)
			n, err := r.Read(b)
			select {
			case i.ch <- chunk{b[:n], err}:
			case <-i.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return i
}

// Close lets the reading goroutine end: it returns as soon as the
// wrapped reader does (the caller closes that).
func (i *Idle) Close() { i.stop.Do(func() { close(i.done) }) }

// Interrupt makes Read return io.EOF until SetTimeout is called again.
func (i *Idle) Interrupt() {
	i.mu.Lock()
	defer i.mu.Unlock()
	select {
	case <-i.interrupt:
	default:
		close(i.interrupt)
	}
}

// Read returns input, or io.EOF once idle or interrupted.
func (i *Idle) Read(p []byte) (int, error) {
	i.mu.Lock()
	d, interrupt := i.d, i.interrupt
	i.mu.Unlock()
	if len(i.buf) == 0 && i.err == nil {
		var timeout <-chan time.Time
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case c, ok := <-i.ch:
			if !ok {
				return 0, io.EOF
			}
			i.buf, i.err = c.b, c.err
		case <-interrupt:
			return 0, io.EOF
		case <-timeout:
			i.mu.Lock()
			f := i.onIdle
			i.onIdle = nil
			i.mu.Unlock()
			if f != nil {
				f()
			}
			return 0, io.EOF
		}
	}
	n := copy(p, i.buf)
	i.buf = i.buf[n:]
	if len(i.buf) == 0 && i.err != nil {
		err := i.err
		i.err = nil
		return n, err
	}
	return n, nil
}

// SetTimeout changes the idle time and what happens then, and clears an
// interrupt; the console keeps one Idle for its whole life and sets a
// timeout per session.
func (i *Idle) SetTimeout(d time.Duration, onIdle func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.d, i.onIdle = d, onIdle
	select {
	case <-i.interrupt:
		i.interrupt = make(chan struct{})
	default:
	}
}
