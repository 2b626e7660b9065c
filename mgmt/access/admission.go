package access

import "sync"

// Admission caps the connections that have not logged in yet: at most
// Max in all and PerSource from one address, so a flood of handshakes
// cannot exhaust memory or CPU. When the table is full, a newcomer from
// a source with a better score (Limiter.Rank: a known good address, or
// fewer recent failures) takes the place of the oldest connection of the
// worst source, which is dropped; otherwise the newcomer is refused. An
// administrator thus gets a slot even while attackers hold them all.
type Admission struct {
	Max       int              // default 32
	PerSource int              // default 8
	Score     func(string) int // nil: every source scores 0

	mu    sync.Mutex
	seq   uint64
	conns map[uint64]*pending
	bySrc map[string]int
}

type pending struct {
	src  string
	drop func()
}

// Admit records a connection from src that is logging in. drop (must not
// block) closes it if a better newcomer needs its place. done is called
// once the login succeeded or the connection ended.
func (a *Admission) Admit(src string, drop func()) (done func(), ok bool) {
	max, per := a.Max, a.PerSource
	if max <= 0 {
		max = 32
	}
	if per <= 0 {
		per = 8
	}
	score := func(s string) int {
		if a.Score == nil {
			return 0
		}
		return a.Score(s)
	}
	mine := score(src)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conns == nil {
		a.conns, a.bySrc = map[uint64]*pending{}, map[string]int{}
	}
	if a.bySrc[src] >= per {
		return nil, false
	}
	if len(a.conns) >= max {
		victim, worst := uint64(0), -1
		for id, p := range a.conns {
			if s := score(p.src); s > worst || s == worst && id < victim {
				victim, worst = id, s
			}
		}
		if worst <= mine {
			return nil, false
		}
		p := a.conns[victim]
		a.remove(victim)
		p.drop()
	}
	a.seq++
	id := a.seq
	a.conns[id] = &pending{src: src, drop: drop}
	a.bySrc[src]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.remove(id)
		})
	}, true
}

func (a *Admission) remove(id uint64) {
	p, ok := a.conns[id]
	if !ok {
		return
	}
	delete(a.conns, id)
	if a.bySrc[p.src]--; a.bySrc[p.src] <= 0 {
		delete(a.bySrc, p.src)
	}
}

// Len is the number of connections logging in.
func (a *Admission) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.conns)
}
