package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// fileStat is what decides, without reading a file, that it has not changed since it was
// indexed.
type fileStat struct {
	Size       int64
	ModTime    int64 // unix ns
	ChangeTime int64 // unix ns; 0 where the platform has none
	Inode      uint64
}

func statOf(fi fs.FileInfo) fileStat {
	ctime, ino, _ := sysStat(fi)
	return fileStat{Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), ChangeTime: ctime, Inode: ino}
}

// same reports whether two stats of one path show no write in between. Size and
// mtime are enough to notice a write in progress; ctime and inode also catch writes that
// restore the mtime and editors' rename-over saves.
func (a fileStat) same(b fileStat) bool { return a == b }

// scanStatus is what the scan concluded about one path.
type scanStatus int

const (
	// statusRead: the content was read; SHA256 is set and pre-flight passed.
	statusRead scanStatus = iota
	// statusUnchanged: the stat matches a synced record; the content was not read.
	statusUnchanged
	// statusParked: the stat matches a record that failed permanently; not read.
	statusParked
	// statusRefused: the file can never be uploaded as it is (pre-flight or ID rule).
	statusRefused
	// statusUnreadable: opening or reading failed; retried next pass, not recorded.
	statusUnreadable
	// statusSkipped: not a regular file.
	statusSkipped
	// statusChanging: the file changed while it was read; it is looked at again later.
	statusChanging
)

// localFile is one path the scan saw.
type localFile struct {
	Rel    string
	Stat   fileStat
	Status scanStatus
	SHA256 string
	// Class and Err are set for statusRefused (Class is the record's ErrorClass) and for
	// statusUnreadable; Reason for statusSkipped and statusParked.
	Class  string
	Err    error
	Reason string
}

// Error classes recorded in store.Record.ErrorClass.
const (
	classPreflight = "preflight" // refused by pre-flight checks; parked until the file changes
	classID        = "id"        // the path cannot be an image ID; parked
	classIDTaken   = "id-taken"  // another file of ours holds the same image ID; parked while it does
	classMetadata  = "metadata"  // metadata does not fit; parked
	classForeign   = "foreign"   // the ID belongs to an image we do not own; parked
	classPermanent = "permanent" // the API refused the call; parked
	classTransient = "transient" // retried with backoff
)

func parkedClass(class string) bool { return class != "" && class != classTransient }

// scanResult is the local side of a pass.
type scanResult struct {
	Files []localFile
	// Unseen holds relative directories ("" for the root) whose subtree could not be listed
	// completely; index records under them are neither deleted nor otherwise touched.
	Unseen []string
	// Errors are the listing failures behind Unseen.
	Errors []FileError
}

// scope is the part of the folder a pass looks at: everything, or the subtrees at a set of
// hint paths.
type scope struct {
	all   bool
	paths []string // cleaned, slash-separated, none under another
}

func fullScope() scope { return scope{all: true} }

// hintScope turns watcher hints into a scope. Hints under another hint are dropped, since a
// hint covers its whole subtree.
func hintScope(hints []string) scope {
	var ps []string
	for _, h := range hints {
		h = cleanRel(h)
		if h == "" {
			return fullScope()
		}
		ps = append(ps, h)
	}
	slices.Sort(ps)
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && underOrAt(p, out[n-1]) {
			continue
		}
		out = append(out, p)
	}
	return scope{paths: slices.Clip(out)}
}

func cleanRel(p string) string {
	p = path.Clean("/" + filepath.ToSlash(p))
	return strings.TrimPrefix(p, "/")
}

// underOrAt reports whether rel is dir or inside it; dir "" is the root.
func underOrAt(rel, dir string) bool {
	return dir == "" || rel == dir || strings.HasPrefix(rel, dir+"/")
}

func (sc scope) contains(rel string) bool {
	if sc.all {
		return true
	}
	for _, p := range sc.paths {
		if underOrAt(rel, p) {
			return true
		}
	}
	return false
}

// scanner reads the local state of a scope.
type scanner struct {
	root   string
	ignore func(rel string, isDir bool) bool
	scheme IDScheme
	limits preflight.Limits
	index  map[string]store.Record
	// idOwners maps image IDs to the synced paths holding them, built on first need.
	idOwners map[string]string
	workers  int
	// onRead is called before each content read (tests count reads through it).
	onRead func(rel string)
	event  func(Event)
}

