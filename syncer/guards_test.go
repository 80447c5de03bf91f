package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// auditLogBuffer is a concurrency-safe sink for a JSON slog handler.
type auditLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *auditLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log records whose msg is msg.
func (b *auditLogBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestDeletePolicy(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	del := func(p string) Op { return Op{Kind: OpDelete, Path: p, ImageID: p, Reason: "file removed"} }
	up := func(p string) Op { return Op{Kind: OpUpload, Path: p, ImageID: p} }
	kinds := func(ops []Op) string {
		var s []string
		for _, op := range ops {
			k := string(op.Kind) + " " + op.Path
			if strings.Contains(op.Reason, "delete_delay") {
				k += strings.TrimPrefix(op.Reason, "file removed")
			}
			s = append(s, k)
		}
		return strings.Join(s, ", ")
	}
	for _, tc := range []struct {
		name        string
		dp          deletePolicy
		ops         []Op
		wantOps     string
		wantDeletes int
		wantDelayed []string
		wantMark    []string
		wantUnmark  []string
		wantHeld    int
	}{
		{
			name: "mirror passes deletes through", dp: deletePolicy{now: now},
			ops: []Op{up("n.png"), del("a.png")}, wantOps: "upload n.png, delete a.png", wantDeletes: 1,
		},
		{
			name: "delay marks a first miss and holds it", dp: deletePolicy{now: now, delay: time.Hour},
			ops: []Op{del("a.png")}, wantDelayed: []string{"a.png"}, wantMark: []string{"a.png"},
		},
		{
			name: "delay holds a miss younger than the delay",
			dp:   deletePolicy{now: now, delay: time.Hour, gone: map[string]time.Time{"a.png": now.Add(-59 * time.Minute)}},
			ops:  []Op{del("a.png")}, wantDelayed: []string{"a.png"},
		},
		{
			name: "delay lets an old miss through",
			dp:   deletePolicy{now: now, delay: time.Hour, gone: map[string]time.Time{"a.png": now.Add(-time.Hour)}},
			ops:  []Op{del("a.png")}, wantOps: "delete a.png (gone since 2026-12-03T11:00:00Z, delete_delay passed)", wantDeletes: 1,
		},
		{
			name: "a file back is unmarked",
			dp: deletePolicy{now: now, delay: time.Hour, gone: map[string]time.Time{"a.png": now.Add(-time.Minute)},
				present: map[string]bool{"a.png": true}},
			wantUnmark: []string{"a.png"},
		},
		{
			name: "delay turns a rename into an upload and a delayed delete", dp: deletePolicy{now: now, delay: time.Hour},
			ops:     []Op{{Kind: OpMove, Path: "new.png", ImageID: "new.png", OldPath: "old.png", OldImageID: "old.png"}},
			wantOps: "upload new.png", wantDelayed: []string{"old.png"}, wantMark: []string{"old.png"},
		},
		{
			name: "a rename that only patches metadata stays", dp: deletePolicy{now: now, delay: time.Hour},
			ops:     []Op{{Kind: OpMove, Path: "new.png", ImageID: "gen-id", OldPath: "old.png", OldImageID: "gen-id"}},
			wantOps: "move new.png",
		},
		{
			name: "scan errors hold every delete", dp: deletePolicy{now: now, scanFail: true},
			ops:     []Op{up("n.png"), {Kind: OpMove, Path: "m.png", OldPath: "o.png", ImageID: "m.png", OldImageID: "o.png"}, del("a.png"), del("b.png")},
			wantOps: "upload n.png, move m.png", wantHeld: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Plan{Ops: tc.ops}
			for _, op := range tc.ops {
				if op.Kind == OpDelete {
					p.Deletes++
				}
			}
			tc.dp.apply(&p)
			if got := kinds(p.Ops); got != tc.wantOps {
				t.Errorf("ops %q, want %q", got, tc.wantOps)
			}
			var delayed []string
			for _, d := range p.Delayed {
				delayed = append(delayed, d.Path)
				if !d.Due.Equal(d.Gone.Add(tc.dp.delay)) || d.Due.Before(now) {
					t.Errorf("delayed %+v", d)
				}
			}
			if p.Deletes != tc.wantDeletes || p.HeldDeletes != tc.wantHeld || !reflect.DeepEqual(delayed, tc.wantDelayed) ||
				!reflect.DeepEqual(p.markGone, tc.wantMark) || !reflect.DeepEqual(p.unmarkGone, tc.wantUnmark) {
				t.Errorf("deletes %d held %d delayed %v mark %v unmark %v", p.Deletes, p.HeldDeletes, delayed, p.markGone, p.unmarkGone)
			}
		})
	}
}

