package syncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// shutdownGrace is how long remote calls in flight may go on after the pass's context is
// cancelled, so their outcomes can be recorded rather than left to intent recovery.
const shutdownGrace = 30 * time.Second

// errForeign is the per-file error for an image ID taken by an image without our owner tag.
var errForeign = errors.New("image ID already used by an image this daemon does not own")

// outcome is what one operation did.
type outcome struct {
	// event is the kind of the success event ("" when the operation did not happen).
	event string
	bytes int64
	fail  *FileError
	// transient marks fail as worth retrying soon; requeue asks for another look at the
	// path because it changed under the operation.
	transient bool
	requeue   bool
	// moveDelete is a move's second half, to run with the deletes.
	moveDelete *Op
	// fatal aborts the pass: authentication, or the index failing.
	fatal error
}

// executor runs a plan's operations.
type executor struct {
	s *Syncer
	// work stops the pool from starting operations (the pass's context, or an abort);
	// call is the context of remote calls, which outlives work by shutdownGrace.
	work  context.Context
	abort context.CancelCauseFunc
	call  context.Context

	mu    sync.Mutex
	res   passResult
	moves []Op
}

// execute runs the plan: index-only changes, then uploads, replaces, moves and updates,
// then deletes (unless the guard holds them back). Per-file failures go to the summary; the
// error is an abort.
func (s *Syncer) execute(ctx context.Context, p *Plan) (passResult, error) {
	ex := &executor{s: s}
	ex.res.Unchanged = p.Unchanged
	ex.res.Skipped = len(p.Skipped)
	ex.res.requeue = append(ex.res.requeue, p.Changing...)
	for _, sk := range p.Skipped {
		s.emit(Event{Kind: EventSkip, Path: sk.Path, Err: errors.New(sk.Reason)})
	}
	for _, group := range [][]FileError{p.Failed, p.Parked, p.ScanErrors} {
		for _, fe := range group {
			ex.res.Failed++
			ex.res.Failures = append(ex.res.Failures, fe)
			s.emit(Event{Kind: EventFail, Path: fe.Path, Err: fe})
		}
	}
	for _, fe := range p.Failed {
		s.log.Warn("file refused", "path", fe.Path, "reason", fe.Reason)
	}
	if err := s.applyLocal(p.local); err != nil {
		return ex.res, err
	}
	if err := s.applyGoneMarks(p); err != nil {
		return ex.res, err
	}

	work, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	call, stop := callContext(ctx)
	defer stop()
	ex.work, ex.abort, ex.call = work, abort, call

	var ups, dels []Op
	for _, op := range p.Ops {
		if op.Kind == OpDelete {
			dels = append(dels, op)
		} else {
			ups = append(ups, op)
		}
	}
	ex.pool(ups, ex.do)
	if p.full && ex.work.Err() == nil && !hasTransient(ex.res) && !updatesFailed(ups, ex.res) {
		// The patches (if any) are done: the images carry the configured metadata.
		s.driftChecked = true
		if err := s.recordDigest(); err != nil {
			return ex.res, err
		}
	}
	if err := s.noteGuard(p); err != nil {
		return ex.res, err
	}
	if p.Guard != nil {
		dels = nil
		s.log.Error("deletes held back", "count", p.Deletes, "limit", p.DeleteLimit, "err", p.Guard)
	}
	if len(ex.moves)+len(dels) > 0 {
		// The uploads may have taken long enough for a disk to go away: look again
		// right before deleting anything.
		if err := s.checkFolder(false); err != nil {
			return ex.res, err
		}
	}
	ex.pool(append(ex.moves, dels...), ex.do)
	if err := context.Cause(work); err != nil && !errors.Is(err, context.Canceled) {
		return ex.res, err
	}
	if err := ctx.Err(); err != nil {
		return ex.res, err
	}
	return ex.res, nil
}

func hasTransient(res passResult) bool { return len(res.transient) > 0 }

// callContext returns a context for remote calls that ignores ctx's cancellation for
// shutdownGrace, so a call in flight at shutdown can finish and be recorded.
func callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	call, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	return call, func() { stop(); cancel() }
}