// scan lists the scope, then reads the files whose stat differs from the index, in
// parallel because hashing is most of a first pass.
func (s *scanner) scan(ctx context.Context, sc scope) (scanResult, error) {
	var res scanResult
	starts := sc.paths
	if sc.all {
		starts = []string{""}
	}
	for _, p := range starts {
		if err := s.walk(ctx, p, &res); err != nil {
			return res, err
		}
	}
	if err := s.readAll(ctx, res.Files); err != nil {
		return res, err
	}
	return res, nil
}

func (s *scanner) abs(rel string) string {
	if rel == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(rel))
}

// walk lists the subtree at rel into res.
func (s *scanner) walk(ctx context.Context, rel string, res *scanResult) error {
	if rel != "" {
		if link, err := s.linkedAncestor(rel); err != nil || link != "" {
			// Lstat would follow a symlinked directory above rel and read outside the
			// root; the full walk never descends into one, so neither does a hint.
			s.unseen(res, rel, err)
			return nil
		}
		fi, err := os.Lstat(s.abs(rel))
		switch {
		case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
			// Gone (or an ancestor is now a file): nothing to list, and records under it
			// are deletes.
			return nil
		case err != nil:
			s.unseen(res, rel, err)
			return nil
		case s.ignore(rel, fi.IsDir()):
			s.unseen(res, rel, nil)
			return nil
		case !fi.IsDir():
			s.add(res, rel, fi)
			return nil
		}
	}
	return filepath.WalkDir(s.abs(rel), func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		r, rerr := filepath.Rel(s.root, p)
		if rerr != nil {
			return fmt.Errorf("scan %s: %w", p, rerr)
		}
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if err != nil {
			// WalkDir reports a directory it could not read (after visiting it) or an
			// entry it could not stat; either way that part of the tree was not seen.
			if r == "" && p == s.root && d == nil {
				return fmt.Errorf("scan %s: %w", s.root, err)
			}
			s.unseen(res, r, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if r == "" {
			return nil
		}
		if r == markerName {
			return nil
		}
		if s.ignore(r, d.IsDir()) {
			// An ignored path is out of the folder: its records are left alone rather
			// than deleted, so adding an ignore pattern never deletes images.
			s.unseen(res, r, nil)
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			s.unseen(res, r, err)
			return nil
		}
		s.add(res, r, fi)
		return nil
	})
}

// linkedAncestor returns the first directory above rel that is a symlink, or "" if there is
// none. A missing ancestor, or one that is now a file, is not reported: rel is gone.
func (s *scanner) linkedAncestor(rel string) (string, error) {
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		if j < 0 {
			return "", nil
		}
		dir := rel[:i+j]
		fi, err := os.Lstat(s.abs(dir))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", nil
		case err != nil:
			return dir, err
		case fi.Mode()&fs.ModeSymlink != 0:
			return dir, nil
		case !fi.IsDir():
			return "", nil
		}
		i += j + 1
	}
}

func (s *scanner) unseen(res *scanResult, rel string, err error) {
	res.Unseen = append(res.Unseen, rel)
	if err != nil {
		res.Errors = append(res.Errors, FileError{Path: rel, Reason: reasonFor(err), Err: fmt.Errorf("scan %s: %w", rel, err)})
	}
}

// reasonFor is the short reason shown for an I/O error.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, fs.ErrNotExist):
		return "file vanished"
	}
	return err.Error()
}