func TestSyncDeleteDelay(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.write("c.png", pngBytes(3))
	delay := func(c *Config) { c.DeleteMode, c.DeleteDelay = DeleteDelay, time.Hour }
	e.syncOnce(delay)
	f := e.st.Folder("default")

	e.remove("a.png")
	e.remove("b.png")
	writes := e.em.WriteCalls()
	p, err := e.syncer(delay).Plan(context.Background())
	if err != nil || len(p.Delayed) != 2 || p.Deletes != 0 {
		t.Fatalf("plan: delayed %+v, deletes %d, err %v", p.Delayed, p.Deletes, err)
	}
	if sum := e.syncOnce(delay); sum.Deleted != 0 || e.em.WriteCalls() != writes {
		t.Fatalf("deleted before the delay: %+v", sum)
	}
	gone, err := f.Gone()
	if err != nil || len(gone) != 2 {
		t.Fatalf("gone marks %v, %v", gone, err)
	}

	// a.png comes back in time: it keeps its image and loses its mark.
	e.write("a.png", pngBytes(1))
	if sum := e.syncOnce(delay); sum.Deleted+sum.Uploaded+sum.Replaced != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("a.png", "a.png", pngBytes(1))
	if gone, _ := f.Gone(); len(gone) != 1 || gone["b.png"].IsZero() {
		t.Fatalf("gone marks %v", gone)
	}

	// b.png has been gone long enough (the mark is set back rather than waiting).
	if err := f.Unmark([]string{"b.png"}); err != nil {
		t.Fatal(err)
	}
	if err := f.MarkGone([]string{"b.png"}, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if sum := e.syncOnce(delay); sum.Deleted != 1 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantNoImage("b.png")
	if gone, _ := f.Gone(); len(gone) != 0 {
		t.Fatalf("gone marks left: %v", gone)
	}
	e.wantImage("c.png", "c.png", pngBytes(3))
}

func TestSyncAuditLogPerDelete(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.write(fmt.Sprintf("d/%d.png", i), pngBytes(i))
	}
	e.syncOnce()
	e.remove("d/0.png")
	e.remove("d/1.png")
	var logs auditLogBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	if sum := e.syncOnce(func(c *Config) { c.Logger = logger }); sum.Deleted != 2 {
		t.Fatalf("summary %+v", sum)
	}
	lines := logs.lines("deleted image")
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2: %v", len(lines), lines)
	}
	for i, l := range lines {
		if l["path"] == nil || l["id"] != l["path"] || l["reason"] != "file removed" || l["folder"] != "default" {
			t.Errorf("audit line %d: %v", i, l)
		}
	}
}

