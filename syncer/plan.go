package syncer

import (
	"cmp"
	"errors"
	"slices"

	"github.com/cfimgsync/cfimgsync/store"
)

// OpKind names a remote operation.
type OpKind string

// The operations a plan can hold.
const (
	// OpUpload publishes a file that has no image yet.
	OpUpload OpKind = "upload"
	// OpReplace publishes new content under an ID that already has an image: under a
	// scheme with stable IDs it deletes the old image and uploads the new content under
	// the same ID, because the API cannot replace an image's bytes.
	OpReplace OpKind = "replace"
	// OpMove publishes a file whose content was indexed under another path that is gone:
	// the new image is uploaded first, then the old one deleted.
	OpMove OpKind = "move"
	// OpUpdate patches an image's metadata without touching its content.
	OpUpdate OpKind = "update"
	// OpDelete deletes the image of a file that is gone.
	OpDelete OpKind = "delete"
)

// Op is one planned remote operation.
type Op struct {
	Kind OpKind
	// Path is the file: the uploaded, replaced or patched one, a move's new path, or a
	// deleted file's former path.
	Path string
	// ImageID is the image uploaded, replaced, patched or deleted.
	ImageID string
	// OldPath and OldImageID are, for a move, the vanished path and its image, deleted once
	// the new image is up (under the auto scheme ImageID == OldImageID: the image is kept
	// and its metadata patched); for a replace under a scheme whose ID follows the content,
	// OldImageID is the image deleted after the upload.
	OldPath    string
	OldImageID string
	// SHA256 and Size describe the content uploaded (for a delete: the content indexed).
	SHA256 string
	Size   int64
	// Reason says why, in words for logs and the dry run.
	Reason string

	stat fileStat // the stat the content was read under, recorded after the upload
	rec  store.Record
	// keepRecord marks the delete of an image the path no longer uses (replaced under
	// another ID): the path's record belongs to the new image and stays.
	keepRecord bool
	// retire is the journal entry of an old image retired by a replace (see opRetire),
	// settled once the image is deleted.
	retire uint64
}

// Skip is a path the pass leaves alone, with the reason.
type Skip struct {
	Path, Reason string
}

// Plan is what a pass will do. Ops run uploads (upload, replace, move, update) before
// deletes; the rest is reported.
type Plan struct {
	Ops []Op
	// Skipped paths are not regular files; they are neither uploaded nor deleted.
	Skipped []Skip
	// Failed are files refused in this pass (pre-flight, ID rules, unreadable); Parked
	// were refused earlier and have not changed since, so they were not read again.
	Failed []FileError
	Parked []FileError
	// ScanErrors name the directories that could not be listed; nothing under them is
	// deleted.
	ScanErrors []FileError
	// Unchanged counts files whose image is up to date.
	Unchanged int
	// Changing lists files that were being written while the pass read them; a later
	// pass looks at them again.
	Changing []string
	// Deletes counts the OpDelete operations (moves excluded: their content stays
	// published); DeleteLimit is the most a pass may make without approval.
	Deletes, DeleteLimit int
	// Guard, when not nil, is why the plan's deletes would not run: ErrDeleteGuard or
	// ErrFolderUnavailable.
	Guard error

	// Delayed are deletes waiting for DeleteDelay (delete mode "delay"), soonest first;
	// HeldDeletes counts deletes held back because the scan had errors.
	Delayed     []DelayedDelete
	HeldDeletes int

	// local are index-only changes: no remote call, no count in the summary.
	local []localOp
	// markGone and unmarkGone are paths to mark as missing since now, and paths back.
	markGone, unmarkGone []string
	// full marks a plan of the whole folder.
	full bool
}

// localOp is a change to the index alone.
type localOp struct {
	kind   localKind
	path   string
	record store.Record // for localPut
}

type localKind int

const (
	localPut    localKind = iota // write record (refresh stat, park a refusal)
	localForget                  // remove the record; no image is deleted
)

// planInput is everything the pure planner looks at.
type planInput struct {
	scheme IDScheme
	// files is the scan of the scope; index holds the records in the same scope.
	files []localFile
	index map[string]store.Record
	// unseen are subtrees the scan could not list completely.
	unseen []string
	// keep is DeleteMode "keep": vanished files are forgotten, their images kept.
	keep bool
	// static is the configured static metadata, for checking that metadata fits.
	static map[string]any
	// metadataChanged says the images were uploaded with other static metadata or another
	// owner tag, so every up-to-date image is patched.
	metadataChanged bool
}

