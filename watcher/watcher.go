package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options tune a Watcher. The zero value gives the defaults.
type Options struct {
	// Settle is the quiet time before a path is handed on; default 2s.
	Settle time.Duration
	// MaxWait bounds how long a path that keeps changing is held; default 30s, or Settle if
	// that is longer. It must be at least Settle.
	MaxWait time.Duration
	// Ignore decides which paths are ignored; nil means the defaults only.
	Ignore *Matcher
	// FollowSymlinks makes the watcher descend into symlinked directories (never twice into
	// the same directory, so never into a loop). By default a symlink is reported as a
	// path of its own and not descended into.
	FollowSymlinks bool
	// MaxPending is the number of distinct pending paths beyond which the batch collapses
	// into a single Rescan; default 10000.
	MaxPending int
	// RootPoll is how often the root is checked for having been removed, replaced or
	// unmounted, and, once gone, for having come back; default 1s.
	RootPoll time.Duration
	// Logger receives warnings about lost events and watch limits; nil discards.
	Logger *slog.Logger
}

// Batch is a set of hints handed to the consumer.
type Batch struct {
	// Paths are sorted, de-duplicated relative paths (files or directories) at or under
	// which something may have changed, including paths that no longer exist. No path is
	// below another path of the same batch.
	Paths []string
	// Rescan means everything may have changed: the event queue overflowed, too many paths
	// were pending, a watch could not be added (watch limit), or the root itself was
	// removed, replaced or came back.
	Rescan bool
}

// Watcher watches one folder tree. Create it with New and start it with Run.
type Watcher struct {
	root string // absolute, cleaned, OS separators
	opts Options
	log  *slog.Logger

	// addHook, if set, runs before every fsnotify Add and can fail it: tests use it to
	// stand in for limits they cannot reach on a shared machine.
	addHook func(abs string) error
}

// New validates root and opts. It starts nothing.
func New(root string, opts Options) (*Watcher, error) {
	if root == "" {
		return nil, errors.New("watcher: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("watcher: resolve root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("watcher: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watcher: root %s is not a directory", abs)
	}

	if opts.Settle < 0 || opts.MaxWait < 0 || opts.MaxPending < 0 || opts.RootPoll < 0 {
		return nil, errors.New("watcher: negative Settle, MaxWait, MaxPending or RootPoll")
	}
	if opts.Settle == 0 {
		opts.Settle = 2 * time.Second
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = max(30*time.Second, opts.Settle)
	}
	if opts.MaxWait < opts.Settle {
		return nil, fmt.Errorf("watcher: MaxWait %v is shorter than Settle %v", opts.MaxWait, opts.Settle)
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = 10000
	}
	if opts.RootPoll == 0 {
		opts.RootPoll = time.Second
	}
	if opts.Ignore == nil {
		opts.Ignore = &Matcher{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{root: abs, opts: opts, log: log.With("root", abs)}, nil
}

// Run watches the tree and sends batches on out until ctx is done, then returns ctx.Err().
//
// It adds a watch to every directory that is not ignored (fsnotify is not recursive), and to
// each directory that appears later; a new directory is itself handed on, so the files
// created in it before its watch existed are found by whoever walks it. Run never blocks on
// out: while the consumer is busy, paths accumulate.
//
// Run returns early, with an error, only if watching cannot work at all: out is nil, or
// fsnotify cannot be started (for example the inotify instance limit,
// fs.inotify.max_user_instances, is reached). Everything else (watch limit, overflow, the root disappearing) is logged and
// turned into a Rescan, and Run carries on. No Rescan is sent at start: the caller's first
// full scan, started after Run, covers what happened before.
func (w *Watcher) Run(ctx context.Context, out chan<- Batch) error {
	if out == nil {
		return errors.New("watcher: Run needs a channel to send batches on")
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: start fsnotify: %w%s", w.root, err, instanceLimitHint(err))
	}
	defer fw.Close()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	changes := make(chan change)
	emit := func(c change) bool {
		select {
		case changes <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel below: defers run last-in, first-out
	defer cancel()

	agg := newAggregator(w.opts.Settle, w.opts.MaxWait, w.opts.MaxPending)
	wg.Go(func() { agg.run(ctx, changes, out, w.log) })

	// Errors are drained on a goroutine of their own: fsnotify can send one while holding
	// the lock that Add and Remove take, so reading them from the loop below, which calls
	// Add and Remove, could deadlock.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				fsnotifyError(w.log, err)
				emit(change{rescan: true})
			}
		}
	})

	add := fw.Add
	if w.addHook != nil {
		add = func(abs string) error {
			if err := w.addHook(abs); err != nil {
				return err
			}
			return fw.Add(abs)
		}
	}
	t := newTree(w, add, fw.Remove)
	t.emit = emit
	t.start(ctx)

	poll := time.NewTicker(w.opts.RootPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return parent.Err()
		case ev, ok := <-fw.Events:
			if !ok {
				return fmt.Errorf("watch %s: fsnotify closed its event channel", w.root)
			}
			t.event(ctx, ev)
		case <-poll.C:
			t.checkRoot(ctx)
		}
	}
}

