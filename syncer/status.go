package syncer

import (
	"cmp"
	"slices"
	"time"
)

// Status is a snapshot of a Syncer for `cfimgsync status`: is it healthy, what is queued,
// what failed and why.
type Status struct {
	// Running is true while Run is active.
	Running bool
	// LastPass and LastFullPass are when the last pass and the last full pass ended.
	LastPass, LastFullPass time.Time
	// Last is the last pass's summary (its Failures include parked files) and LastErr its
	// error: a tripped delete guard or an unavailable folder, say.
	Last    Summary
	LastErr error
	// Unavailable is set while the folder fails the safety checks.
	Unavailable bool
	// Retries are the files waiting for another attempt, soonest first.
	Retries []Retry
}

// Retry is a file waiting for another attempt.
type Retry struct {
	Path    string
	Attempt int // failed attempts so far (0: changed while being read or uploaded)
	Due     time.Time
}

// Status returns a snapshot of the syncer's state. It is safe to call from any goroutine,
// also while Run or SyncOnce is running.
func (s *Syncer) Status() Status {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	st := s.status
	st.Last.Failures = slices.Clone(st.Last.Failures)
	st.Retries = slices.Clone(st.Retries)
	return st
}

// recordPass stores a pass's outcome for Status.
func (s *Syncer) recordPass(full bool, sum Summary, err error, unavailable bool) {
	now := time.Now()
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	s.status.LastPass = now
	if full {
		s.status.LastFullPass = now
	}
	s.status.Last, s.status.LastErr, s.status.Unavailable = sum, err, unavailable
}

// setRetries publishes the loop's retry queue for Status.
func (s *Syncer) setRetries(retries map[string]*retryState) {
	rs := make([]Retry, 0, len(retries))
	for p, r := range retries {
		if p == fullRetryKey {
			continue
		}
		rs = append(rs, Retry{Path: p, Attempt: r.attempt, Due: r.due})
	}
	slices.SortFunc(rs, func(a, b Retry) int { return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.Path, b.Path)) })
	s.statusMu.Lock()
	s.status.Retries = rs
	s.statusMu.Unlock()
}

func (s *Syncer) setRunning(on bool) {
	s.statusMu.Lock()
	s.status.Running = on
	if !on {
		s.status.Retries = nil
	}
	s.statusMu.Unlock()
}