// makePlan compares a scan with the index. It does no I/O and is deterministic: Ops are
// sorted by kind (uploads first) and path.
func makePlan(in planInput) Plan {
	var p Plan
	seen := make(map[string]bool, len(in.files))
	var uploads []Op // candidates for a move

	for _, lf := range in.files {
		seen[lf.Rel] = true
		rec, had := in.index[lf.Rel]
		switch lf.Status {
		case statusUnchanged:
			if in.metadataChanged && had && rec.ImageID != "" {
				p.Ops = append(p.Ops, Op{Kind: OpUpdate, Path: lf.Rel, ImageID: rec.ImageID, SHA256: rec.SHA256,
					Size: rec.Size, Reason: "metadata changed", stat: lf.Stat, rec: rec})
				continue
			}
			p.Unchanged++
			continue
		case statusParked:
			p.Parked = append(p.Parked, FileError{Path: lf.Rel, Reason: lf.Reason, Err: errors.New(lf.Reason)})
			continue
		case statusSkipped:
			p.Skipped = append(p.Skipped, Skip{Path: lf.Rel, Reason: lf.Reason})
			continue
		case statusUnreadable:
			p.Failed = append(p.Failed, FileError{Path: lf.Rel, Reason: reasonFor(lf.Err), Err: lf.Err})
			continue
		case statusChanging:
			p.Changing = append(p.Changing, lf.Rel)
			continue
		case statusRefused:
			p.refuse(lf, rec, lf.Class, lf.Err)
			continue
		}

		id, err := in.scheme.ID(lf.Rel, lf.SHA256)
		if err != nil {
			p.refuse(lf, rec, classID, err)
			continue
		}
		if _, err := buildMetadata(in.static, lf.Rel, lf.SHA256, lf.Stat.Size); err != nil {
			p.refuse(lf, rec, classMetadata, err)
			continue
		}
		op := Op{Path: lf.Rel, ImageID: id, SHA256: lf.SHA256, Size: lf.Stat.Size, stat: lf.Stat, rec: rec}
		// Under a scheme whose IDs the API generates (id == ""), the image the record
		// names is the file's image whatever its ID.
		current := rec.ImageID == id || id == ""
		switch {
		case !had || rec.ImageID == "":
			op.Kind, op.Reason = OpUpload, "new file"
			uploads = append(uploads, op)
			continue
		case rec.SHA256 == lf.SHA256 && current && rec.State != store.StatePending:
			// Same content as the image: only the stat moved (touch, copy-back,
			// a parked failure whose old image is still current).
			if in.metadataChanged {
				op.Kind, op.Reason, op.ImageID = OpUpdate, "metadata changed", rec.ImageID
				p.Ops = append(p.Ops, op)
				continue
			}
			p.Unchanged++
			r := rec
			setStat(&r, lf.Stat)
			r.State, r.LastError, r.ErrorClass, r.Attempts = store.StateSynced, "", "", 0
			p.local = append(p.local, localOp{kind: localPut, path: lf.Rel, record: r})
			continue
		case rec.ImageID == id && in.scheme.StableID():
			op.Kind, op.Reason = OpReplace, "content changed"
			if rec.State == store.StatePending {
				op.Reason = "file changed while it was uploaded"
			}
		default:
			op.Kind, op.Reason = OpReplace, "content changed"
			op.OldImageID = rec.ImageID
		}
		p.Ops = append(p.Ops, op)
	}

	// Records with no file: deletes, paired with new files of the same content as moves.
	var gone []store.Record
	for rel, rec := range in.index {
		if seen[rel] || underAny(rel, in.unseen) {
			continue
		}
		gone = append(gone, rec)
	}
	slices.SortFunc(gone, func(a, b store.Record) int { return cmp.Compare(a.Path, b.Path) })
	bySum := make(map[string][]store.Record)
	for _, rec := range gone {
		// In keep mode nothing is deleted remotely, so a rename is an upload and the old
		// image simply stays.
		if !in.keep && rec.ImageID != "" && rec.SHA256 != "" && rec.State != store.StatePending {
			bySum[rec.SHA256] = append(bySum[rec.SHA256], rec)
		}
	}
	moved := make(map[string]bool)
	slices.SortFunc(uploads, func(a, b Op) int { return cmp.Compare(a.Path, b.Path) })
	for _, op := range uploads {
		if cands := bySum[op.SHA256]; len(cands) > 0 {
			old := cands[0]
			bySum[op.SHA256] = cands[1:]
			moved[old.Path] = true
			op.Kind, op.OldPath, op.OldImageID = OpMove, old.Path, old.ImageID
			op.Reason = "renamed from " + old.Path
			if op.ImageID == "" {
				// Generated IDs do not name the path: the image stays, only its
				// metadata is patched to the new path.
				op.ImageID = old.ImageID
				op.Reason += " (metadata patched)"
			}
		}
		p.Ops = append(p.Ops, op)
	}
	for _, rec := range gone {
		switch {
		case moved[rec.Path]:
		case rec.ImageID == "" || in.keep:
			p.local = append(p.local, localOp{kind: localForget, path: rec.Path})
		default:
			p.Ops = append(p.Ops, Op{Kind: OpDelete, Path: rec.Path, ImageID: rec.ImageID,
				SHA256: rec.SHA256, Size: rec.Size, Reason: "file removed", rec: rec})
			p.Deletes++
		}
	}

	slices.SortStableFunc(p.Ops, func(a, b Op) int {
		return cmp.Or(cmp.Compare(opOrder(a.Kind), opOrder(b.Kind)), cmp.Compare(a.Path, b.Path))
	})
	slices.SortFunc(p.Failed, func(a, b FileError) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.Parked, func(a, b FileError) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.Skipped, func(a, b Skip) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.local, func(a, b localOp) int { return cmp.Compare(a.path, b.path) })
	slices.Sort(p.Changing)
	return p
}

// refuse records a permanent per-file refusal. The record keeps the image ID and hash of
// an earlier version, whose image stays published until the file is fixed or removed.
func (p *Plan) refuse(lf localFile, rec store.Record, class string, err error) {
	p.Failed = append(p.Failed, FileError{Path: lf.Rel, Reason: err.Error(), Err: err})
	r := rec
	r.Path = lf.Rel
	setStat(&r, lf.Stat)
	r.State, r.ErrorClass, r.LastError = store.StateFailed, class, err.Error()
	p.local = append(p.local, localOp{kind: localPut, path: lf.Rel, record: r})
}

func opOrder(k OpKind) int {
	if k == OpDelete {
		return 1
	}
	return 0
}

func underAny(rel string, dirs []string) bool {
	for _, d := range dirs {
		if underOrAt(rel, d) {
			return true
		}
	}
	return false
}

func setStat(r *store.Record, st fileStat) {
	r.Size, r.ModTime, r.ChangeTime, r.Inode = st.Size, st.ModTime, st.ChangeTime, st.Inode
}