func TestSyncApproveDeletes(t *testing.T) {
	e := newEnv(t)
	const n = 10
	for i := range n {
		e.write(fmt.Sprintf("f%02d.png", i), pngBytes(i))
	}
	e.syncOnce()
	f := e.st.Folder("default")
	if _, err := ApproveDeletes(f); !errors.Is(err, ErrNothingToApprove) {
		t.Fatalf("approve with nothing blocked: %v", err)
	}
	// 60% of the files go for real.
	for i := range 6 {
		e.remove(fmt.Sprintf("f%02d.png", i))
	}
	if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrDeleteGuard) {
		t.Fatalf("err = %v", err)
	}
	if e.imageCount() != n {
		t.Fatalf("%d images after a guarded pass", e.imageCount())
	}
	// One more goes before the approval: the approval covers the 6 shown, not 7.
	got, err := ApproveDeletes(f)
	if err != nil || got != 6 {
		t.Fatalf("approved %d, %v", got, err)
	}
	e.remove("f06.png")
	if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrDeleteGuard) || e.imageCount() != n {
		t.Fatalf("err = %v, %d images", err, e.imageCount())
	}
	if m, _, _ := f.Meta(); m.DeletesBlocked != 7 {
		t.Fatalf("blocked %d", m.DeletesBlocked)
	}
	if got, err := ApproveDeletes(f); err != nil || got != 7 {
		t.Fatalf("approved %d, %v", got, err)
	}
	if sum := e.syncOnce(); sum.Deleted != 7 || e.imageCount() != n-7 {
		t.Fatalf("summary %+v, %d images", sum, e.imageCount())
	}
	if m, _, _ := f.Meta(); m.DeletesApproved != 0 || m.DeletesBlocked != 0 {
		t.Errorf("approval not used up: %+v", m)
	}
}

func TestSyncFolderGuards(t *testing.T) {
	const n = 6
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		for i := range n {
			e.write(fmt.Sprintf("f%d.png", i), pngBytes(i))
		}
		e.syncOnce()
		if m, _, _ := e.st.Folder("default").Meta(); !m.MarkerCreated || m.MetadataDigest == "" {
			t.Fatalf("meta after first sync %+v", m)
		}
		return e
	}
	check := func(t *testing.T, e *env, want string) {
		t.Helper()
		writes := e.em.WriteCalls()
		_, err := e.syncer().SyncOnce(context.Background())
		if !errors.Is(err, ErrFolderUnavailable) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want ErrFolderUnavailable mentioning %q", err, want)
		}
		if c := e.em.Calls(); e.em.WriteCalls() != writes || c[emulator.RouteDelete] != 0 || e.imageCount() != n {
			t.Fatalf("write calls %d, delete calls %d, %d images", e.em.WriteCalls()-writes, c[emulator.RouteDelete], e.imageCount())
		}
	}
	t.Run("replaced by an empty directory", func(t *testing.T) {
		e := setup(t)
		e.remove("")
		if err := os.Mkdir(e.root, 0o755); err != nil {
			t.Fatal(err)
		}
		check(t, e, markerName)
	})
	t.Run("missing", func(t *testing.T) {
		e := setup(t)
		e.remove("")
		check(t, e, "no such file")
	})
	t.Run("marker removed", func(t *testing.T) {
		e := setup(t)
		e.remove(markerName)
		check(t, e, markerName)
	})
	t.Run("another filesystem", func(t *testing.T) {
		e := setup(t)
		f := e.st.Folder("default")
		if err := f.UpdateMeta(func(m *store.Meta, _ bool) error { m.Device++; return nil }); err != nil {
			t.Fatal(err)
		}
		e.remove("f0.png")
		check(t, e, "another filesystem")
	})
}

