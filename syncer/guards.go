package syncer

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cfimgsync/cfimgsync/store"
)

// metadataDigest is the store.Meta.MetadataDigest of a configuration: it changes when the
// static metadata or the owner tag every image carries changes.
func metadataDigest(static map[string]any, owner string) string {
	// encoding/json sorts map keys, so equal metadata gives equal text.
	b, err := json.Marshal(struct {
		Static map[string]any `json:"static"`
		Owner  string         `json:"owner"`
	}{static, owner})
	if err != nil {
		// New refuses static metadata that does not encode, so this is not reached.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func (s *Syncer) digest() string { return metadataDigest(s.cfg.StaticMetadata, s.cfg.OwnerTag) }

// ErrNothingToApprove is returned by ApproveDeletes when no pass is waiting for approval.
var ErrNothingToApprove = errors.New("no deletes are waiting for approval")

// ApproveDeletes approves the deletes the folder's last guarded pass held back (see
// ErrDeleteGuard) and returns how many. The next pass that wants at most that many deletes
// makes them, once; a pass that wants more is held back again. It only writes the index, so
// it works on a folder whose syncer is running (a pass reads the approval fresh) or not.
func ApproveDeletes(f *store.Folder) (int, error) {
	var n int
	err := f.UpdateMeta(func(m *store.Meta, ok bool) error {
		if !ok || m.DeletesBlocked == 0 {
			return ErrNothingToApprove
		}
		n = m.DeletesBlocked
		m.DeletesApproved = n
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNothingToApprove) {
			return 0, fmt.Errorf("folder %s: %w", f.Name(), ErrNothingToApprove)
		}
		return 0, fmt.Errorf("approve deletes of folder %s: %w", f.Name(), err)
	}
	return n, nil
}

// DelayedDelete is the image of a removed file, kept until DeleteDelay has passed
// (delete_mode "delay"); the file coming back in time keeps it.
type DelayedDelete struct {
	Path    string
	ImageID string
	// Gone is when a pass first missed the file; Due when its image may be deleted.
	Gone, Due time.Time
}

// deletePolicy adjusts a plan's deletes to the delete mode and the scan's health. It is
// pure, like makePlan, and runs right after it.
type deletePolicy struct {
	delay    time.Duration // > 0: delete_mode "delay"
	now      time.Time
	gone     map[string]time.Time // marks in the plan's scope
	present  map[string]bool      // paths the scan found
	scanFail bool                 // some directory could not be listed
}

func (dp deletePolicy) apply(p *Plan) {
	for rel := range dp.gone {
		if dp.present[rel] {
			p.unmarkGone = append(p.unmarkGone, rel)
		}
	}
	slices.Sort(p.unmarkGone)
	if dp.delay > 0 {
		var extra []Op
		for i := range p.Ops {
			op := &p.Ops[i]
			if op.Kind != OpMove || op.OldImageID == "" || op.OldImageID == op.ImageID {
				continue
			}
			// A rename under a scheme whose ID names the path: the new path is
			// uploaded now, the old image waits like any other removed file's.
			extra = append(extra, Op{Kind: OpDelete, Path: op.OldPath, ImageID: op.OldImageID,
				Reason: "renamed to " + op.Path})
			p.Deletes++
			op.Kind, op.Reason = OpUpload, "new file (renamed from "+op.OldPath+")"
			op.OldPath, op.OldImageID = "", ""
		}
		p.Ops = append(p.Ops, extra...)
		kept := p.Ops[:0]
		for _, op := range p.Ops {
			if op.Kind != OpDelete || op.keepRecord {
				kept = append(kept, op)
				continue
			}
			since, marked := dp.gone[op.Path]
			if !marked {
				since = dp.now
				p.markGone = append(p.markGone, op.Path)
			}
			if due := since.Add(dp.delay); dp.now.Before(due) {
				p.Delayed = append(p.Delayed, DelayedDelete{Path: op.Path, ImageID: op.ImageID, Gone: since, Due: due})
				p.Deletes--
				continue
			}
			op.Reason += fmt.Sprintf(" (gone since %s, delete_delay passed)", since.UTC().Format(time.RFC3339))
			kept = append(kept, op)
		}
		p.Ops = kept
		slices.SortStableFunc(p.Ops, func(a, b Op) int {
			return cmp.Or(cmp.Compare(opOrder(a.Kind), opOrder(b.Kind)), cmp.Compare(a.Path, b.Path))
		})
		slices.SortFunc(p.Delayed, func(a, b DelayedDelete) int {
			return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.Path, b.Path))
		})
	}
	if dp.scanFail {
		// Whatever could not be read is already kept out of the deletes, but a tree
		// that reads partly is a tree in trouble: no delete until a clean pass.
		n := len(p.Ops)
		p.Ops = slices.DeleteFunc(p.Ops, func(op Op) bool { return op.Kind == OpDelete && !op.keepRecord })
		p.HeldDeletes = n - len(p.Ops)
		p.Deletes = 0
	}
}

