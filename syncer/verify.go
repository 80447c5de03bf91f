package syncer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Listed counts our images listed remotely.
	Listed int
	// Missing are indexed paths whose image is gone remotely; Mismatched those whose
	// image holds other content than indexed. Both are marked pending, so the next pass
	// uploads them again.
	Missing, Mismatched []string
	// Orphans are our images the index does not name (none of our files maps to them).
	Orphans []Orphan
	// Pruned counts the orphans deleted (Verify with prune).
	Pruned int
}

// Orphan is an image of ours that no indexed file maps to.
type Orphan struct {
	ImageID string
	// Path and SHA256 are from the image's metadata.
	Path, SHA256 string
}

// Verify compares our images remotely (listed by owner tag) with the index (DESIGN §5):
// an indexed image that is missing or holds other content is marked pending for the next
// pass to upload again; an image of ours the index does not know is an orphan, reported,
// and deleted only with prune. Images without our owner tag are never touched. Verify
// settles leftover intents first, so an upload whose answer was lost is no orphan.
func (s *Syncer) Verify(ctx context.Context, prune bool) (VerifyReport, error) {
	var rep VerifyReport
	if err := s.prepare(true); err != nil {
		return rep, err
	}
	if err := s.recoverIntents(ctx); err != nil {
		return rep, err
	}
	listed, err := s.listOwnByID(ctx)
	if err != nil {
		return rep, err
	}
	rep.Listed = len(listed)

	named := make(map[string]bool)
	var fix []store.Record
	err = s.idx.ForEach(func(r store.Record) error {
		if r.ImageID == "" {
			return nil
		}
		named[r.ImageID] = true
		img, ok := listed[r.ImageID]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, r.Path)
			r.ImageID, r.SHA256 = "", ""
		case r.SHA256 != "" && metaString(img.Meta, metaSHA256) != r.SHA256:
			rep.Mismatched = append(rep.Mismatched, r.Path)
		default:
			return nil
		}
		// Pending with a stat that can never match makes the pass read the file and
		// publish it again.
		r.State, r.ModTime, r.LastError, r.ErrorClass, r.Attempts = store.StatePending, 0, "", "", 0
		fix = append(fix, r)
		return nil
	})
	if err != nil {
		return rep, err
	}
	if err := s.idx.PutMany(fix); err != nil {
		return rep, fmt.Errorf("mark images to upload again: %w", err)
	}
	for _, r := range fix {
		s.log.Warn("verify: image missing or changed remotely; it is uploaded again", "path", r.Path)
	}

	// Images an unsettled intent names are in flight, not orphans.
	intents, err := s.idx.Intents()
	if err != nil {
		return rep, err
	}
	for _, in := range intents {
		named[in.ImageID] = true
	}
	for id, img := range listed {
		if named[id] {
			continue
		}
		rep.Orphans = append(rep.Orphans, Orphan{ImageID: id, Path: metaString(img.Meta, metaPath), SHA256: metaString(img.Meta, metaSHA256)})
	}
	slices.SortFunc(rep.Orphans, func(a, b Orphan) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ImageID, b.ImageID)) })
	if !prune {
		return rep, nil
	}
	for _, o := range rep.Orphans {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := s.pruneOrphan(ctx, o); err != nil {
			return rep, err
		}
		rep.Pruned++
	}
	return rep, nil
}

// pruneOrphan deletes an orphan of ours, journalled like every delete.
func (s *Syncer) pruneOrphan(ctx context.Context, o Orphan) error {
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpDelete, Path: o.Path, ImageID: o.ImageID, SHA256: o.SHA256})
	if err != nil {
		return err
	}
	err = s.remote.Delete(ctx, o.ImageID)
	switch {
	case err == nil || batchapi.IsNotFound(err):
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err // the intent stays: the next start finishes the delete
	default:
		_ = s.idx.Settle(intent, nil, "")
		return fmt.Errorf("delete orphan %s: %w", o.ImageID, err)
	}
	s.log.Info("deleted image", "path", o.Path, "id", o.ImageID, "reason", "orphan: no indexed file maps to it (verify --prune)")
	// deletePath "" : the orphan has no record, and a record at its path (another image's)
	// stays.
	return s.idx.Settle(intent, nil, "")
}

// listOwnByID lists the images carrying one of our owner tags, by ID.
func (s *Syncer) listOwnByID(ctx context.Context) (map[string]batchapi.Image, error) {
	out := make(map[string]batchapi.Image)
	for _, owner := range s.owners {
		for img, err := range s.remote.List(ctx, batchapi.ListOptions{Creator: &owner}) {
			if err != nil {
				return nil, fmt.Errorf("list images of %s: %w", owner, err)
			}
			if !s.isOwner(img) {
				continue // the filter is the server's; ours is the one that counts
			}
			out[img.ID] = img
		}
	}
	return out, nil
}

// ReindexReport is what Reindex rebuilt.
type ReindexReport struct {
	// Files counts the files read; Matched those whose image was found remotely and
	// recorded as synced. The others are uploaded by the next pass.
	Files, Matched int
	// Orphans are our images no file matched (by path and hash).
	Orphans []Orphan
	// Duplicates counts extra images of ours holding the same file; they are orphans too.
	Duplicates int
}