// TestSyncMarkerNeverCreated: a root the syncer could not write at first has no marker;
// its absence is then no evidence, while one that appears later arms the check.
func TestSyncMarkerNeverCreated(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.syncOnce()
	f := e.st.Folder("default")
	// As if the root had been read-only: no marker, and the meta says so.
	e.remove(markerName)
	if err := f.UpdateMeta(func(m *store.Meta, _ bool) error { m.MarkerCreated = false; return nil }); err != nil {
		t.Fatal(err)
	}
	e.remove("a.png")
	if sum := e.syncOnce(); sum.Deleted != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := os.Stat(e.abs(markerName)); err == nil {
		t.Fatal("marker created in a folder with records")
	}
	// The operator creates it by hand: from then on it is required.
	e.write(markerName, nil)
	e.syncOnce()
	if m, _, _ := f.Meta(); !m.MarkerCreated {
		t.Fatal("marker seen but not recorded")
	}
	e.remove(markerName)
	if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrFolderUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// TestSyncDigestNoReadBack: a restart over an unchanged folder makes no API call at all,
// and a changed owner tag or static metadata is found from the digest.
func TestSyncDigestNoReadBack(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.syncOnce()
	e.em.ResetCalls()
	if sum := e.syncOnce(); sum.Unchanged != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if c := e.em.Calls(); c[emulator.RouteGet]+e.em.WriteCalls() != 0 {
		t.Fatalf("calls on a restart over an unchanged folder: %v", c)
	}
	// An index from before the digest: read back once, then recorded.
	f := e.st.Folder("default")
	if err := f.UpdateMeta(func(m *store.Meta, _ bool) error { m.MetadataDigest = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	e.syncOnce()
	if m, _, _ := f.Meta(); m.MetadataDigest != metadataDigest(nil, testOwner) {
		t.Fatalf("digest %q not recorded", m.MetadataDigest)
	}
	// A patch run cut short leaves the old digest: the next Syncer patches again.
	site := func(c *Config) { c.StaticMetadata = map[string]any{"site": "x"} }
	e.em.FailNext(emulator.RouteUpdate, 2*8, 500) // two files, eight attempts each
	if sum, _ := e.syncer(site).SyncOnce(context.Background()); sum.Updated != 0 || sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if sum := e.syncOnce(site); sum.Updated != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if m, _, _ := f.Meta(); m.MetadataDigest != metadataDigest(map[string]any{"site": "x"}, testOwner) {
		t.Fatalf("digest %q", m.MetadataDigest)
	}
}

// TestRunDeletesWhenTheDelayEnds: the daemon loop wakes up for a delayed delete without
// waiting for the periodic rescan.
func TestRunDeletesWhenTheDelayEnds(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	hints := make(chan watcher.Batch, 4)
	r := startRun(t, e, hints, func(c *Config) {
		c.DeleteMode, c.DeleteDelay, c.RescanInterval = DeleteDelay, 300*time.Millisecond, time.Hour
	})
	eventually(t, "both uploaded", func() bool { return e.imageCount() == 2 })
	e.remove("a.png")
	hints <- watcher.Batch{Paths: []string{"a.png"}}
	var since time.Time
	eventually(t, "a.png marked gone", func() bool {
		g, _ := e.st.Folder("default").Gone()
		since = g["a.png"]
		return !since.IsZero()
	})
	eventually(t, "the delayed delete", func() bool { return e.absent("a.png") })
	// Not a timing goal but the guard itself: a slow machine only makes this later.
	if gap := time.Since(since); gap < 300*time.Millisecond {
		t.Fatalf("deleted %v after the file was missed, before the delay", gap)
	}
	eventually(t, "the mark removed with the record", func() bool {
		g, _ := e.st.Folder("default").Gone()
		return len(g) == 0
	})
	r.stop(t)
	e.wantImage("b.png", "b.png", pngBytes(2))
}

// TestSyncScanErrorHoldsDeletes: a directory that cannot be listed makes the whole pass
// delete nothing, not only what is under it.
func TestSyncScanErrorHoldsDeletes(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a directory whatever its mode; TestDeletePolicy covers the rule")
	}
	e := newEnv(t)
	e.write("locked/a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.write("c.png", pngBytes(3))
	e.syncOnce()
	if err := os.Chmod(e.abs("locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(e.abs("locked"), 0o755) })
	e.remove("b.png")
	sum, err := e.syncer().SyncOnce(context.Background())
	if err != nil || sum.Deleted != 0 || sum.Failed == 0 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	e.wantImage("b.png", "b.png", pngBytes(2))
	if err := os.Chmod(e.abs("locked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sum := e.syncOnce(); sum.Deleted != 1 {
		t.Fatalf("clean pass: %+v", sum)
	}
}

// TestSyncReadOnlyRoot: a root the daemon may only read gets no marker; syncing works,
// deletes rest on the filesystem check, and nothing claims a marker that is not there.
func TestSyncReadOnlyRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes a directory whatever its mode; TestSyncMarkerNeverCreated covers the rule")
	}
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	if err := os.Chmod(e.root, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(e.root, 0o755) })
	if sum := e.syncOnce(); sum.Uploaded != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if m, _, _ := e.st.Folder("default").Meta(); m.MarkerCreated {
		t.Fatal("MarkerCreated without a marker")
	}
	if err := os.Chmod(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	e.remove("a.png")
	if err := os.Chmod(e.root, 0o555); err != nil {
		t.Fatal(err)
	}
	if sum := e.syncOnce(); sum.Deleted != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

// TestSyncApprovalDoesNotCarryOver: files that come back clear the held-back count and the
// approval, so a later mass delete needs its own.
func TestSyncApprovalDoesNotCarryOver(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		e.write(fmt.Sprintf("f%d.png", i), pngBytes(i))
	}
	e.syncOnce()
	for i := range 6 {
		e.remove(fmt.Sprintf("f%d.png", i))
	}
	if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrDeleteGuard) {
		t.Fatalf("err = %v", err)
	}
	f := e.st.Folder("default")
	if n, err := ApproveDeletes(f); err != nil || n != 6 {
		t.Fatalf("%d, %v", n, err)
	}
	// Not what the operator thought: the files are restored before the next pass.
	for i := range 6 {
		e.write(fmt.Sprintf("f%d.png", i), pngBytes(i))
	}
	e.syncOnce()
	if m, _, _ := f.Meta(); m.DeletesApproved != 0 || m.DeletesBlocked != 0 {
		t.Fatalf("meta %+v", m)
	}
	for i := 4; i < 10; i++ {
		e.remove(fmt.Sprintf("f%d.png", i))
	}
	if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrDeleteGuard) || e.imageCount() != 10 {
		t.Fatalf("err = %v, %d images", err, e.imageCount())
	}
}

// TestGuardHoldsLaterHintPassesWhileDeletesWait: once a mass delete waits for approval, a
// later pass narrowed by watcher hints must not delete either, however few files it covers:
// a wipe arriving in pieces would otherwise trickle through the guard.
func TestGuardHoldsLaterHintPassesWhileDeletesWait(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		e.write(fmt.Sprintf("a/f%d.png", i), pngBytes(700+i))
	}
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints)
	eventually(t, "the initial upload", func() bool { return e.imageCount() == 10 })
	e.em.ResetCalls()

	hint := func(paths ...string) {
		before := r.passes.Load()
		hints <- watcher.Batch{Paths: paths}
		eventually(t, "the hinted pass", func() bool { return r.passes.Load() > before })
	}
	var gone []string
	for i := range 6 { // 6 of 10: over the limit of 5
		e.remove(fmt.Sprintf("a/f%d.png", i))
		gone = append(gone, fmt.Sprintf("a/f%d.png", i))
	}
	hint(gone...)
	e.remove("a/f6.png") // one more: alone it would be under the limit
	hint("a/f6.png")
	if n := e.em.Calls()[emulator.RouteDelete]; n != 0 {
		t.Fatalf("%d delete calls while a mass delete waits for approval", n)
	}
	if e.imageCount() != 10 {
		t.Fatalf("%d images left, want 10", e.imageCount())
	}
	m, _, err := e.st.Folder("default").Meta()
	if err != nil || m.DeletesBlocked != 7 {
		t.Fatalf("DeletesBlocked = %d (%v), want 7", m.DeletesBlocked, err)
	}

	// Approved, the next full pass deletes exactly those.
	if n, err := ApproveDeletes(e.st.Folder("default")); err != nil || n != 7 {
		t.Fatalf("ApproveDeletes = %d, %v", n, err)
	}
	before := r.passes.Load()
	hints <- watcher.Batch{Rescan: true}
	eventually(t, "the approved deletes", func() bool { return r.passes.Load() > before && e.imageCount() == 3 })
}