// noteGuard records in the meta what the guard did in a pass that runs (not a dry run):
// the count it held back, for approve-deletes and status; an approval used up; and, after
// a full pass the guard let through, that nothing is blocked any more.
func (s *Syncer) noteGuard(p *Plan) error {
	switch {
	case errors.Is(p.Guard, ErrDeleteGuard) && !p.full:
		// A narrowed pass adds to what waits; it does not replace the full count.
		return s.updateMeta(func(m *store.Meta) { m.DeletesBlocked += p.Deletes })
	case errors.Is(p.Guard, ErrDeleteGuard):
		return s.updateMeta(func(m *store.Meta) { m.DeletesBlocked = p.Deletes })
	case p.Guard == nil && p.Deletes > p.DeleteLimit:
		// The operator approved these deletes; the approval is used up by this pass.
		return s.updateMeta(func(m *store.Meta) { m.DeletesApproved, m.DeletesBlocked = 0, 0 })
	case p.Guard == nil && p.full:
		// Nothing is held back any more (the files came back, say): an approval given
		// meanwhile must not carry over to some later, different mass delete.
		m, _, err := s.idx.Meta()
		if err != nil {
			return err
		}
		if m.DeletesBlocked != 0 || m.DeletesApproved != 0 {
			return s.updateMeta(func(m *store.Meta) { m.DeletesBlocked, m.DeletesApproved = 0, 0 })
		}
	}
	return nil
}

// approvedDeletes reads the approval fresh: approve-deletes writes it from outside.
func (s *Syncer) approvedDeletes() (int, error) {
	m, _, err := s.idx.Meta()
	if err != nil {
		return 0, err
	}
	return m.DeletesApproved, nil
}

// applyDeletePolicy runs the deletePolicy over a plan of scope sc.
func (s *Syncer) applyDeletePolicy(p *Plan, sc scope, files []localFile) error {
	all, err := s.idx.Gone()
	if err != nil {
		return err
	}
	dp := deletePolicy{now: time.Now(), scanFail: len(p.ScanErrors) > 0}
	if s.cfg.DeleteMode == DeleteDelay {
		dp.delay = s.cfg.DeleteDelay
	}
	if len(all) > 0 {
		dp.gone = make(map[string]time.Time, len(all))
		for rel, t := range all {
			if sc.all || sc.contains(rel) {
				dp.gone[rel] = t
			}
		}
		dp.present = make(map[string]bool, len(files))
		for _, lf := range files {
			dp.present[lf.Rel] = true
		}
	}
	dp.apply(p)
	if p.HeldDeletes > 0 {
		s.log.Warn("deletes held back: the scan could not read everything, so no image is deleted in this pass",
			"held", p.HeldDeletes, "unread", len(p.ScanErrors))
	}
	return nil
}

// applyGoneMarks writes the plan's gone marks: files first missed now, files back.
func (s *Syncer) applyGoneMarks(p *Plan) error {
	if err := s.idx.MarkGone(p.markGone, time.Now()); err != nil {
		return err
	}
	if len(p.markGone) > 0 {
		s.log.Info("files removed; their images are deleted after delete_delay unless the files come back",
			"count", len(p.markGone), "delay", s.cfg.DeleteDelay)
	}
	return s.idx.Unmark(p.unmarkGone)
}

// updatesFailed reports whether any metadata patch of ups failed in this pass.
func updatesFailed(ups []Op, res passResult) bool {
	failed := make(map[string]bool, len(res.Failures))
	for _, fe := range res.Failures {
		failed[fe.Path] = true
	}
	for _, op := range ups {
		if op.Kind == OpUpdate && failed[op.Path] {
			return true
		}
	}
	return false
}

// recordDigest records that the folder's images carry the configured metadata.
func (s *Syncer) recordDigest() error {
	d := s.digest()
	s.mu.Lock()
	same := s.meta.MetadataDigest == d
	s.mu.Unlock()
	if same {
		return nil
	}
	return s.updateMeta(func(m *store.Meta) { m.MetadataDigest = d })
}

// nextDelayedDue is when the first delayed delete falls due, or zero if none waits. A delete
// already due (held back by the guard, say) is looked at again after RetryBackoff, not in a
// tight loop.
func (s *Syncer) nextDelayedDue(now time.Time) time.Time {
	if s.cfg.DeleteMode != DeleteDelay {
		return time.Time{}
	}
	gone, err := s.idx.Gone()
	if err != nil || len(gone) == 0 {
		return time.Time{}
	}
	var first time.Time
	for _, t := range gone {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return later(first.Add(s.cfg.DeleteDelay), now.Add(s.cfg.RetryBackoff))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
