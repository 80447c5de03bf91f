package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests, and the scripts in testdata/scenarios, run the real fsnotify on real directories. They never sleep: they poll the
// batches with a generous deadline, and prove that something does not arrive by making a
// later change (a sentinel) arrive first.

const deadline = 10 * time.Second

func fastOptions() Options {
	return Options{Settle: 50 * time.Millisecond, MaxWait: time.Second, RootPoll: 20 * time.Millisecond}
}

type harness struct {
	t    *testing.T
	root string
	out  chan Batch
	logs *syncBuffer

	seen     map[string]int // path → number of batches it was in, since the last clear
	rescans  int
	batches  int
	sentinel int
}

// startWatcher runs a Watcher on root until the test ends, and waits until its watches are
// in place.
func startWatcher(t *testing.T, root string, opts Options, hook func(string) error) *harness {
	t.Helper()
	h := &harness{t: t, root: root, out: make(chan Batch), logs: &syncBuffer{}, seen: map[string]int{}}
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.addHook = hook
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, h.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", h.logs.String())
		}
	})
	h.ready()
	return h
}

// ready writes a sentinel file until it is reported: after that the root's watch exists.
// Each attempt uses a new name, so retries do not postpone the earlier ones.
func (h *harness) ready() {
	h.t.Helper()
	var names []string
	anySeen := func() bool {
		for _, n := range names {
			if h.seen[n] > 0 {
				return true
			}
		}
		return false
	}
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		h.sentinel++
		names = append(names, fmt.Sprintf("sentinel-%d.jpg", h.sentinel))
		h.write(names[len(names)-1], "x")
		if h.poll(200*time.Millisecond, anySeen) {
			h.clear()
			return
		}
	}
	h.t.Fatalf("none of the sentinels %q was reported", names)
}

// barrier writes a new sentinel and waits for it. A path that was changed before the
// barrier and has not been reported by then is not going to be: its settle time ended
// before the sentinel's.
func (h *harness) barrier() {
	h.t.Helper()
	h.sentinel++
	name := fmt.Sprintf("sentinel-%d.jpg", h.sentinel)
	h.write(name, "x")
	h.waitFor("sentinel "+name, func() bool { return h.seen[name] > 0 })
}

func (h *harness) clear() {
	clear(h.seen)
	h.rescans = 0
	h.batches = 0
}

// poll takes batches until cond holds or d has passed.
func (h *harness) poll(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !cond() {
		select {
		case b := <-h.out:
			h.take(b)
		case <-timer.C:
			return cond()
		}
	}
	return true
}

