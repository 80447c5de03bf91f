package syncer

import (
	"context"
	"fmt"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// recoverIntents settles the remote calls journalled by a run that ended before recording
// their outcome (DESIGN §4). An upload is settled by looking the ID up: our image with our
// hash means it succeeded; anything else leaves the path for the pass to upload again. A
// delete is simply re-run; "not found" counts as done. An intent that cannot be settled now
// (the API is unreachable) stays for the next start.
func (s *Syncer) recoverIntents(ctx context.Context) error {
	intents, err := s.idx.Intents()
	if err != nil {
		return err
	}
	for _, in := range intents {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.recoverOne(ctx, in)
		switch {
		case err == nil:
		case batchapi.IsTransient(err):
			s.log.Warn("intent left for later", "op", string(in.Op), "path", in.Path, "id", in.ImageID, "err", err)
		default:
			return fmt.Errorf("recover interrupted %s of %s: %w", in.Op, in.Path, err)
		}
	}
	return nil
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