// tree is the OS plumbing: it keeps the set of watched directories in step with the file
// system and turns fsnotify events into changes. It is owned by Run's goroutine.
type tree struct {
	root   string
	opts   *Options
	log    *slog.Logger
	add    func(abs string) error // fsnotify's Add; a field so tests can inject failures
	remove func(abs string) error
	emit   func(change) bool

	dirs    map[string]fileID              // watched directories, by relative path ("" is the root)
	ids     map[fileID]string              // the same, by identity, so no directory is watched twice
	ignored map[string]bool                // ignored directories seen, so their removal is recognised
	kids    map[string]map[string]struct{} // directory → its watched or ignored subdirectories
	lost    bool                           // the root is gone or replaced; polling for it to return
	limit   bool                           // a watch limit was hit and logged since the last full walk
}

func newTree(w *Watcher, add, remove func(string) error) *tree {
	return &tree{
		root:    w.root,
		opts:    &w.opts,
		log:     w.log,
		add:     add,
		remove:  remove,
		emit:    func(change) bool { return true },
		dirs:    make(map[string]fileID),
		ids:     make(map[fileID]string),
		ignored: make(map[string]bool),
		kids:    make(map[string]map[string]struct{}),
	}
}

func (t *tree) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return filepath.Join(t.root, filepath.FromSlash(rel))
}

// rel returns name relative to the root, slash-separated; ok is false for a name outside it.
func (t *tree) rel(name string) (string, bool) {
	name = filepath.Clean(name)
	if name == t.root {
		return "", true
	}
	prefix := t.root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	r, ok := strings.CutPrefix(name, prefix)
	if !ok || r == "" {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// start adds the initial watches. If the root is already gone, the poll finds it later.
func (t *tree) start(ctx context.Context) {
	if _, err := os.Stat(t.root); err != nil {
		t.lose(fmt.Sprintf("root unavailable: %v", err))
		return
	}
	if t.walk(ctx, "") {
		t.limit = false
	} else {
		t.emit(change{rescan: true})
	}
}

// walk adds watches to dir (relative) and every directory below it that is not ignored.
// It returns false if a watch could not be added for a reason that loses events (the watch
// limit, or an unexpected error); the caller then asks for a rescan.
func (t *tree) walk(ctx context.Context, rel string) bool {
	complete := true
	var visit func(rel string, fi fs.FileInfo)
	visit = func(rel string, fi fs.FileInfo) {
		if ctx.Err() != nil {
			return // shutting down; a huge tree must not hold Run up
		}
		id, idOK := identity(t.abs(rel), fi)
		if idOK {
			if other, seen := t.ids[id]; seen && other != rel {
				if _, still := t.dirs[other]; still {
					t.log.Debug("directory already watched under another path; not descending",
						"path", rel, "watched_as", other)
					return
				}
			}
		}
		if err := t.add(t.abs(rel)); err != nil {
			if !t.addFailed(rel, err) {
				complete = false
			}
			return
		}
		t.dirs[rel] = id
		if idOK {
			t.ids[id] = rel
		}
		delete(t.ignored, rel)
		t.link(rel)

		entries, err := os.ReadDir(t.abs(rel))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				// The watch is in place, so later events still arrive; what is already
				// inside is for the consumer's walk, which will meet the same error.
				t.log.Warn("cannot list directory; its contents are not watched", "path", rel, "err", err)
			}
			return
		}
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + child
			}
			isDir := e.IsDir()
			var cfi fs.FileInfo
			if e.Type()&fs.ModeSymlink != 0 && t.opts.FollowSymlinks {
				if sfi, err := os.Stat(t.abs(child)); err == nil && sfi.IsDir() {
					isDir, cfi = true, sfi
				}
			}
			if t.opts.Ignore.Match(child, isDir) {
				if isDir {
					t.ignored[child] = true
					t.link(child)
				}
				continue
			}
			if !isDir {
				continue
			}
			if cfi == nil {
				if cfi, err = e.Info(); err != nil {
					continue // gone already; its parent's watch reports that
				}
			}
			visit(child, cfi)
		}
	}

	fi, err := os.Stat(t.abs(rel))
	if err != nil || !fi.IsDir() {
		return true // gone or replaced by a file before we got here; events say so
	}
	if rel != "" && !t.opts.FollowSymlinks {
		if lfi, err := os.Lstat(t.abs(rel)); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return true
		}
	}
	visit(rel, fi)
	return complete
}

