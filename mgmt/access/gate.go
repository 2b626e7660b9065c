package access

import (
	"errors"
	"sync"
	"time"
)

// ErrBusy is a login that was not checked: too many others wait.
var ErrBusy = errors.New("too many logins in progress: try again shortly")

// Gate runs the password checks (bcrypt, about 50-100 ms of CPU each)
// one at a time, and after each one pauses so that checks use at most
// Share of one CPU: a flood of wrong passwords cannot take CPU from the
// datapath. Waiting checks are served best score first (Limiter.Score:
// a known good address first, then by fewest failures), so an
// administrator gets in during a flood; among equals the newest goes
// first (under overload the oldest have most likely given up). At most
// Queue checks wait; a newcomer no worse than the worst waiting pushes
// out that one (the oldest among equals), which fails with ErrBusy.
type Gate struct {
	Queue   int           // default 8
	Share   float64       // default 0.05
	MaxWait time.Duration // default 10 s; longer waits fail with ErrBusy

	mu       sync.Mutex
	waiting  []*waiter
	busy     bool
	nextFree time.Time
	timer    *time.Timer
	seq      uint64
}

// maxPause caps the pause after a check.
const maxPause = 2 * time.Second

type waiter struct {
	score int
	seq   uint64
	ready chan error // nil: go ahead; ErrBusy: pushed out
}

func (g *Gate) defaults() (queue int, share float64, wait time.Duration) {
	queue, share, wait = g.Queue, g.Share, g.MaxWait
	if queue <= 0 {
		queue = 8
	}
	if share <= 0 || share > 1 {
		share = 0.05
	}
	if wait <= 0 {
		wait = 10 * time.Second
	}
	return
}

// Do runs check when its turn comes, and returns its result; ErrBusy
// when it was not run.
func (g *Gate) Do(score int, check func() bool) (bool, error) {
	queue, share, maxWait := g.defaults()
	w := &waiter{score: score, ready: make(chan error, 1)}
	g.mu.Lock()
	g.seq++
	w.seq = g.seq
	if len(g.waiting) >= queue {
		worst := g.worst()
		if g.waiting[worst].score < w.score {
			g.mu.Unlock()
			return false, ErrBusy
		}
		g.waiting[worst].ready <- ErrBusy
		g.waiting = append(g.waiting[:worst], g.waiting[worst+1:]...)
	}
	g.waiting = append(g.waiting, w)
	g.dispatch()
	g.mu.Unlock()

	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case err := <-w.ready:
		if err != nil {
			return false, err
		}
	case <-t.C:
		g.mu.Lock()
		for i, x := range g.waiting {
			if x == w {
				g.waiting = append(g.waiting[:i], g.waiting[i+1:]...)
				g.mu.Unlock()
				return false, ErrBusy
			}
		}
		g.mu.Unlock()
		if err := <-w.ready; err != nil { // dispatched meanwhile
			return false, err
		}
	}
	start := time.Now()
	ok := check()
	took := time.Since(start)
	g.mu.Lock()
	g.busy = false
	// The pause is capped so that on a slow or loaded box a login does
	// not wait for long: there, checks may take a bit more than Share.
	g.nextFree = time.Now().Add(min(time.Duration(float64(took)*(1/share-1)), maxPause))
	g.dispatch()
	g.mu.Unlock()
	return ok, nil
}

// worst is the waiter to push out: the highest score, the oldest among
// equals.
func (g *Gate) worst() int {
	w := 0
	for i, x := range g.waiting {
		if x.score > g.waiting[w].score || x.score == g.waiting[w].score && x.seq < g.waiting[w].seq {
			w = i
		}
	}
	return w
}

// dispatch starts the best waiting check when the gate is free and the
// pause is over. Called with mu held.
func (g *Gate) dispatch() {
	if g.busy || len(g.waiting) == 0 {
		return
	}
	best := 0 // the lowest score, the newest among equals
	for i, x := range g.waiting {
		if x.score < g.waiting[best].score || x.score == g.waiting[best].score && x.seq > g.waiting[best].seq {
			best = i
		}
	}
	// A known good address (score < 0) does not wait out the pause.
	if d := time.Until(g.nextFree); d > 0 && g.waiting[best].score >= 0 {
		if g.timer == nil {
			g.timer = time.AfterFunc(d, func() {
				g.mu.Lock()
				g.timer = nil
				g.dispatch()
				g.mu.Unlock()
			})
		}
		return
	}
	w := g.waiting[best]
	g.waiting = append(g.waiting[:best], g.waiting[best+1:]...)
	g.busy = true
	w.ready <- nil
}