// add classifies one non-directory entry without reading it.
func (s *scanner) add(res *scanResult, rel string, fi fs.FileInfo) {
	lf := localFile{Rel: rel, Stat: statOf(fi)}
	switch mode := fi.Mode(); {
	case mode&fs.ModeSymlink != 0:
		lf.Status, lf.Reason = statusSkipped, "symbolic link (not followed)"
	case mode&fs.ModeNamedPipe != 0:
		lf.Status, lf.Reason = statusSkipped, "named pipe, not a regular file"
	case mode&fs.ModeSocket != 0:
		lf.Status, lf.Reason = statusSkipped, "socket, not a regular file"
	case mode&fs.ModeDevice != 0:
		lf.Status, lf.Reason = statusSkipped, "device, not a regular file"
	case !mode.IsRegular():
		lf.Status, lf.Reason = statusSkipped, "not a regular file"
	default:
		lf.Status = statusRead // provisional: readAll decides
		if rec, ok := s.index[rel]; ok && lf.Stat.same(recordStat(rec)) {
			switch {
			case rec.State == store.StateSynced:
				lf.Status, lf.SHA256 = statusUnchanged, rec.SHA256
			case rec.State == store.StateFailed && rec.ErrorClass == classIDTaken && !s.idHeldByOther(rel):
				// The twin that held the ID is gone: this file may have it now. Staying
				// parked would leave it unpublished for good once the twin's image is deleted.
			case rec.State == store.StateFailed && parkedClass(rec.ErrorClass):
				lf.Status, lf.Reason, lf.Class = statusParked, rec.LastError, rec.ErrorClass
			}
		}
		if lf.Status == statusRead && s.scheme.StableID() {
			// The ID does not depend on the content, so a path that can never be an ID is
			// refused without reading the file.
			if _, err := s.scheme.ID(rel, ""); err != nil {
				lf.Status, lf.Class, lf.Err = statusRefused, classID, err
			}
		}
	}
	res.Files = append(res.Files, lf)
}

// idHeldByOther reports whether another synced path in the index holds the image ID that
// rel maps to (two names equal after Unicode normalization). Under a scheme whose ID follows
// the content it cannot tell, and says yes: the file stays parked until it changes.
func (s *scanner) idHeldByOther(rel string) bool {
	if !s.scheme.StableID() {
		return true
	}
	id, err := s.scheme.ID(rel, "")
	if err != nil {
		return true
	}
	if s.idOwners == nil {
		s.idOwners = make(map[string]string)
		for p, r := range s.index {
			if r.State == store.StateSynced && r.ImageID != "" {
				s.idOwners[r.ImageID] = p
			}
		}
	}
	owner, ok := s.idOwners[id]
	return ok && owner != rel
}

func recordStat(r store.Record) fileStat {
	return fileStat{Size: r.Size, ModTime: r.ModTime, ChangeTime: r.ChangeTime, Inode: r.Inode}
}

// readAll reads every file still marked statusRead, with s.workers readers.
func (s *scanner) readAll(ctx context.Context, files []localFile) error {
	work := make(chan *localFile)
	var wg sync.WaitGroup
	for range max(s.workers, 1) {
		wg.Go(func() {
			for lf := range work {
				s.read(lf)
			}
		})
	}
	var err error
	for i := range files {
		if files[i].Status != statusRead {
			continue
		}
		if err = ctx.Err(); err != nil {
			break
		}
		work <- &files[i]
	}
	close(work)
	wg.Wait()
	return err
}

// read checks and hashes one file through a single open: pre-flight reads the headers
// through ReaderAt, then the whole file is streamed into SHA-256. A stat of the open file
// before and after tells whether a writer was active meanwhile.
func (s *scanner) read(lf *localFile) {
	if s.onRead != nil {
		s.onRead(lf.Rel)
	}
	if s.event != nil {
		s.event(Event{Kind: EventScan, Path: lf.Rel, Bytes: lf.Stat.Size})
	}
	f, err := os.OpenFile(s.abs(lf.Rel), os.O_RDONLY|openFlags, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			lf.Status = statusChanging
			return
		}
		lf.Status, lf.Err = statusUnreadable, err
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		lf.Status, lf.Err = statusUnreadable, err
		return
	}
	if !fi.Mode().IsRegular() {
		lf.Status, lf.Reason = statusSkipped, "not a regular file"
		return
	}
	before := statOf(fi)
	if !before.same(lf.Stat) {
		lf.Status = statusChanging
		return
	}
	if _, err := preflight.Check(f, before.Size, s.limits); err != nil {
		if preflight.ReasonOf(err) == "" {
			lf.Status, lf.Err = statusUnreadable, err
			return
		}
		lf.Status, lf.Class, lf.Err = statusRefused, classPreflight, err
		return
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, before.Size)); err != nil {
		lf.Status, lf.Err = statusUnreadable, err
		return
	}
	fi, err = f.Stat()
	if err != nil {
		lf.Status, lf.Err = statusUnreadable, err
		return
	}
	if after := statOf(fi); !after.same(before) {
		lf.Status = statusChanging
		return
	}
	lf.SHA256 = hex.EncodeToString(h.Sum(nil))
}