// pool runs fn for each op with at most Concurrency in flight, and stops starting new ones
// when the pass is aborted or cancelled. Each path occurs once in ops, so no path has two
// operations in flight.
func (ex *executor) pool(ops []Op, fn func(Op)) {
	sem := make(chan struct{}, ex.s.cfg.Concurrency)
	var wg sync.WaitGroup
loop:
	for _, op := range ops {
		select {
		case sem <- struct{}{}:
		case <-ex.work.Done():
			break loop
		}
		if ex.work.Err() != nil {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(op)
		})
	}
	wg.Wait()
}

// do runs one operation and records its outcome.
func (ex *executor) do(op Op) {
	var o outcome
	switch op.Kind {
	case OpMove:
		if op.ImageID == op.OldImageID {
			o = ex.s.rename(ex.call, op)
		} else {
			o = ex.s.publish(ex.call, op)
		}
	case OpUpload, OpReplace:
		o = ex.s.publish(ex.call, op)
	case OpUpdate:
		o = ex.s.update(ex.call, op)
	case OpDelete:
		o = ex.s.remove(ex.call, op)
	}
	ex.record(op, o)
}

func (ex *executor) record(op Op, o outcome) {
	s := ex.s
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if o.fatal != nil {
		ex.abort(o.fatal)
		return
	}
	if o.requeue {
		ex.res.requeue = append(ex.res.requeue, op.Path)
	}
	if o.moveDelete != nil {
		ex.moves = append(ex.moves, *o.moveDelete)
	}
	if o.fail != nil {
		ex.res.Failed++
		ex.res.Failures = append(ex.res.Failures, *o.fail)
		if o.transient {
			ex.res.transient = append(ex.res.transient, o.fail.Path)
		}
		s.log.Warn("sync failed", "path", o.fail.Path, "op", string(op.Kind), "reason", o.fail.Reason, "transient", o.transient)
		s.emit(Event{Kind: EventFail, Path: o.fail.Path, ImageID: op.ImageID, Err: *o.fail})
		return
	}
	switch o.event {
	case EventUpload:
		ex.res.Uploaded++
	case EventReplace:
		ex.res.Replaced++
	case EventDelete:
		ex.res.Deleted++
	case EventUpdate:
		ex.res.Updated++
	case "":
		return
	}
	ex.res.Bytes += o.bytes
	s.log.Debug("synced", "op", o.event, "path", op.Path, "id", op.ImageID, "bytes", o.bytes)
	s.emit(Event{Kind: o.event, Path: op.Path, ImageID: op.ImageID, Bytes: o.bytes})
}

// applyLocal writes the plan's index-only changes in one transaction.
func (s *Syncer) applyLocal(ops []localOp) error {
	var puts []store.Record
	for _, lo := range ops {
		switch lo.kind {
		case localPut:
			puts = append(puts, lo.record)
		case localForget:
			if err := s.idx.Delete(lo.path); err != nil {
				return err
			}
		}
	}
	return s.idx.PutMany(puts)
}

// fileFail builds the failure outcome of path, classifying err.
func fileFail(p string, err error) outcome {
	o := outcome{fail: &FileError{Path: p, Reason: reasonFor(err), Err: err}}
	if retryable(err) {
		o.transient = true
	}
	return o
}

// failedRecord is rec marked as failed with err.
func failedRecord(rec store.Record, class string, err error) store.Record {
	rec.State, rec.ErrorClass, rec.LastError = store.StateFailed, class, err.Error()
	rec.Attempts++
	return rec
}

