package watcher

import (
	"container/heap"
	"context"
	"log/slog"
	"slices"
	"time"
)

// change is what the OS plumbing hands to the debouncer: one relative path that may have
// changed, or "everything may have changed".
type change struct {
	rel    string
	rescan bool
}

// aggregator holds paths until they are due. Its methods take the current time as an
// argument, so its rules can be tested with plain values; only its loop (run) reads the
// clock and uses timers, and is tested in a testing/synctest bubble.
//
// Invariants: no pending path is at or under another pending path (a directory stands for
// everything below it); a path is either pending (waiting to settle) or ready (due, waiting
// for the consumer), never both.
type aggregator struct {
	settle, maxWait time.Duration
	maxPending      int

	pending map[string]*pendingPath
	below   map[string]map[string]struct{} // directory → the pending paths strictly below it
	due     dueHeap
	gen     uint64

	ready  map[string]struct{}
	rescan bool

	batch      Batch // cached result of makeBatch, valid while !dirty
	batchDirty bool
}

type pendingPath struct {
	first, last time.Time
	gen         uint64 // identifies the one live heap entry for this path
}

// dueAt is when p is handed on: after settle of quiet, but never later than maxWait after
// its first event.
func (a *aggregator) dueAt(p *pendingPath) time.Time {
	t := p.last.Add(a.settle)
	if limit := p.first.Add(a.maxWait); limit.Before(t) {
		t = limit
	}
	return t
}

func newAggregator(settle, maxWait time.Duration, maxPending int) *aggregator {
	return &aggregator{
		settle:     settle,
		maxWait:    maxWait,
		maxPending: maxPending,
		pending:    make(map[string]*pendingPath),
		below:      make(map[string]map[string]struct{}),
		ready:      make(map[string]struct{}),
	}
}

// add records an event for rel at now. It reports whether the aggregator overflowed into a
// rescan because of it.
func (a *aggregator) add(rel string, now time.Time) (overflowed bool) {
	if a.rescan {
		return false // the rescan that is already queued covers it
	}
	// A ready path is handed on as soon as the consumer takes it, and the consumer looks at
	// the files then, so an event for it or below it needs no entry of its own.
	if a.hasSelfOrAncestor(a.ready, rel) {
		return false
	}
	if anc, ok := a.pendingSelfOrAncestor(rel); ok {
		a.pending[anc].last = now // quiet time counts for the whole subtree
		return false
	}
	p := &pendingPath{first: now, last: now}
	// A directory that arrives after paths below it replaces them, and inherits the
	// earliest first-event time so their maximum wait still holds.
	for q := range a.below[rel] {
		if qp := a.pending[q]; qp.first.Before(p.first) {
			p.first = qp.first
		}
		a.removePending(q) // deleting from the set being ranged over is allowed
	}
	a.gen++
	p.gen = a.gen
	a.pending[rel] = p
	forEachAncestor(rel, func(dir string) {
		set := a.below[dir]
		if set == nil {
			set = make(map[string]struct{})
			a.below[dir] = set
		}
		set[rel] = struct{}{}
	})
	heap.Push(&a.due, dueItem{at: a.dueAt(p), rel: rel, gen: p.gen})

	if len(a.pending)+len(a.ready) > a.maxPending {
		a.addRescan()
		return true
	}
	a.compactHeap()
	return false
}

// addRescan replaces everything held with a single rescan.
func (a *aggregator) addRescan() {
	clear(a.pending)
	clear(a.below)
	clear(a.ready)
	a.due = a.due[:0]
	a.rescan = true
	a.batchDirty = true
}

// advance moves every path that is due at now from pending to ready.
func (a *aggregator) advance(now time.Time) {
	for len(a.due) > 0 && !a.due[0].at.After(now) {
		it := heap.Pop(&a.due).(dueItem)
		p, ok := a.pending[it.rel]
		if !ok || p.gen != it.gen {
			continue // stale: the path was handed on or folded into a directory
		}
		// Due times only move later for a live entry, so the real one is re-queued.
		if at := a.dueAt(p); at.After(now) {
			heap.Push(&a.due, dueItem{at: at, rel: it.rel, gen: it.gen})
			continue
		}
		a.removePending(it.rel)
		a.ready[it.rel] = struct{}{}
		a.batchDirty = true
	}
}