// Reindex rebuilds a folder's index from the remote listing (by owner tag) and the folder:
// every file is read and hashed, and a file whose path and hash match one of our images
// (and, under a scheme of custom IDs, whose ID matches too) becomes a synced record of it.
// Nothing is uploaded or deleted: a normal pass afterwards uploads what is missing. Whatever
// the folder's index held is replaced, but only once the listing and the folder have been
// read: a failure before leaves it as it was. Call it on a Syncer that has not run a pass.
func (s *Syncer) Reindex(ctx context.Context) (ReindexReport, error) {
	var rep ReindexReport
	root := s.cfg.Root
	if fi, err := os.Stat(root); err != nil {
		return rep, fmt.Errorf("%w: root %s: %w", ErrFolderUnavailable, root, err)
	} else if !fi.IsDir() {
		return rep, fmt.Errorf("%w: root %s is not a directory", ErrFolderUnavailable, root)
	}
	listed, err := s.listOwnByID(ctx)
	if err != nil {
		return rep, err
	}
	byKey := make(map[string][]batchapi.Image)
	for _, img := range listed {
		k := pathKey(metaString(img.Meta, metaPath), metaString(img.Meta, metaSHA256))
		byKey[k] = append(byKey[k], img)
	}
	for _, imgs := range byKey {
		slices.SortFunc(imgs, func(a, b batchapi.Image) int {
			return cmp.Or(a.Uploaded.Compare(b.Uploaded), cmp.Compare(a.ID, b.ID))
		})
	}

	sn := &scanner{
		root:    s.cfg.Root,
		ignore:  s.cfg.Ignore.Match,
		scheme:  s.scheme,
		limits:  s.cfg.Limits,
		index:   map[string]store.Record{},
		workers: min(s.cfg.Concurrency, 4),
		onRead:  func(string) { s.reads.Add(1) },
		event:   s.cfg.Progress,
	}
	scanned, err := sn.scan(ctx, fullScope())
	if err != nil {
		return rep, err
	}
	used := make(map[string]bool)
	stale := false
	var recs []store.Record
	for _, lf := range scanned.Files {
		if lf.Status != statusRead {
			continue
		}
		rep.Files++
		id, err := s.scheme.ID(lf.Rel, lf.SHA256)
		if err != nil {
			continue
		}
		img, ok := matchImage(byKey[pathKey(lf.Rel, lf.SHA256)], listed, id, lf.SHA256, used)
		if !ok {
			continue
		}
		used[img.ID] = true
		rep.Matched++
		rec := store.Record{Path: lf.Rel, ImageID: img.ID, SHA256: lf.SHA256, State: store.StateSynced, UploadedAt: img.Uploaded}
		setStat(&rec, lf.Stat)
		recs = append(recs, rec)
		if want, err := buildMetadata(s.cfg.StaticMetadata, lf.Rel, lf.SHA256, lf.Stat.Size); err != nil ||
			img.Creator != s.cfg.OwnerTag || !metadataEqual(img.Meta, want) {
			stale = true
		}
	}
	for id, img := range listed {
		if used[id] {
			continue
		}
		o := Orphan{ImageID: id, Path: metaString(img.Meta, metaPath), SHA256: metaString(img.Meta, metaSHA256)}
		rep.Orphans = append(rep.Orphans, o)
		for _, other := range byKey[pathKey(o.Path, o.SHA256)] {
			if used[other.ID] {
				rep.Duplicates++
				break
			}
		}
	}
	slices.SortFunc(rep.Orphans, func(a, b Orphan) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ImageID, b.ImageID)) })

	// Everything is read: now the old index goes. Records first, then the meta: an index
	// with a meta is a finished one.
	if err := s.idx.Reset(); err != nil {
		return rep, fmt.Errorf("clear the folder's index: %w", err)
	}
	if err := s.idx.PutMany(recs); err != nil {
		return rep, fmt.Errorf("write rebuilt index: %w", err)
	}
	if err := s.prepare(true); err != nil {
		return rep, err
	}
	if stale {
		// Some images carry other metadata than configured: the next full pass patches.
		if err := s.updateMeta(func(m *store.Meta) { m.MetadataDigest = "reindexed" }); err != nil {
			return rep, err
		}
	}
	if len(recs) > 0 {
		s.learnDelivery(listed[recs[0].ImageID])
	}
	s.log.Info("index rebuilt from the remote listing", "files", rep.Files, "matched", rep.Matched,
		"to_upload", rep.Files-rep.Matched, "orphans", len(rep.Orphans), "at", time.Now().UTC().Format(time.RFC3339))
	return rep, nil
}

// matchImage picks the image of ours that holds a file: among those carrying its path and
// hash, the one under the file's ID if the scheme names one, else the oldest; failing that,
// the image under the file's ID with its hash (its metadata may lack the path).
func matchImage(cands []batchapi.Image, byID map[string]batchapi.Image, id, sum string, used map[string]bool) (batchapi.Image, bool) {
	for _, img := range cands {
		if !used[img.ID] && (id == "" || img.ID == id) {
			return img, true
		}
	}
	if id != "" {
		if img, ok := byID[id]; ok && !used[id] && metaString(img.Meta, metaSHA256) == sum {
			return img, true
		}
	}
	return batchapi.Image{}, false
}

// ErrNotRunning is returned by VerifyNow when Run is not running.
var ErrNotRunning = errors.New("the folder is not being synced (its syncer does not run)")

type verifyRequest struct {
	prune bool
	reply chan verifyReply
}

type verifyReply struct {
	rep VerifyReport
	err error
}

// VerifyNow is Verify for a Syncer whose Run is going: Run does it between two passes, so it
// never races a pass, and follows with a full pass when images are to be uploaded again.
// It may be called from any goroutine; it waits for the pass in progress to end.
func (s *Syncer) VerifyNow(ctx context.Context, prune bool) (VerifyReport, error) {
	if !s.Status().Running {
		return VerifyReport{}, ErrNotRunning
	}
	req := verifyRequest{prune: prune, reply: make(chan verifyReply, 1)}
	select {
	case s.verifies <- req:
	case <-ctx.Done():
		return VerifyReport{}, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.rep, r.err
	case <-ctx.Done():
		return VerifyReport{}, ctx.Err()
	}
}