// publish uploads op's file: a new image, a replacement, or a move's new half.
func (s *Syncer) publish(ctx context.Context, op Op) outcome {
	abs := filepath.Join(s.cfg.Root, filepath.FromSlash(op.Path))
	f, err := os.OpenFile(abs, os.O_RDONLY|openFlags, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return outcome{requeue: true}
		}
		return fileFail(op.Path, fmt.Errorf("open %s: %w", op.Path, err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fileFail(op.Path, fmt.Errorf("stat %s: %w", op.Path, err))
	} else if !statOf(fi).same(op.stat) {
		// Written since the scan hashed it: what we would upload is not what we hashed.
		return outcome{requeue: true}
	}
	md, err := buildMetadata(s.cfg.StaticMetadata, op.Path, op.SHA256, op.Size)
	if err != nil {
		return s.park(op, op.rec, classMetadata, err)
	}

	cur := op.rec
	cur.Path = op.Path
	event := EventUpload
	if op.Kind == OpReplace {
		event = EventReplace
		if op.OldImageID == "" {
			// Same ID: the old image must go before the new content can take the ID.
			after := cur
			after.ImageID, after.SHA256, after.State = "", "", store.StatePending
			if o, done := s.deleteImage(ctx, op.Path, op.ImageID, "content changed", &after, ""); !done {
				return o
			}
			cur = after
		}
	}

	var retire uint64
	if op.Kind == OpReplace && op.OldImageID != "" && op.OldImageID != op.ImageID {
		// Journal the old image's end before the new upload: after a crash between the two
		// calls nothing else would remember that the old image is to be deleted.
		if retire, err = s.idx.AddIntent(store.Intent{Op: opRetire, Path: op.Path, ImageID: op.OldImageID, SHA256: op.rec.SHA256}); err != nil {
			return outcome{fatal: err}
		}
	}
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpUpload, Path: op.Path, ImageID: op.ImageID, SHA256: op.SHA256})
	if err != nil {
		return outcome{fatal: err}
	}
	req := batchapi.UploadRequest{
		ID:       op.ImageID,
		Filename: path.Base(op.Path),
		Content:  f,
		Size:     op.Size,
		Metadata: md,
		Creator:  s.cfg.OwnerTag,
	}
	img, err := s.remote.Upload(ctx, req)
	if batchapi.IsAlreadyExists(err) {
		img, err = s.settleConflict(ctx, op, req)
	}
	if err != nil && op.ImageID != "" && batchapi.IsTransient(err) && !refusedUnread(err) {
		// The client retries a custom-ID upload, so a transient failure may follow an
		// attempt that was stored and whose answer was lost. Recorded as a failure, that
		// image would belong to nobody if the file were removed or renamed before the next
		// attempt (and under versioned, changed). So look now.
		got, gerr := s.remote.Get(ctx, op.ImageID)
		switch {
		case gerr == nil && s.isOwner(got) && metaString(got.Meta, metaSHA256) == op.SHA256:
			img, err = got, nil
		case gerr == nil || batchapi.IsNotFound(gerr):
		default:
			// Still unknown: the failure is recorded and the intent stays for recovery.
			rec := cur
			setStat(&rec, op.stat)
			if perr := s.idx.Put(failedRecord(rec, classTransient, fmt.Errorf("upload: %w", err))); perr != nil {
				return outcome{fatal: perr}
			}
			return outcome{fail: &FileError{Path: op.Path, Reason: reasonFor(err), Err: err}, transient: true}
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// The outcome is unknown and the intent stays for recovery at the next start.
		return outcome{fail: &FileError{Path: op.Path, Reason: "interrupted", Err: err}}
	case errors.Is(err, batchapi.ErrOutcomeUnknown):
		// An upload without a custom ID that may have been stored: only our listing can
		// tell (recover.go). The intent stays and the next pass settles it before it plans,
		// so the file is never uploaded twice.
		return outcome{fail: &FileError{Path: op.Path, Reason: "upload answer lost; settled by the next pass", Err: err},
			transient: true, requeue: true}
	case batchapi.IsAuth(err):
		_ = s.idx.Settle(intent, nil, "")
		return outcome{fatal: fmt.Errorf("upload %s: %w", op.ImageID, err)}
	case errors.Is(err, errForeign):
		rec := cur
		rec.ImageID, rec.SHA256 = "", ""
		setStat(&rec, op.stat)
		return s.settleFail(intent, op.Path, failedRecord(rec, classForeign, err), err, false)
	case errors.As(err, new(*idTakenError)):
		rec := cur
		rec.ImageID, rec.SHA256 = "", ""
		setStat(&rec, op.stat)
		return s.settleFail(intent, op.Path, failedRecord(rec, classIDTaken, err), err, false)
	default:
		transient := retryable(err)
		class := classPermanent
		if transient {
			class = classTransient
		}
		rec := cur
		setStat(&rec, op.stat)
		o := s.settleFail(intent, op.Path, failedRecord(rec, class, fmt.Errorf("upload: %w", err)), err, transient)
		// A refusal of bytes that changed under the upload says nothing about the file as
		// it is now: the recorded stat no longer matches, and another look is due.
		if changedSince(f, abs, op.stat) {
			o.requeue = true
		}
		return o
	}

	s.learnDelivery(img)
	rec := store.Record{
		Path: op.Path, ImageID: op.ImageID, SHA256: op.SHA256, State: store.StateSynced,
		UploadedAt: img.Uploaded,
	}
	switch {
	case op.ImageID == "":
		rec.ImageID = img.ID // generated by the API
	case img.ID != "" && img.ID != op.ImageID:
		// Keep the ID we asked for: it is what the next pass computes and compares.
		s.log.Warn("the API answered with another image ID than sent", "path", op.Path, "sent", op.ImageID, "got", img.ID)
	}
	if rec.UploadedAt.IsZero() {
		rec.UploadedAt = time.Now()
	}
	setStat(&rec, op.stat)
	o := outcome{event: event, bytes: op.Size}
	// A write during the upload means the image may hold a mix of old and new bytes:
	// record it as pending so the next look replaces it. A new file renamed over the
	// path leaves what we sent intact, but the path needs another look all the same.
	if fi, err := f.Stat(); err != nil || !statOf(fi).same(op.stat) {
		rec.State = store.StatePending
		o.requeue = true
	} else if fi, err := os.Lstat(abs); err != nil || !statOf(fi).same(op.stat) {
		o.requeue = true
	}
	if err := s.idx.Settle(intent, &rec, ""); err != nil {
		return outcome{fatal: err}
	}
	switch {
	case op.Kind == OpMove:
		o.moveDelete = &Op{Kind: OpDelete, Path: op.OldPath, ImageID: op.OldImageID, Reason: "renamed to " + op.Path}
	case op.Kind == OpReplace && op.OldImageID != "" && op.OldImageID != rec.ImageID:
		// A scheme whose ID follows the content: the old image goes once the new one is
		// up, and the path's record (now the new image's) stays.
		// With a grace period the journal keeps the retirement until it is due.
		if s.cfg.VersionedGrace <= 0 || s.scheme.Name() != "versioned" {
			o.moveDelete = &Op{Kind: OpDelete, Path: op.Path, ImageID: op.OldImageID, Reason: "replaced by " + rec.ImageID,
				keepRecord: true, retire: retire}
		}
	}
	return o
}