// addFailed handles a failed watch. It returns true if nothing is lost by it.
func (t *tree) addFailed(rel string, err error) bool {
	switch {
	case errors.Is(err, fs.ErrNotExist), isNotDir(err):
		return true // removed while we walked; the parent's watch reports it
	case isWatchLimit(err):
		if !t.limit {
			t.limit = true
			t.log.Error(watchLimitMessage(err), "path", rel, "err", err)
		}
		return false
	case errors.Is(err, fs.ErrPermission):
		t.log.Warn("no permission to watch directory; changes in it are found by the periodic rescan only",
			"path", rel, "err", err)
		return true // the consumer cannot read it either
	default:
		t.log.Warn("cannot watch directory; changes in it are found by the periodic rescan only",
			"path", rel, "err", err)
		return false
	}
}

// unwatch drops the watches for dir and everything below it, after it was removed or moved
// away. Watches of a moved directory would otherwise keep reporting under the old name.
func (t *tree) unwatch(rel string) {
	if rel == "" {
		for d := range t.dirs {
			_ = t.remove(t.abs(d))
		}
		clear(t.dirs)
		clear(t.ids)
		clear(t.ignored)
		clear(t.kids)
		return
	}
	var drop func(d string)
	drop = func(d string) {
		for k := range t.kids[d] {
			drop(k)
		}
		delete(t.kids, d)
		delete(t.ignored, d)
		if id, ok := t.dirs[d]; ok {
			// The kernel may have dropped it already; fsnotify then says ErrNonExistentWatch.
			_ = t.remove(t.abs(d))
			delete(t.dirs, d)
			if t.ids[id] == d {
				delete(t.ids, id)
			}
		}
	}
	drop(rel)
	t.unlink(rel)
}

// link records dir as a child of its parent, so unwatch finds a subtree without scanning
// every watched directory (rm -rf of a big tree removes each directory in turn).
func (t *tree) link(rel string) {
	if rel == "" {
		return
	}
	p := parentDir(rel)
	set := t.kids[p]
	if set == nil {
		set = make(map[string]struct{})
		t.kids[p] = set
	}
	set[rel] = struct{}{}
}

func (t *tree) unlink(rel string) {
	p := parentDir(rel)
	if set := t.kids[p]; set != nil {
		delete(set, rel)
		if len(set) == 0 {
			delete(t.kids, p)
		}
	}
}

