package syncer

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// opRetire journals the end of an image that a replace under a content-following scheme
// (versioned, auto) supersedes. It is recorded before the new upload, so a crash anywhere
// between the upload and the old image's delete leaves the old image findable; recovery
// deletes it once the path's record names another image, and drops the entry if the
// record still names it (the replacement never landed).
const opRetire store.IntentOp = "retire"

// recoverIntents settles the remote calls journalled by a run that ended before recording
// their outcome (DESIGN §4), and is also run before each pass to settle calls whose answer
// was lost. An upload with a custom ID is settled by looking the ID up: our image with our
// hash means it succeeded; anything else leaves the path for the pass to upload again. An
// upload without one (the auto scheme) is settled by listing our images and matching path
// and hash. A delete is simply re-run; "not found" counts as done. Retirements go last, so
// they see the records the uploads settled. An intent that cannot be settled now (the API
// is unreachable) stays for later.
func (s *Syncer) recoverIntents(ctx context.Context) error {
	intents, err := s.idx.Intents()
	if err != nil || len(intents) == 0 {
		return err
	}
	var (
		retires   []store.Intent
		listing   *ownListing
		unsettled = make(map[string]bool) // paths with an upload left for later
	)
	for _, in := range intents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if in.Op == opRetire {
			retires = append(retires, in)
			continue
		}
		var err error
		if in.Op == store.OpUpload && in.ImageID == "" {
			if listing == nil {
				listing = s.listOwn(ctx)
			}
			err = s.recoverAutoUpload(ctx, in, listing)
		} else {
			err = s.recoverOne(ctx, in)
		}
		if err != nil && in.Op == store.OpUpload {
			unsettled[in.Path] = true
		}
		if err = s.intentLeft(in, err); err != nil {
			return err
		}
	}
	for _, in := range retires {
		if err := ctx.Err(); err != nil {
			return err
		}
		if unsettled[in.Path] {
			// Whether the replacement landed is not known yet.
			continue
		}
		if err := s.intentLeft(in, s.recoverRetire(ctx, in)); err != nil {
			return err
		}
	}
	return nil
}

// intentLeft turns a transient failure to settle in into a warning (the intent stays for
// later) and any other failure into the error that stops the pass.
func (s *Syncer) intentLeft(in store.Intent, err error) error {
	switch {
	case err == nil:
		return nil
	case batchapi.IsTransient(err):
		s.log.Warn("intent left for later", "op", string(in.Op), "path", in.Path, "id", in.ImageID, "err", err)
		return nil
	default:
		return fmt.Errorf("recover interrupted %s of %s: %w", in.Op, in.Path, err)
	}
}

func (s *Syncer) recoverOne(ctx context.Context, in store.Intent) error {
	rec, had, err := s.idx.Get(in.Path)
	if err != nil {
		return err
	}
	if !had {
		rec = store.Record{Path: in.Path}
	}
	switch in.Op {
	case store.OpUpload:
		got, err := s.remote.Get(ctx, in.ImageID)
		switch {
		case batchapi.IsNotFound(err):
			// Never stored: the pass uploads the path again.
			if rec.ImageID == in.ImageID {
				rec.ImageID, rec.SHA256 = "", ""
			}
			rec.State = store.StatePending
		case err != nil:
			return fmt.Errorf("settle upload of %s: %w", in.Path, err)
		case !s.isOwner(got):
			if rec.ImageID == in.ImageID {
				rec.ImageID, rec.SHA256 = "", ""
			}
			rec = failedRecord(rec, classForeign, errForeign)
		case metaString(got.Meta, metaSHA256) == in.SHA256 && in.SHA256 != "":
			// Stored before the answer was lost. The stat is left as it was, so the next
			// pass reads the file once and confirms the hash.
			rec.ImageID, rec.SHA256, rec.State = in.ImageID, in.SHA256, store.StateSynced
			rec.LastError, rec.ErrorClass, rec.Attempts = "", "", 0
			if !got.Uploaded.IsZero() {
				rec.UploadedAt = got.Uploaded
			}
		default:
			// Ours with other content: pending makes the pass replace it.
			rec.ImageID, rec.SHA256, rec.State = in.ImageID, metaString(got.Meta, metaSHA256), store.StatePending
		}
		s.log.Info("settled upload intent", "path", in.Path, "id", in.ImageID, "state", rec.State.String())
		return s.idx.Settle(in.ID, &rec, "")
	case store.OpDelete:
		got, err := s.remote.Get(ctx, in.ImageID)
		switch {
		case batchapi.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("settle delete of %s: %w", in.Path, err)
		case !s.isOwner(got):
			s.log.Warn("image not deleted: it does not carry our owner tag", "path", in.Path, "id", in.ImageID)
		default:
			if err := s.remote.Delete(ctx, in.ImageID); err != nil && !batchapi.IsNotFound(err) {
				return fmt.Errorf("settle delete of %s: %w", in.Path, err)
			}
			s.log.Info("deleted image", "path", in.Path, "id", in.ImageID, "reason", "finishing a delete interrupted earlier")
		}
		if had && rec.ImageID == in.ImageID {
			// The record no longer has an image; if the file is still there the pass
			// uploads it again.
			return s.idx.Settle(in.ID, nil, in.Path)
		}
		return s.idx.Settle(in.ID, nil, "")
	default:
		// Updates are idempotent and redone by a later pass if still needed.
		return s.idx.Settle(in.ID, nil, "")
	}
}