// refusedUnread reports whether err is an answer that turns a request away before it is
// processed (429 rate limited, 503 unavailable): the last attempt stored nothing, and a
// lookup would add a call while the API asks for fewer. (An earlier attempt could have
// landed with its answer lost and every retry then refused; that rare case is left to
// the next upload of the file, which meets the image as "already exists".)
func refusedUnread(err error) bool {
	var ae *batchapi.APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusTooManyRequests || ae.StatusCode == http.StatusServiceUnavailable)
}

// idTakenError refuses a file whose image ID is already used by another file of ours.
type idTakenError struct{ id, path string }

func (e *idTakenError) Error() string {
	return fmt.Sprintf("image ID %q is already used by %q (the names differ only in Unicode normalization)", e.id, e.path)
}

// changedSince reports whether the open file f, or the file now at abs, differs from st.
func changedSince(f *os.File, abs string, st fileStat) bool {
	fi, err := f.Stat()
	if err != nil || !statOf(fi).same(st) {
		return true
	}
	fi, err = os.Lstat(abs)
	return err != nil || !statOf(fi).same(st)
}

// settleConflict resolves an upload answered "already exists": an image of ours with the
// same content is the upload that succeeded before its answer was lost; ours with other
// content is stale and replaced; anyone else's is never touched.
func (s *Syncer) settleConflict(ctx context.Context, op Op, req batchapi.UploadRequest) (batchapi.Image, error) {
	got, err := s.remote.Get(ctx, op.ImageID)
	switch {
	case batchapi.IsNotFound(err):
		// Deleted in between: the ID is free again.
		return s.remote.Upload(ctx, req)
	case err != nil:
		return batchapi.Image{}, fmt.Errorf("get %s after conflict: %w", op.ImageID, err)
	case !s.isOwner(got):
		return batchapi.Image{}, errForeign
	case metaString(got.Meta, metaSHA256) == op.SHA256:
		return got, nil
	case metaString(got.Meta, metaPath) != "" && metaString(got.Meta, metaPath) != op.Path:
		// Another file of ours maps to the same ID (names that differ only in Unicode
		// normalization): replacing its image would make the two take turns forever.
		return batchapi.Image{}, &idTakenError{id: op.ImageID, path: metaString(got.Meta, metaPath)}
	}
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpDelete, Path: op.Path, ImageID: op.ImageID, SHA256: metaString(got.Meta, metaSHA256)})
	if err != nil {
		return batchapi.Image{}, err
	}
	if err := s.remote.Delete(ctx, op.ImageID); err != nil && !batchapi.IsNotFound(err) {
		if !errors.Is(err, context.Canceled) {
			_ = s.idx.Settle(intent, nil, "")
		}
		return batchapi.Image{}, fmt.Errorf("delete stale %s: %w", op.ImageID, err)
	}
	s.log.Info("deleted image", "path", op.Path, "id", op.ImageID, "reason", "stale content under the ID")
	if err := s.idx.Settle(intent, nil, ""); err != nil {
		return batchapi.Image{}, err
	}
	return s.remote.Upload(ctx, req)
}