func parentDir(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func (t *tree) event(ctx context.Context, ev fsnotify.Event) {
	if t.lost {
		return // stale events from before the root went away
	}
	rel, ok := t.rel(ev.Name)
	if !ok {
		return
	}
	if rel == "" {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			t.lose("root removed or renamed")
		}
		return // attribute changes of the root itself say nothing about its contents
	}

	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		_, wasDir := t.dirs[rel]
		if t.ignored[rel] || t.opts.Ignore.Match(rel, wasDir) {
			delete(t.ignored, rel)
			t.unlink(rel)
			return
		}
		if wasDir {
			t.unwatch(rel)
			if ev.Has(fsnotify.Rename) {
				// A directory renamed within the folder shows up as Rename (old name) and
				// Create (new name), each settling on its own. Handing on the parent keeps
				// both halves in one batch, so the syncer sees a move of the subtree rather
				// than a mass delete (which would trip its delete guard) and a re-upload.
				if p := parentDir(rel); p != "" {
					t.emit(change{rel: p})
				} else {
					t.emit(change{rescan: true})
				}
				return
			}
		}
		t.emit(change{rel: rel})
		return
	}

	if ev.Has(fsnotify.Create) {
		isDir := false
		lfi, err := os.Lstat(ev.Name)
		if err == nil {
			isDir = lfi.IsDir()
			if lfi.Mode()&fs.ModeSymlink != 0 && t.opts.FollowSymlinks {
				if sfi, err := os.Stat(ev.Name); err == nil {
					isDir = sfi.IsDir()
				}
			}
		}
		if t.opts.Ignore.Match(rel, isDir) {
			if isDir {
				t.ignored[rel] = true
				t.link(rel)
			}
			return
		}
		if isDir {
			if _, watched := t.dirs[rel]; watched {
				// A directory came back under a name we still watch (its old watch was
				// not reported gone yet): start afresh so no stale watch lingers.
				t.unwatch(rel)
			}
			if !t.walk(ctx, rel) {
				t.emit(change{rescan: true})
			}
		}
		t.emit(change{rel: rel})
		return
	}

	// Write or Chmod.
	_, isDir := t.dirs[rel]
	if isDir && !ev.Has(fsnotify.Chmod) {
		// kqueue and Windows send Write for a directory whose entries changed; the entries
		// get events of their own, and handing on the directory would walk all of it.
		return
	}
	if t.opts.Ignore.Match(rel, isDir) {
		return
	}
	t.emit(change{rel: rel})
}

// fsnotifyError logs an error from fsnotify's Errors channel; every one of them means
// events may have been lost, so the caller asks for a rescan.
func fsnotifyError(log *slog.Logger, err error) {
	switch {
	case errors.Is(err, fsnotify.ErrEventOverflow):
		log.Warn("file system event queue overflowed; asking for a full rescan "+
			"(on Linux, raising the sysctl fs.inotify.max_queued_events makes this rarer)", "err", err)
	case isWatchLimit(err):
		log.Error(watchLimitMessage(err), "err", err)
	default:
		log.Warn("file system watcher error; asking for a full rescan", "err", err)
	}
}

// lose forgets every watch after the root went away, and starts polling for its return.
func (t *tree) lose(why string) {
	t.log.Warn("watched folder is gone; asking for a full rescan and waiting for it to come back",
		"reason", why)
	t.unwatch("")
	t.lost = true
	t.emit(change{rescan: true})
}

// checkRoot runs on every poll tick. While the root is watched it makes sure the path still
// leads to the directory we watch (a parent renamed, an unmount, a directory swapped in
// place give no event on the root itself). While it is lost it waits for it to come back.
func (t *tree) checkRoot(ctx context.Context) {
	fi, err := os.Stat(t.root)
	if !t.lost {
		switch {
		case err != nil:
			t.lose(fmt.Sprintf("root unavailable: %v", err))
		case !fi.IsDir():
			t.lose("root is no longer a directory")
		default:
			if id, ok := identity(t.root, fi); ok {
				if want, watched := t.dirs[""]; watched && id != want {
					t.lose("root replaced by another directory")
					t.checkRoot(ctx) // and pick up the new one right away
				}
			}
		}
		return
	}
	if err != nil || !fi.IsDir() {
		return
	}
	t.lost = false
	if t.walk(ctx, "") {
		t.limit = false
	}
	if _, ok := t.dirs[""]; !ok {
		t.lost = true // vanished again, or cannot be watched; keep polling
		return
	}
	t.log.Info("watched folder is back; asking for a full rescan")
	t.emit(change{rescan: true})
}
