package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// maxFollowUps bounds the extra rounds SyncOnce spends on files that changed while they
// were read or uploaded; a file still changing after them is left to the next run.
const maxFollowUps = 3

// passResult is one pass's outcome, beyond the summary, for the caller's scheduling.
type passResult struct {
	Summary
	// requeue are paths to look at again soon: they changed while being read or uploaded.
	requeue []string
	// transient are paths whose remote call failed transiently.
	transient []string
}

// SyncOnce does one full reconcile of the folder: it settles calls left over from a crash,
// scans the whole tree and makes the remote side match it. Per-file failures are in the
// summary, not the error. The error is ErrIdentityChanged, ErrFolderUnavailable,
// ErrDeleteGuard (the rest of the pass was done), an authentication error from the API
// (batchapi.IsAuth), an index error, or the context's.
func (s *Syncer) SyncOnce(ctx context.Context) (Summary, error) {
	if err := s.prepare(true); err != nil {
		return Summary{}, err
	}
	if err := s.recoverIntents(ctx); err != nil {
		return Summary{}, err
	}
	res, err := s.pass(ctx, fullScope())
	sum := res.Summary
	for i := 0; i < maxFollowUps && err == nil && len(res.requeue) > 0; i++ {
		sc := hintScope(res.requeue)
		res, err = s.pass(ctx, sc)
		// The follow-up's verdict on its paths replaces the earlier one.
		sum.Failures = slices.DeleteFunc(sum.Failures, func(fe FileError) bool { return sc.contains(fe.Path) })
		sum.Failed = len(sum.Failures)
		sum.add(res.Summary)
	}
	s.recordPass(true, sum, err, errors.Is(err, ErrFolderUnavailable))
	s.emit(Event{Kind: EventDone, Bytes: sum.Bytes, Err: err})
	return sum, err
}

// Plan is the dry run of SyncOnce: it scans and plans without writing to the index or
// making any write call, and reports what SyncOnce would do. A tripped delete guard or an
// unavailable folder is reported in Plan.Guard, not as the error.
func (s *Syncer) Plan(ctx context.Context) (Plan, error) {
	if err := s.prepare(false); err != nil {
		return Plan{}, err
	}
	p, err := s.plan(ctx, fullScope(), true)
	if err != nil {
		return Plan{}, err
	}
	return p, nil
}

// plan scans the scope and plans it, with the delete guard evaluated.
func (s *Syncer) plan(ctx context.Context, sc scope, dry bool) (Plan, error) {
	if err := s.checkFolder(dry); err != nil {
		if errors.Is(err, ErrFolderUnavailable) {
			return Plan{Guard: err}, nil
		}
		return Plan{}, err
	}
	index, err := s.loadIndex(sc)
	if err != nil {
		return Plan{}, err
	}
	sn := &scanner{
		root:    s.cfg.Root,
		ignore:  s.cfg.Ignore.Match,
		scheme:  s.scheme,
		limits:  s.cfg.Limits,
		index:   index,
		workers: min(s.cfg.Concurrency, 4),
		onRead: func(rel string) {
			s.reads.Add(1)
			if s.beforeRead != nil {
				s.beforeRead(rel)
			}
		},
		event: s.cfg.Progress,
	}
	scanned, err := sn.scan(ctx, sc)
	if err != nil {
		return Plan{}, err
	}
	var drift bool
	if sc.all {
		s.mu.Lock()
		have := s.meta.MetadataDigest
		s.mu.Unlock()
		switch {
		case have != "":
			// What the images carry is recorded: a change shows without an API call.
			drift = have != s.digest()
		case !s.driftChecked:
			// An index from before the digest: read two images back, once per Syncer;
			// the first clean full pass records the digest.
			if drift, err = s.metadataDrift(ctx, index); err != nil {
				return Plan{}, err
			}
		}
	}
	p := makePlan(planInput{
		scheme:          s.scheme,
		files:           scanned.Files,
		index:           index,
		unseen:          scanned.Unseen,
		keep:            s.cfg.DeleteMode == DeleteKeep,
		static:          s.cfg.StaticMetadata,
		metadataChanged: drift,
	})
	p.ScanErrors = scanned.Errors
	p.full = sc.all
	if err := s.applyDeletePolicy(&p, sc, scanned.Files); err != nil {
		return Plan{}, err
	}
	if p.Deletes > 0 {
		n, err := s.idx.Len()
		if err != nil {
			return Plan{}, err
		}
		p.DeleteLimit = deleteLimit(s.cfg.MaxDelete, n)
		approved, err := s.approvedDeletes()
		if err != nil {
			return Plan{}, err
		}
		p.Guard = checkDeleteGuard(p.Deletes, p.DeleteLimit, approved)
		if p.Guard == nil && !sc.all {
			if p.Guard, err = s.heldDeletesPending(p.Deletes, approved); err != nil {
				return Plan{}, err
			}
		}
	}
	return p, nil
}