func metaString(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

// settleFail records a failed upload and removes its intent.
func (s *Syncer) settleFail(intent uint64, p string, rec store.Record, err error, transient bool) outcome {
	if serr := s.idx.Settle(intent, &rec, ""); serr != nil {
		return outcome{fatal: serr}
	}
	return outcome{fail: &FileError{Path: p, Reason: rec.LastError, Err: err}, transient: transient}
}

// park records a permanent refusal found at execution time.
func (s *Syncer) park(op Op, rec store.Record, class string, err error) outcome {
	rec.Path = op.Path
	setStat(&rec, op.stat)
	rec = failedRecord(rec, class, err)
	if perr := s.idx.Put(rec); perr != nil {
		return outcome{fatal: perr}
	}
	return outcome{fail: &FileError{Path: op.Path, Reason: err.Error(), Err: err}}
}

// deleteImage deletes image id if it is ours, and settles the index: *after is written (if
// not nil) and deletePath's record removed (if not ""). done is false when the image may
// still exist; o then says why.
func (s *Syncer) deleteImage(ctx context.Context, p, id, reason string, after *store.Record, deletePath string) (o outcome, done bool) {
	got, err := s.remote.Get(ctx, id)
	switch {
	case batchapi.IsNotFound(err):
		if err := s.idx.Settle(0, after, deletePath); err != nil {
			return outcome{fatal: err}, false
		}
		return outcome{}, true
	case batchapi.IsAuth(err):
		return outcome{fatal: fmt.Errorf("get %s: %w", id, err)}, false
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Shutting down: nothing happened, and nothing about the file is known to be wrong.
		return outcome{fail: &FileError{Path: p, Reason: "interrupted", Err: err}}, false
	case err != nil:
		return s.failKeep(p, fmt.Errorf("get %s before delete: %w", id, err)), false
	case !s.isOwner(got):
		// Not ours (any more): never delete it, and stop tracking it.
		s.log.Warn("image not deleted: it does not carry our owner tag", "path", p, "id", id, "creator", got.Creator)
		if err := s.idx.Settle(0, after, deletePath); err != nil {
			return outcome{fatal: err}, false
		}
		return outcome{fail: &FileError{Path: p, Reason: errForeign.Error(), Err: errForeign}}, false
	}
	if other := metaString(got.Meta, metaPath); after == nil && deletePath == p && other != "" && other != p && s.indexedAs(other, id) {
		// The image now serves another file of ours with the same ID; only the record of
		// the vanished one goes. (The metadata alone proves nothing: a rename patched
		// under the auto scheme whose answer was lost leaves the new path in it too.)
		s.log.Info("image kept: it serves another file with the same ID", "path", p, "id", id, "other", other)
		if err := s.idx.Settle(0, nil, p); err != nil {
			return outcome{fatal: err}, false
		}
		return outcome{}, false
	}
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpDelete, Path: p, ImageID: id, SHA256: metaString(got.Meta, metaSHA256)})
	if err != nil {
		return outcome{fatal: err}, false
	}
	err = s.remote.Delete(ctx, id)
	switch {
	case err == nil || batchapi.IsNotFound(err):
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return outcome{fail: &FileError{Path: p, Reason: "interrupted", Err: err}}, false
	case batchapi.IsAuth(err):
		_ = s.idx.Settle(intent, nil, "")
		return outcome{fatal: fmt.Errorf("delete %s: %w", id, err)}, false
	default:
		if serr := s.idx.Settle(intent, nil, ""); serr != nil {
			return outcome{fatal: serr}, false
		}
		return s.failKeep(p, fmt.Errorf("delete %s: %w", id, err)), false
	}
	s.log.Info("deleted image", "path", p, "id", id, "reason", reason)
	if err := s.idx.Settle(intent, after, deletePath); err != nil {
		return outcome{fatal: err}, false
	}
	return outcome{}, true
}

