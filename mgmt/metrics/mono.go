package metrics

import (
	"maps"
	"slices"
	"sync"
)

// monotonic turns counters that restart (a SecY rebuilt at a commit, an
// SC deleted when its peer leaves, an SA replaced at every rekey) into
// counters that never go back. Each exported series is the sum of its
// parts (the components that feed it: one SecY, or each SA of an SC);
// a part whose value falls has restarted and keeps what it had counted,
// and a part that disappears leaves its count in the series. Increments
// a part made after the last scrape before it vanished are not seen.
type monotonic struct {
	mu      sync.Mutex
	parts   map[partKey]*part
	retired map[seriesKey]uint64
}

// seriesKey names one exported series: metric name and label values.
type seriesKey struct {
	name   string
	labels string // label values joined by \x00
}

type partKey struct {
	series seriesKey
	part   string // which component: "secy", "sa 1 <key>", ...
}

type part struct {
	base, last uint64
	seen       bool // in the current scrape
}

func newMonotonic() *monotonic {
	return &monotonic{parts: map[partKey]*part{}, retired: map[seriesKey]uint64{}}
}

// scrape collects one round of observations and returns every series'
// value: observe is called with the round's observe function.
func (m *monotonic) scrape(observe func(add func(series seriesKey, part string, v uint64))) map[seriesKey]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.parts {
		p.seen = false
	}
	observe(func(s seriesKey, name string, v uint64) {
		k := partKey{s, name}
		p := m.parts[k]
		if p == nil {
			p = &part{}
			m.parts[k] = p
		}
		if v < p.last {
			p.base += p.last // restarted
		}
		p.last, p.seen = v, true
	})
	out := map[seriesKey]uint64{}
	for _, k := range slices.Collect(maps.Keys(m.parts)) {
		p := m.parts[k]
		if !p.seen {
			m.retired[k.series] += p.base + p.last
			delete(m.parts, k)
			continue
		}
		out[k.series] += p.base + p.last
	}
	for s, v := range m.retired {
		out[s] += v
	}
	return out
}
