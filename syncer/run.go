package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/cfimgsync/cfimgsync/watcher"
)

// requeueDelay is the longest wait before looking again at a file that changed while it
// was read or uploaded; the watcher's settle time usually brings it back sooner.
const requeueDelay = time.Second

// Run is the daemon loop. It settles leftover intents, does a full pass, then reconciles
// the paths of each watcher batch (a directory hint covers its subtree, including records
// under it whose files vanished), does a full pass on a Rescan hint and every
// RescanInterval, and retries files that failed transiently with a doubling backoff.
//
// One goroutine (the caller's) owns the loop's state; passes run one at a time. A closed
// hints channel leaves the periodic passes running. Run returns ctx.Err() once ctx is done
// and the calls in flight have finished and been recorded, or earlier with an error that
// needs the operator: ErrIdentityChanged, an authentication error, an index failure, or
// ErrFolderUnavailable when the root is missing on first use. Later, an unavailable folder
// or a tripped delete guard is logged and retried, not returned.
//
// To ask for a full pass now (after `approve-deletes`, say), send Batch{Rescan: true} on
// hints; batches that queue up during a pass are merged into the next one.
func (s *Syncer) Run(ctx context.Context, hints <-chan watcher.Batch) error {
	if err := s.prepare(true); err != nil {
		return err
	}
	if err := s.recoverIntents(ctx); err != nil {
		return err
	}
	s.setRunning(true)
	defer s.setRunning(false)
	l := &loop{s: s, full: true, paths: make(map[string]bool), retries: make(map[string]*retryState)}
	rescan := time.NewTicker(s.cfg.RescanInterval)
	defer rescan.Stop()
	l.timer = time.NewTimer(time.Hour)
	l.timer.Stop()
	defer l.timer.Stop()

	for {
		// Coalesce whatever else is already waiting into this pass.
		for drained := false; !drained && hints != nil; {
			select {
			case b, ok := <-hints:
				if !ok {
					hints = nil
				} else {
					l.hint(b)
				}
			default:
				drained = true
			}
		}
		if l.full || len(l.paths) > 0 {
			if err := l.pass(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-hints:
			if !ok {
				hints = nil
				continue
			}
			l.hint(b)
		case <-rescan.C:
			l.full = true
		case req := <-s.verifies:
			rep, err := s.Verify(ctx, req.prune)
			req.reply <- verifyReply{rep, err}
			if len(rep.Missing)+len(rep.Mismatched) > 0 {
				// The pass that uploads them again.
				l.full = true
			}
		case <-l.timer.C:
			l.due(time.Now())
		}
	}
}

// loop is Run's state, owned by Run's goroutine.
type loop struct {
	s     *Syncer
	full  bool            // a full pass is due
	paths map[string]bool // hint paths for the next pass
	// retries are paths waiting for their backoff to expire; timer fires at the earliest.
	retries     map[string]*retryState
	timer       *time.Timer
	unavailable bool // the folder was unavailable at the last pass
	// delayDue is when the first delayed delete (delete mode "delay") falls due; a full
	// pass then makes it.
	delayDue time.Time
}

type retryState struct {
	attempt int
	due     time.Time
}

// fullRetryKey is the retries entry for a full pass; "" is never a file's path.
const fullRetryKey = ""

func (l *loop) hint(b watcher.Batch) {
	if b.Rescan {
		l.full = true
	}
	for _, p := range b.Paths {
		l.paths[cleanRel(p)] = true
	}
}

// due moves retries whose time has come into the next pass.
func (l *loop) due(now time.Time) {
	if !l.delayDue.IsZero() && !l.delayDue.After(now) {
		l.full, l.delayDue = true, time.Time{}
	}
	for p, r := range l.retries {
		if r.due.After(now) {
			continue
		}
		if p == fullRetryKey {
			l.full = true
		} else {
			l.paths[p] = true
		}
	}
	l.arm()
}

// arm sets the timer to the earliest retry not yet handed to a pass.
func (l *loop) arm() {
	var next time.Time
	if !l.full {
		next = l.delayDue
	}
	for p, r := range l.retries {
		if l.full || (p != fullRetryKey && l.paths[p]) {
			continue
		}
		if next.IsZero() || r.due.Before(next) {
			next = r.due
		}
	}
	if next.IsZero() {
		l.timer.Stop()
		return
	}
	l.timer.Reset(max(time.Until(next), 0))
}

// pass runs the pending pass and schedules what it leaves behind. It returns only errors
// that end Run.
func (l *loop) pass(ctx context.Context) error {
	s := l.s
	sc := fullScope()
	if !l.full {
		hints := make([]string, 0, len(l.paths))
		for p := range l.paths {
			hints = append(hints, p)
		}
		sc = hintScope(hints)
	}
	l.full = false
	clear(l.paths)

	res, err := s.pass(ctx, sc)
	s.recordPass(sc.all, res.Summary, err, errors.Is(err, ErrFolderUnavailable))
	s.emit(Event{Kind: EventDone, Bytes: res.Bytes, Err: err})
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	now := time.Now()
	switch {
	case err == nil, errors.Is(err, ErrDeleteGuard):
		if l.unavailable {
			s.log.Info("folder available again", "root", s.cfg.Root)
			l.unavailable = false
		}
		delete(l.retries, fullRetryKey)
	case errors.Is(err, ErrFolderUnavailable):
		if !l.unavailable {
			s.log.Error("folder unavailable; syncing stops until it is back", "root", s.cfg.Root, "err", err)
			l.unavailable = true
		}
		l.backoff(fullRetryKey, now)
		l.arm()
		s.setRetries(l.retries)
		return nil
	default:
		return err
	}
	if res.Uploaded+res.Replaced+res.Deleted+res.Updated+res.Failed > 0 {
		s.log.Info("pass done", "full", sc.all, "uploaded", res.Uploaded, "replaced", res.Replaced,
			"deleted", res.Deleted, "updated", res.Updated, "failed", res.Failed, "bytes", res.Bytes)
	}

	transient := make(map[string]bool, len(res.transient))
	for _, p := range res.transient {
		transient[p] = true
		l.backoff(p, now)
	}
	for p := range l.retries {
		if p != fullRetryKey && !transient[p] && sc.contains(p) {
			delete(l.retries, p)
		}
	}
	for _, p := range res.requeue {
		if _, waiting := l.retries[p]; !waiting {
			l.retries[p] = &retryState{due: now.Add(min(s.cfg.RetryBackoff, requeueDelay))}
		}
	}
	l.delayDue = s.nextDelayedDue(now)
	l.arm()
	s.setRetries(l.retries)
	return nil
}

// backoff schedules key's next attempt, doubling its delay.
func (l *loop) backoff(key string, now time.Time) {
	r := l.retries[key]
	if r == nil {
		r = &retryState{}
		l.retries[key] = r
	}
	r.attempt++
	r.due = now.Add(retryDelay(l.s.cfg.RetryBackoff, r.attempt))
}