// indexedAs reports whether the index has p's record naming image id. An index error
// counts as yes: keeping an image is the safe side.
func (s *Syncer) indexedAs(p, id string) bool {
	rec, ok, err := s.idx.Get(p)
	return err != nil || ok && rec.ImageID == id
}

// failKeep records a failed call on p's record, keeping everything else in it, so the
// next pass tries again.
func (s *Syncer) failKeep(p string, err error) outcome {
	o := fileFail(p, err)
	rec, ok, gerr := s.idx.Get(p)
	if gerr != nil {
		return outcome{fatal: gerr}
	}
	if ok {
		class := classify(err)
		rec = failedRecord(rec, class, err)
		if perr := s.idx.Put(rec); perr != nil {
			return outcome{fatal: perr}
		}
	}
	return o
}

// remove deletes the image of a file that is gone (or a move's old half).
func (s *Syncer) remove(ctx context.Context, op Op) outcome {
	deletePath := op.Path
	if op.keepRecord {
		deletePath = ""
	}
	o, done := s.deleteImage(ctx, op.Path, op.ImageID, op.Reason, nil, deletePath)
	if !done {
		// A retirement not done stays journalled; the next pass's recovery retries it.
		return o
	}
	if op.retire != 0 {
		if err := s.idx.Settle(op.retire, nil, ""); err != nil {
			return outcome{fatal: err}
		}
	}
	return outcome{event: EventDelete}
}

// rename moves an image to a file's new path under the auto scheme: the ID does not name
// the path, so the image stays and only its metadata is patched; the index record moves
// from the old path to the new in the same transaction that ends the intent.
func (s *Syncer) rename(ctx context.Context, op Op) outcome {
	md, err := buildMetadata(s.cfg.StaticMetadata, op.Path, op.SHA256, op.Size)
	if err != nil {
		return s.park(op, store.Record{}, classMetadata, err)
	}
	got, err := s.remote.Get(ctx, op.ImageID)
	switch {
	case batchapi.IsNotFound(err) || err == nil && !s.isOwner(got):
		// Gone, or not ours to patch: the old path no longer has an image of ours, and the
		// new path is uploaded by the next look.
		if err == nil {
			s.log.Warn("image not patched: it does not carry our owner tag", "path", op.OldPath, "id", op.ImageID, "creator", got.Creator)
		}
		if err := s.idx.Settle(0, nil, op.OldPath); err != nil {
			return outcome{fatal: err}
		}
		return outcome{requeue: true}
	case batchapi.IsAuth(err):
		return outcome{fatal: fmt.Errorf("get %s: %w", op.ImageID, err)}
	case err != nil:
		// The old record stays, so the next pass pairs the two paths again.
		return fileFail(op.Path, fmt.Errorf("get %s before rename: %w", op.ImageID, err))
	}
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpUpdate, Path: op.Path, ImageID: op.ImageID, SHA256: op.SHA256})
	if err != nil {
		return outcome{fatal: err}
	}
	owner := s.cfg.OwnerTag
	if _, err := s.remote.Update(ctx, op.ImageID, batchapi.UpdateRequest{Metadata: md, Creator: &owner}); err != nil {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return outcome{fail: &FileError{Path: op.Path, Reason: "interrupted", Err: err}}
		case batchapi.IsAuth(err):
			_ = s.idx.Settle(intent, nil, "")
			return outcome{fatal: fmt.Errorf("update %s: %w", op.ImageID, err)}
		}
		if serr := s.idx.Settle(intent, nil, ""); serr != nil {
			return outcome{fatal: serr}
		}
		return fileFail(op.Path, fmt.Errorf("rename %s: update %s: %w", op.OldPath, op.ImageID, err))
	}
	rec := store.Record{Path: op.Path, ImageID: op.ImageID, SHA256: op.SHA256, State: store.StateSynced, UploadedAt: got.Uploaded}
	setStat(&rec, op.stat)
	if err := s.idx.Settle(intent, &rec, op.OldPath); err != nil {
		return outcome{fatal: err}
	}
	s.log.Info("renamed image", "path", op.Path, "from", op.OldPath, "id", op.ImageID)
	return outcome{event: EventUpdate}
}