// heldDeletesPending keeps a pass narrowed by watcher hints from deleting while a mass
// delete waits for approval. Each such pass alone may be under the limit, so without this
// a wipe that arrives in pieces (rm -rf over NFS, rsync --delete) would trickle through
// the guard one batch at a time. A full pass decides afresh: it sees the whole picture.
func (s *Syncer) heldDeletesPending(n, approved int) (error, error) {
	m, _, err := s.idx.Meta()
	if err != nil {
		return nil, err
	}
	if m.DeletesBlocked == 0 || approved >= m.DeletesBlocked+n {
		return nil, nil
	}
	return fmt.Errorf("%w: %d deletes already wait for approval, so these %d wait with them; nothing was deleted. "+
		"If the files were removed on purpose, run `cfimgsync approve-deletes`", ErrDeleteGuard, m.DeletesBlocked, n), nil
}

// metadataDrift reports whether the folder's images carry other static metadata or another
// creator than now configured, so a full pass patches them. The index keeps no copy of what
// was sent, so the images of the first and the last synced path are read back: a change
// of configuration shows on both, and a patch run cut short (it goes in path order) still
// shows on the last. Only an authentication failure is an error; anything else means "no
// evidence of drift".
func (s *Syncer) metadataDrift(ctx context.Context, index map[string]store.Record) (bool, error) {
	var first, last *store.Record
	for _, r := range index {
		if r.State != store.StateSynced || r.ImageID == "" {
			continue
		}
		if first == nil || r.Path < first.Path {
			first = &r
		}
		if last == nil || r.Path > last.Path {
			last = &r
		}
	}
	for _, r := range []*store.Record{first, last} {
		if r == nil {
			continue
		}
		got, err := s.remote.Get(ctx, r.ImageID)
		switch {
		case batchapi.IsAuth(err):
			return false, fmt.Errorf("get %s: %w", r.ImageID, err)
		case err != nil:
			s.log.Debug("metadata check skipped", "id", r.ImageID, "err", err)
			continue
		case !s.isOwner(got):
			continue
		}
		want, err := buildMetadata(s.cfg.StaticMetadata, r.Path, r.SHA256, r.Size)
		if err != nil {
			return false, nil
		}
		if got.Creator != s.cfg.OwnerTag || !metadataEqual(got.Meta, want) {
			s.log.Info("image metadata differs from the configuration; patching the folder's images", "id", r.ImageID)
			return true, nil
		}
	}
	return false, nil
}

// checkDeleteGuard refuses n deletes over limit unless the operator approved at least n.
func checkDeleteGuard(n, limit, approved int) error {
	if n <= limit || approved >= n {
		return nil
	}
	return fmt.Errorf("%w: this pass would delete %d images, over the limit of %d; nothing was deleted. "+
		"If the files were removed on purpose, run `cfimgsync approve-deletes` (or raise max_delete)",
		ErrDeleteGuard, n, limit)
}

// loadIndex reads the records in scope.
func (s *Syncer) loadIndex(sc scope) (map[string]store.Record, error) {
	index := make(map[string]store.Record)
	add := func(r store.Record) error {
		index[r.Path] = r
		return nil
	}
	if sc.all {
		if err := s.idx.ForEach(add); err != nil {
			return nil, err
		}
		return index, nil
	}
	for _, p := range sc.paths {
		if err := s.idx.ForEachUnder(p, add); err != nil {
			return nil, err
		}
	}
	return index, nil
}

// pass reconciles one scope: scan, plan, execute.
func (s *Syncer) pass(ctx context.Context, sc scope) (passResult, error) {
	// Calls of an earlier pass whose answer was lost (an upload without a custom ID, a
	// call cut by shutdown) are settled first: planning over them could upload twice.
	if err := s.recoverIntents(ctx); err != nil {
		return passResult{}, err
	}
	p, err := s.plan(ctx, sc, false)
	if err != nil {
		return passResult{}, err
	}
	if errors.Is(p.Guard, ErrFolderUnavailable) {
		return passResult{}, p.Guard
	}
	res, err := s.execute(ctx, &p)
	if err == nil && p.Guard != nil {
		err = p.Guard
	}
	return res, err
}

// retryDelay returns the backoff before the attempt-th retry of a transient failure.
func retryDelay(initial time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, maxRetryBackoff)
}

// classify maps a remote error to a record error class.
func classify(err error) string {
	if retryable(err) {
		return classTransient
	}
	return classPermanent
}

// codeQuota is the API's "account reached a service limit" code.
const codeQuota = 5453

// retryable reports whether a failed call is worth repeating later without the file
// changing: the client's transient errors, and a full image quota, which is about the
// account and not the file, so parking every file until it changes would be wrong.
func retryable(err error) bool {
	if batchapi.IsTransient(err) {
		return true
	}
	var ae *batchapi.APIError
	if errors.As(err, &ae) {
		for _, d := range ae.Errors {
			if d.Code == codeQuota {
				return true
			}
		}
	}
	return false
}