// ownListing is our images by path and hash, read once per recovery that needs it.
type ownListing struct {
	err error
	// byKey maps pathKey(path, sha256) to the images carrying that path and hash in
	// their metadata, oldest first.
	byKey map[string][]batchapi.Image
	// indexed maps the image IDs the index names to their record's path.
	indexed map[string]string
}

func pathKey(p, sum string) string { return p + "\x00" + sum }

// listOwn lists the images under each of our owner tags, and the IDs the index knows.
func (s *Syncer) listOwn(ctx context.Context) *ownListing {
	l := &ownListing{byKey: make(map[string][]batchapi.Image), indexed: make(map[string]string)}
	for _, owner := range s.owners {
		for img, err := range s.remote.List(ctx, batchapi.ListOptions{Creator: &owner}) {
			if err != nil {
				l.err = fmt.Errorf("list images of %s: %w", owner, err)
				return l
			}
			if img.Creator != owner {
				continue // the filter is the server's; trust but verify
			}
			k := pathKey(metaString(img.Meta, metaPath), metaString(img.Meta, metaSHA256))
			l.byKey[k] = append(l.byKey[k], img)
		}
	}
	for k, imgs := range l.byKey {
		slices.SortFunc(imgs, func(a, b batchapi.Image) int {
			return cmp.Or(a.Uploaded.Compare(b.Uploaded), cmp.Compare(a.ID, b.ID))
		})
		l.byKey[k] = imgs
	}
	l.err = s.idx.ForEach(func(r store.Record) error {
		if r.ImageID != "" {
			l.indexed[r.ImageID] = r.Path
		}
		return nil
	})
	return l
}

// recoverAutoUpload settles an upload without a custom ID. Our images with the intent's path
// and hash are the upload (or an earlier one whose answer was also lost): one is adopted and
// any other is a duplicate, deleted. None means the upload never landed; the pass uploads
// the file again. Images the index names for another path are left alone.
func (s *Syncer) recoverAutoUpload(ctx context.Context, in store.Intent, l *ownListing) error {
	if l.err != nil {
		return l.err
	}
	rec, had, err := s.idx.Get(in.Path)
	if err != nil {
		return err
	}
	if !had {
		rec = store.Record{Path: in.Path}
	}
	var cands []batchapi.Image
	for _, img := range l.byKey[pathKey(in.Path, in.SHA256)] {
		if p, ok := l.indexed[img.ID]; ok && p != in.Path {
			continue
		}
		cands = append(cands, img)
	}
	if in.SHA256 == "" || len(cands) == 0 {
		rec.State = store.StatePending
		s.log.Info("settled upload intent: not stored", "path", in.Path)
		return s.idx.Settle(in.ID, &rec, "")
	}
	keep := 0
	for i, img := range cands {
		if img.ID == rec.ImageID {
			keep = i
		}
	}
	for i, img := range cands {
		if i == keep {
			continue
		}
		if err := s.deleteDuplicate(ctx, in.Path, img.ID, in.SHA256); err != nil {
			return err
		}
	}
	got := cands[keep]
	rec.ImageID, rec.SHA256, rec.State = got.ID, in.SHA256, store.StateSynced
	rec.LastError, rec.ErrorClass, rec.Attempts = "", "", 0
	rec.UploadedAt = got.Uploaded
	// Later intents of the same path and hash must not adopt the same image, nor delete it.
	k := pathKey(in.Path, in.SHA256)
	l.byKey[k] = nil
	l.indexed[got.ID] = in.Path
	s.log.Info("settled upload intent: stored before its answer was lost", "path", in.Path, "id", got.ID)
	return s.idx.Settle(in.ID, &rec, "")
}

// deleteDuplicate deletes a second image of ours holding the same path and content as the
// one kept, journalled like any delete.
func (s *Syncer) deleteDuplicate(ctx context.Context, p, id, sum string) error {
	intent, err := s.idx.AddIntent(store.Intent{Op: store.OpDelete, Path: p, ImageID: id, SHA256: sum})
	if err != nil {
		return err
	}
	if err := s.remote.Delete(ctx, id); err != nil && !batchapi.IsNotFound(err) {
		return fmt.Errorf("delete duplicate %s of %s: %w", id, p, err)
	}
	s.log.Info("deleted image", "path", p, "id", id, "reason", "duplicate of an upload whose answer was lost")
	return s.idx.Settle(intent, nil, "")
}

// recoverRetire deletes the image a replace superseded, once the path's record names
// another image and the grace (versioned scheme) is over.
func (s *Syncer) recoverRetire(ctx context.Context, in store.Intent) error {
	rec, had, err := s.idx.Get(in.Path)
	if err != nil {
		return err
	}
	if had && rec.ImageID == in.ImageID {
		// The replacement never landed (or the file came back to this version): the
		// image still serves the file.
		return s.idx.Settle(in.ID, nil, "")
	}
	if g := s.cfg.VersionedGrace; g > 0 && s.scheme.Name() == "versioned" && time.Since(in.Created) < g {
		return nil
	}
	got, err := s.remote.Get(ctx, in.ImageID)
	switch {
	case batchapi.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get %s before delete: %w", in.ImageID, err)
	case !s.isOwner(got):
		s.log.Warn("image not deleted: it does not carry our owner tag", "path", in.Path, "id", in.ImageID, "creator", got.Creator)
	default:
		if err := s.remote.Delete(ctx, in.ImageID); err != nil && !batchapi.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", in.ImageID, err)
		}
		s.log.Info("deleted image", "path", in.Path, "id", in.ImageID, "reason", "replaced by a newer version")
	}
	return s.idx.Settle(in.ID, nil, "")
}