func (h *harness) take(b Batch) {
	h.t.Helper()
	h.batches++
	if b.Rescan {
		h.rescans++
	}
	if !slices.IsSorted(b.Paths) {
		h.t.Errorf("batch paths not sorted: %q", b.Paths)
	}
	for i, p := range b.Paths {
		if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "./") || strings.Contains(p, `\`) {
			h.t.Errorf("malformed path %q in batch", p)
		}
		for _, q := range b.Paths[:i] {
			if p == q || strings.HasPrefix(p, q+"/") {
				h.t.Errorf("batch holds %q and %q, which covers it", q, p)
			}
		}
		h.seen[p]++
	}
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	if !h.poll(deadline, cond) {
		h.t.Fatalf("waited %v for %s; seen %v, %d rescans", deadline, what, keys(h.seen), h.rescans)
	}
}

// covered reports whether rel, or a directory above it, was reported.
func (h *harness) covered(rel string) bool {
	if h.seen[rel] > 0 {
		return true
	}
	for i := range len(rel) {
		if rel[i] == '/' && h.seen[rel[:i]] > 0 {
			return true
		}
	}
	return false
}

func (h *harness) waitCovered(rels ...string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%q to be covered", rels), func() bool {
		for _, r := range rels {
			if !h.covered(r) {
				return false
			}
		}
		return true
	})
}

// neverSeen checks, after a barrier, that no reported path is at or below any of rels.
func (h *harness) neverSeen(rels ...string) {
	h.t.Helper()
	h.barrier()
	for p := range h.seen {
		for _, r := range rels {
			if p == r || strings.HasPrefix(p, r+"/") {
				h.t.Errorf("%q was reported (matches %q)", p, r)
			}
		}
	}
}

func (h *harness) path(rel string) string { return filepath.Join(h.root, filepath.FromSlash(rel)) }

func (h *harness) write(rel, content string) {
	h.t.Helper()
	writeFile(h.t, h.path(rel), content)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.Mkdir(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCoalescesWrites(t *testing.T) {
	opts := fastOptions()
	opts.Settle, opts.MaxWait = 500*time.Millisecond, 5*time.Second
	h := startWatcher(t, t.TempDir(), opts, nil)
	f, err := os.Create(h.path("big.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := f.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("big.jpg", func() bool { return h.seen["big.jpg"] > 0 })
	h.barrier()
	// 101 events; only a stall of a whole Settle between two writes could split them.
	if n := h.seen["big.jpg"]; n > 3 {
		t.Errorf("big.jpg handed on %d times for one burst of writes", n)
	}
}

func TestMaxWaitForFileThatNeverSettles(t *testing.T) {
	opts := fastOptions()
	opts.Settle, opts.MaxWait = 300*time.Millisecond, 600*time.Millisecond
	h := startWatcher(t, t.TempDir(), opts, nil)

	f, err := os.Create(h.path("growing.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the workload: a write far more often than Settle, until told to stop
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f.Write([]byte("x"))
			}
		}
	}()
	start := time.Now()
	h.waitFor("growing.jpg while still being written", func() bool { return h.seen["growing.jpg"] > 0 })
	close(stop)
	<-done
	t.Logf("handed on after %v (MaxWait %v)", time.Since(start), opts.MaxWait)
}

func TestMaxPendingBecomesRescan(t *testing.T) {
	opts := fastOptions()
	opts.Settle, opts.MaxWait, opts.MaxPending = 500*time.Millisecond, 5*time.Second, 20
	h := startWatcher(t, t.TempDir(), opts, nil)
	for i := range 50 {
		h.write(fmt.Sprintf("f%02d.jpg", i), "x")
	}
	h.waitFor("rescan", func() bool { return h.rescans > 0 })
	if !strings.Contains(h.logs.String(), "max_pending=20") {
		t.Errorf("overflow not logged:\n%s", h.logs.String())
	}
}

func TestRootRemovedAndRecreated(t *testing.T) {
	root := filepath.Join(t.TempDir(), "folder")
	writeFile(t, filepath.Join(root, "sub", "a.jpg"), "x")
	h := startWatcher(t, root, fastOptions(), nil)

	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan after removal", func() bool { return h.rescans > 0 })

	h.clear()
	writeFile(t, filepath.Join(root, "sub", "b.jpg"), "x")
	h.waitFor("rescan after recreation", func() bool { return h.rescans > 0 })

	// Watching again, subdirectories included.
	h.clear()
	h.ready()
	h.write("sub/c.jpg", "x")
	h.waitFor("sub/c.jpg", func() bool { return h.seen["sub/c.jpg"] > 0 })
}

func TestRootRenamedAway(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "folder")
	writeFile(t, filepath.Join(root, "sub", "a.jpg"), "x")
	h := startWatcher(t, root, fastOptions(), nil)

	moved := filepath.Join(parent, "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan after rename", func() bool { return h.rescans > 0 })
	h.clear()
	writeFile(t, filepath.Join(moved, "sub", "stale.jpg"), "x") // must not show up

	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan after a new root appeared", func() bool { return h.rescans > 0 })
	h.clear()
	h.ready()
	h.neverSeen("sub")
}

func TestRootParentRenamed(t *testing.T) {
	// Renaming a parent of the root sends no event for the root: the poll notices that the
	// path no longer leads to the watched directory.
	top := t.TempDir()
	root := filepath.Join(top, "p", "folder")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	h := startWatcher(t, root, fastOptions(), nil)
	if err := os.Rename(filepath.Join(top, "p"), filepath.Join(top, "q")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan", func() bool { return h.rescans > 0 })
	h.clear()
	writeFile(t, filepath.Join(top, "q", "folder", "stale.jpg"), "x")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan when the path leads to a directory again", func() bool { return h.rescans > 0 })
	h.ready()
	h.neverSeen("stale.jpg")
}

func TestWatchLimit(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "full", "a.jpg"), "x")
	full := filepath.Join(root, "full")
	limited := filepath.Join(root, "later")
	hook := func(abs string) error {
		if abs == full || abs == limited {
			return fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC)
		}
		return nil
	}
	h := startWatcher(t, root, fastOptions(), hook)
	// ready() cleared what came before it; the start-up rescan may have been taken there,
	// so check the log for it and look for a rescan on the next failure.
	logs := h.logs.String()
	if !strings.Contains(logs, "fs.inotify.max_user_watches") || !strings.Contains(logs, "sysctl") {
		t.Errorf("watch limit at start not explained:\n%s", logs)
	}

	if err := os.Mkdir(limited, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("rescan for a directory that could not be watched", func() bool { return h.rescans > 0 })
}

func TestWatchLimitAtStartSendsRescan(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "full"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := New(root, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	w.addHook = func(abs string) error {
		if filepath.Base(abs) == "full" {
			return syscall.ENOSPC
		}
		return nil
	}
	out := make(chan Batch)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case b := <-out:
		if !b.Rescan {
			t.Errorf("first batch %+v, want a rescan", b)
		}
	case <-time.After(deadline):
		t.Fatal("no rescan after a watch failed at start")
	}
}

func TestSymlinks(t *testing.T) {
	tests := []struct {
		follow bool
		want   bool // a change in the target is reported under the link
	}{{false, false}, {true, true}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("follow=%v", tt.follow), func(t *testing.T) {
			root, target := t.TempDir(), t.TempDir()
			if err := os.Symlink(target, filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			// Loops back to the root and to the link's own target: the walk must end, and
			// no directory is watched twice.
			if err := os.Symlink(root, filepath.Join(target, "loop")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(target, "self")); err != nil {
				t.Fatal(err)
			}
			opts := fastOptions()
			opts.FollowSymlinks = tt.follow
			h := startWatcher(t, root, opts, nil)

			writeFile(t, filepath.Join(target, "in-target.jpg"), "x")
			if tt.want {
				h.waitFor("change through the link", func() bool { return h.seen["link/in-target.jpg"] > 0 })
			} else {
				h.neverSeen("link")
			}

			// A change in the root is reported once, under its own name.
			h.clear()
			h.write("top.jpg", "x")
			h.waitFor("top.jpg", func() bool { return h.seen["top.jpg"] > 0 })
			h.neverSeen("link/loop", "link/self")
		})
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.jpg")
	writeFile(t, file, "x")
	tests := []struct {
		name string
		root string
		opts Options
	}{
		{"empty root", "", Options{}},
		{"missing root", filepath.Join(dir, "missing"), Options{}},
		{"root is a file", file, Options{}},
		{"MaxWait below Settle", dir, Options{Settle: time.Second, MaxWait: time.Millisecond}},
		{"negative Settle", dir, Options{Settle: -1}},
		{"negative MaxPending", dir, Options{MaxPending: -1}},
	}
	for _, tt := range tests {
		if _, err := New(tt.root, tt.opts); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
	w, err := New(dir, Options{Settle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if w.opts.Settle != time.Minute || w.opts.MaxWait != time.Minute || w.opts.MaxPending != 10000 {
		t.Errorf("defaults: %+v", w.opts)
	}
	w, err = New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.opts.Settle != 2*time.Second || w.opts.MaxWait != 30*time.Second {
		t.Errorf("defaults: %+v", w.opts)
	}
}

func TestRunNilChannel(t *testing.T) {
	w, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background(), nil); err == nil {
		t.Fatal("Run with a nil channel did not fail")
	}
}

func TestRunStopsWithoutConsumer(t *testing.T) {
	// Nobody reads out: Run must still return promptly when ctx ends.
	root := t.TempDir()
	w, err := New(root, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, make(chan Batch)) }()
	for i := range 20 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("f%d.jpg", i)), "x")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}
}

func TestQueueOverflowBecomesRescan(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("no inotify queue limit to overflow: %v", err)
	}
	var limit int
	if _, err := fmt.Sscan(string(b), &limit); err != nil || limit > 100_000 {
		t.Skipf("inotify queue limit %q too large to overflow in a test", strings.TrimSpace(string(b)))
	}
	root := t.TempDir()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	block := filepath.Join(root, "block")
	// Adding the watch for "block" stalls the event loop, as a huge new tree would, while
	// the kernel queue fills up behind it.
	opts := fastOptions()
	opts.MaxPending = 1 << 20 // so only the kernel queue can overflow
	h := startWatcher(t, root, opts, func(abs string) error {
		if abs == block {
			<-release
		}
		return nil
	})
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	// fsnotify holds up to 4096 events in its read buffer on top of the kernel queue.
	start := time.Now()
	// Writes alternate between two files: the kernel merges an event only with an identical
	// one right before it, so every write takes a queue slot, and writes are cheap.
	var files [2]*os.File
	for i := range files {
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("flood%d.jpg", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	n := limit + 4096 + 1000
	for i := range n {
		if _, err := files[i%2].Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d times in %v", n, time.Since(start))
	unblock()
	h.waitFor("rescan after the kernel queue overflowed", func() bool { return h.rescans > 0 })
	t.Logf("rescan %v after the start", time.Since(start))
	if !strings.Contains(h.logs.String(), "event queue overflowed") {
		t.Errorf("overflow not logged:\n%s", h.logs.String())
	}
}