// update patches an up-to-date image's metadata.
func (s *Syncer) update(ctx context.Context, op Op) outcome {
	md, err := buildMetadata(s.cfg.StaticMetadata, op.Path, op.SHA256, op.Size)
	if err != nil {
		return s.park(op, op.rec, classMetadata, err)
	}
	got, err := s.remote.Get(ctx, op.ImageID)
	switch {
	case batchapi.IsAuth(err):
		return outcome{fatal: fmt.Errorf("get %s: %w", op.ImageID, err)}
	case err != nil:
		return s.failKeep(op.Path, fmt.Errorf("get %s before update: %w", op.ImageID, err))
	case !s.isOwner(got):
		return s.park(op, store.Record{}, classForeign, errForeign)
	}
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpUpdate, Path: op.Path, ImageID: op.ImageID, SHA256: op.SHA256})
	if err != nil {
		return outcome{fatal: err}
	}
	owner := s.cfg.OwnerTag
	_, err = s.remote.Update(ctx, op.ImageID, batchapi.UpdateRequest{Metadata: md, Creator: &owner})
	if err != nil {
		if batchapi.IsAuth(err) {
			_ = s.idx.Settle(intent, nil, "")
			return outcome{fatal: fmt.Errorf("update %s: %w", op.ImageID, err)}
		}
		rec := op.rec
		return s.settleFail(intent, op.Path, failedRecord(rec, classify(err), fmt.Errorf("update: %w", err)), err, retryable(err))
	}
	rec := op.rec
	setStat(&rec, op.stat)
	rec.State, rec.LastError, rec.ErrorClass, rec.Attempts = store.StateSynced, "", "", 0
	if err := s.idx.Settle(intent, &rec, ""); err != nil {
		return outcome{fatal: err}
	}
	return outcome{event: EventUpdate}
}

// learnDelivery records the delivery base and variant names from the first upload.
func (s *Syncer) learnDelivery(img batchapi.Image) {
	if len(img.Variants) == 0 {
		return
	}
	s.mu.Lock()
	known := s.meta.DeliveryBase != ""
	s.mu.Unlock()
	if known {
		return
	}
	base, _, ok := deliveryBase(img.Variants[0], img.ID)
	if !ok {
		return
	}
	var variants []string
	for _, v := range img.Variants {
		if _, name, ok := deliveryBase(v, img.ID); ok {
			variants = append(variants, name)
		}
	}
	if err := s.updateMeta(func(m *store.Meta) { m.DeliveryBase, m.Variants = base, variants }); err != nil {
		s.log.Warn("could not record the delivery base", "err", err)
	}
}

// updateMeta changes the stored meta (read fresh, since approvals arrive from outside).
func (s *Syncer) updateMeta(fn func(*store.Meta)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m store.Meta
	err := s.idx.UpdateMeta(func(cur *store.Meta, ok bool) error {
		if !ok {
			*cur = s.meta
		}
		fn(cur)
		m = *cur
		return nil
	})
	if err != nil {
		return err
	}
	s.meta = m
	return nil
}