// next returns when advance should next be called; ok is false if nothing is pending. The
// time may be early (a path had events since it was queued), never late.
func (a *aggregator) next() (at time.Time, ok bool) {
	if len(a.due) == 0 {
		return time.Time{}, false
	}
	return a.due[0].at, true
}

// outgoing returns the batch to hand on, if there is one. Paths are sorted, and a path
// below another path in the batch is left out.
func (a *aggregator) outgoing() (Batch, bool) {
	if !a.rescan && len(a.ready) == 0 {
		return Batch{}, false
	}
	if a.batchDirty {
		a.batch = a.makeBatch()
		a.batchDirty = false
	}
	return a.batch, true
}

func (a *aggregator) makeBatch() Batch {
	if a.rescan {
		return Batch{Rescan: true}
	}
	paths := make([]string, 0, len(a.ready))
	for rel := range a.ready {
		covered := false
		forEachAncestor(rel, func(dir string) {
			if _, ok := a.ready[dir]; ok {
				covered = true
			}
		})
		if !covered {
			paths = append(paths, rel)
		}
	}
	slices.Sort(paths)
	return Batch{Paths: paths}
}

// sent forgets what outgoing returned, after the consumer took it.
func (a *aggregator) sent() {
	clear(a.ready)
	a.rescan = false
	a.batch = Batch{}
	a.batchDirty = true
}

func (a *aggregator) removePending(rel string) {
	delete(a.pending, rel)
	forEachAncestor(rel, func(dir string) {
		set := a.below[dir]
		delete(set, rel)
		if len(set) == 0 {
			delete(a.below, dir)
		}
	})
}

func (a *aggregator) pendingSelfOrAncestor(rel string) (string, bool) {
	if _, ok := a.pending[rel]; ok {
		return rel, true
	}
	found, anc := false, ""
	forEachAncestor(rel, func(dir string) {
		if _, ok := a.pending[dir]; ok && !found {
			found, anc = true, dir
		}
	})
	return anc, found
}

func (a *aggregator) hasSelfOrAncestor(set map[string]struct{}, rel string) bool {
	if len(set) == 0 {
		return false
	}
	if _, ok := set[rel]; ok {
		return true
	}
	found := false
	forEachAncestor(rel, func(dir string) {
		if _, ok := set[dir]; ok {
			found = true
		}
	})
	return found
}

// compactHeap drops stale entries once they outnumber live ones, so a long burst of
// directory folding cannot grow the heap beyond a small multiple of the pending set.
func (a *aggregator) compactHeap() {
	if len(a.due) <= 4*len(a.pending)+64 {
		return
	}
	live := a.due[:0]
	for _, it := range a.due {
		if p, ok := a.pending[it.rel]; ok && p.gen == it.gen {
			live = append(live, it)
		}
	}
	a.due = live
	heap.Init(&a.due)
}

// forEachAncestor calls fn for every proper ancestor of rel, shortest first ("a", "a/b"
// for "a/b/c").
func forEachAncestor(rel string, fn func(dir string)) {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' {
			fn(rel[:i])
		}
	}
}

type dueItem struct {
	at  time.Time
	rel string
	gen uint64
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// run is the debounce loop: it takes changes from in and sends batches on out until ctx is
// done. It never blocks on out: while the consumer is busy, changes keep accumulating (and
// collapse into a rescan beyond maxPending).
func (a *aggregator) run(ctx context.Context, in <-chan change, out chan<- Batch, log *slog.Logger) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed time.Time // when timer fires; zero if stopped
	for {
		now := time.Now()
		a.advance(now)

		var sendC chan<- Batch
		b, ok := a.outgoing()
		if ok {
			sendC = out
		}

		var timerC <-chan time.Time
		if at, ok := a.next(); ok {
			if !at.Equal(armed) {
				timer.Reset(at.Sub(now))
				armed = at
			}
			timerC = timer.C
		} else if !armed.IsZero() {
			timer.Stop()
			armed = time.Time{}
		}

		select {
		case <-ctx.Done():
			return
		case c := <-in:
			if c.rescan {
				a.addRescan()
			} else if a.add(c.rel, time.Now()) {
				log.Warn("too many changed paths pending; asking for a full rescan",
					"max_pending", a.maxPending)
			}
		case <-timerC:
			armed = time.Time{}
		case sendC <- b:
			a.sent()
		}
	}
}
