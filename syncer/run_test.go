package syncer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// running is a Syncer's Run in the background.
type running struct {
	s      *Syncer
	cancel context.CancelFunc
	done   chan error
	passes atomic.Int64 // "done" events: passes finished
}

// startRun starts s.Run on hints; the test's cleanup stops it.
func startRun(t *testing.T, e *env, hints <-chan watcher.Batch, mod ...func(*Config)) *running {
	t.Helper()
	r := &running{done: make(chan error, 1)}
	mod = append(mod, func(c *Config) {
		c.Progress = func(ev Event) {
			if ev.Kind == EventDone {
				r.passes.Add(1)
			}
		}
	})
	r.s = e.syncer(mod...)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.s.Run(ctx, hints) }()
	t.Cleanup(func() { r.stop(t) })
	eventually(t, "the first full pass", func() bool { return r.passes.Load() >= 1 })
	return r
}

// stop cancels Run and checks it ended as asked.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v; want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

// startWatcher runs a real watcher on the env's folder with a short settle time.
func startWatcher(t *testing.T, e *env) <-chan watcher.Batch {
	t.Helper()
	w, err := watcher.New(e.root, watcher.Options{Settle: 50 * time.Millisecond, MaxWait: 2 * time.Second, RootPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan watcher.Batch, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx, out); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("watcher: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// hasContent reports whether image id holds content.
func (e *env) hasContent(id string, content []byte) bool {
	got, ok := e.em.Content(id)
	return ok && bytes.Equal(got, content)
}

func (e *env) absent(id string) bool {
	_, ok := e.em.Image(id)
	return !ok
}

func TestRunFollowsChanges(t *testing.T) {
	e := newEnv(t)
	for i := range 8 {
		e.write(fmt.Sprintf("base/b%d.png", i), pngBytes(200+i))
	}
	hints := startWatcher(t, e)
	startRun(t, e, hints)
	eventually(t, "the initial upload", func() bool { return e.imageCount() == 8 })

	t.Run("new file", func(t *testing.T) {
		e.write("new.png", pngBytes(1))
		eventually(t, "new.png", func() bool { return e.hasContent("new.png", pngBytes(1)) })
	})
	outside := t.TempDir()
	for i := range 4 {
		p := filepath.Join(outside, "tree", "sub", fmt.Sprintf("t%d.png", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, pngBytes(300+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("cp -r a tree in", func(t *testing.T) {
		if out, err := exec.Command("cp", "-r", filepath.Join(outside, "tree"), e.abs("copied")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		eventually(t, "the copied tree", func() bool {
			for i := range 4 {
				if !e.hasContent(fmt.Sprintf("copied/sub/t%d.png", i), pngBytes(300+i)) {
					return false
				}
			}
			return true
		})
	})
	t.Run("mv a tree out", func(t *testing.T) {
		if err := os.Rename(e.abs("copied"), filepath.Join(outside, "back")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the moved-out tree's images deleted", func() bool {
			for i := range 4 {
				if !e.absent(fmt.Sprintf("copied/sub/t%d.png", i)) {
					return false
				}
			}
			return true
		})
	})
	t.Run("mv a tree in", func(t *testing.T) {
		if err := os.Rename(filepath.Join(outside, "tree"), e.abs("moved")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the moved-in tree", func() bool {
			for i := range 4 {
				if !e.hasContent(fmt.Sprintf("moved/sub/t%d.png", i), pngBytes(300+i)) {
					return false
				}
			}
			return true
		})
	})
	t.Run("editor save", func(t *testing.T) {
		tmp := e.abs("base/.b0.png.tmp")
		if err := os.WriteFile(tmp, pngBytes(400), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.abs("base/b0.png")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "b0.png replaced", func() bool { return e.hasContent("base/b0.png", pngBytes(400)) })
	})
	t.Run("rename", func(t *testing.T) {
		if err := os.Rename(e.abs("base/b1.png"), e.abs("base/renamed.png")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the rename", func() bool {
			return e.hasContent("base/renamed.png", pngBytes(201)) && e.absent("base/b1.png")
		})
	})
	t.Run("delete", func(t *testing.T) {
		e.remove("base/b2.png")
		eventually(t, "b2.png deleted", func() bool { return e.absent("base/b2.png") })
	})
	// Everything settled: the index agrees with the folder.
	eventually(t, "the index to settle", func() bool {
		n, _ := e.st.Folder("default").Len()
		return n == e.imageCount()
	})
}

// noisePNG is a PNG of random pixels, large enough to be written in many chunks.
func noisePNG(t *testing.T, side int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	rand.Read(img.Pix)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRunSlowWriter(t *testing.T) {
	e := newEnv(t)
	hints := startWatcher(t, e)
	startRun(t, e, hints)

	content := noisePNG(t, 200) // ~160 KB
	f, err := os.Create(e.abs("slow.png"))
	if err != nil {
		t.Fatal(err)
	}
	// A slow writer: one chunk per tick. Whenever the watcher hands the file on early, the
	// syncer sees a truncated PNG, which pre-flight refuses, so only the whole file is sent.
	tick := time.NewTicker(3 * time.Millisecond)
	const chunks = 40
	for i := range chunks {
		<-tick.C
		lo, hi := i*len(content)/chunks, (i+1)*len(content)/chunks
		if _, err := f.Write(content[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slow.png uploaded complete", func() bool { return e.hasContent("slow.png", content) })
	eventually(t, "the record", func() bool {
		r, ok := e.record("slow.png")
		return ok && r.State == store.StateSynced && r.SHA256 == sha(content)
	})
	if n := e.em.Calls()[emulator.RouteUpload]; n != 1 {
		t.Errorf("%d uploads; want 1", n)
	}
}

func TestRunHintsAndRescan(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.write(fmt.Sprintf("d/x%d.png", i), pngBytes(i))
	}
	for i := range 6 {
		e.write(fmt.Sprintf("keep/k%d.png", i), pngBytes(70+i))
	}
	e.write("other.png", pngBytes(50))
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints)
	if e.imageCount() != 11 {
		t.Fatalf("%d images after the first pass", e.imageCount())
	}

	// A directory hint covers records under it whose files vanished, and nothing else.
	e.remove("d")
	e.write("other.png", pngBytes(51)) // changed, but not hinted
	hints <- watcher.Batch{Paths: []string{"d"}}
	eventually(t, "the deletes under d", func() bool { return e.imageCount() == 7 })
	if !e.hasContent("other.png", pngBytes(50)) {
		t.Fatal("a path outside the hint was synced")
	}
	// Rescan covers everything.
	hints <- watcher.Batch{Rescan: true}
	eventually(t, "other.png replaced", func() bool { return e.hasContent("other.png", pngBytes(51)) })

	// The periodic full pass runs without hints.
	r.stop(t)
	e.write("late.png", pngBytes(60))
	startRun(t, e, nil, func(c *Config) { c.RescanInterval = 20 * time.Millisecond })
	eventually(t, "late.png by the periodic pass", func() bool { return e.hasContent("late.png", pngBytes(60)) })
}

func TestRunRetriesTransientFailures(t *testing.T) {
	e := newEnv(t)
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints, func(c *Config) { c.RetryBackoff = 10 * time.Millisecond })
	e.em.FailNext(emulator.RouteUpload, 1000, 503)
	e.write("a.png", pngBytes(1))
	before := r.passes.Load()
	hints <- watcher.Batch{Paths: []string{"a.png"}}
	eventually(t, "a retried pass", func() bool { return r.passes.Load() >= before+2 })
	rec, _ := e.record("a.png")
	if rec.State != store.StateFailed || rec.ErrorClass != classTransient {
		t.Fatalf("record %+v", rec)
	}
	if st := r.s.Status(); !st.Running || len(st.Retries) != 1 || st.Retries[0].Path != "a.png" || st.Retries[0].Attempt < 1 {
		t.Fatalf("status %+v", st)
	}
	e.em.Reset() // the outage ends; no file event follows
	eventually(t, "a.png uploaded by a retry", func() bool { return e.hasContent("a.png", pngBytes(1)) })
	eventually(t, "the retry queue to empty", func() bool { return len(r.s.Status().Retries) == 0 })
}

func TestRunFolderUnavailableThenBack(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.write(fmt.Sprintf("x%d.png", i), pngBytes(i))
	}
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints)
	marker := mustRead(t, e.abs(markerName))
	e.remove(markerName)
	e.remove("x0.png")
	before := r.passes.Load()
	hints <- watcher.Batch{Paths: []string{"x0.png"}}
	eventually(t, "the refused pass", func() bool { return r.passes.Load() > before })
	if e.absent("x0.png") {
		t.Fatal("deleted while the marker was missing")
	}
	if st := r.s.Status(); !st.Unavailable || !errors.Is(st.LastErr, ErrFolderUnavailable) {
		t.Fatalf("status %+v", st)
	}
	e.write(markerName, marker)
	// No hint: the loop retries the folder on its own.
	eventually(t, "x0.png deleted once the folder is back", func() bool { return e.absent("x0.png") })
	eventually(t, "the status to clear", func() bool { return !r.s.Status().Unavailable })
}

func TestRunShutdownRecordsInFlight(t *testing.T) {
	e := newEnv(t)
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints)
	e.em.SetLatency(300 * time.Millisecond)
	for i := range 3 {
		e.write(fmt.Sprintf("s%d.png", i), pngBytes(i))
	}
	hints <- watcher.Batch{Rescan: true}
	eventually(t, "an upload in flight", func() bool { return e.em.Calls()[emulator.RouteUpload] > 0 })
	r.stop(t)
	ins, err := e.st.Folder("default").Intents()
	if err != nil || len(ins) != 0 {
		t.Fatalf("intents after shutdown: %+v, %v", ins, err)
	}
	for i := range 3 {
		p := fmt.Sprintf("s%d.png", i)
		if _, ok := e.em.Image(p); ok {
			if rec, _ := e.record(p); rec.State != store.StateSynced {
				t.Errorf("%s uploaded but recorded as %+v", p, rec)
			}
		}
	}
}

// hookRemote wraps a Remote to inject faults around its calls.
type hookRemote struct {
	Remote
	beforeUpload func(batchapi.UploadRequest)
}

func (h *hookRemote) Upload(ctx context.Context, req batchapi.UploadRequest) (batchapi.Image, error) {
	if h.beforeUpload != nil {
		h.beforeUpload(req)
	}
	return h.Remote.Upload(ctx, req)
}

func TestSyncFileChangedDuringUpload(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	var once sync.Once
	h := &hookRemote{Remote: e.client, beforeUpload: func(batchapi.UploadRequest) {
		once.Do(func() {
			// Rewritten in place while the upload starts (same inode, new size/mtime).
			f, err := os.OpenFile(e.abs("a.png"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Write(pngBytes(2))
			f.Write([]byte("trailing bytes change the size"))
			f.Close()
		})
	}}
	sum, err := e.syncerWith(h).SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	final := mustRead(t, e.abs("a.png"))
	if !e.hasContent("a.png", final) {
		t.Fatalf("image does not hold the final content; summary %+v", sum)
	}
	if r, _ := e.record("a.png"); r.State != store.StateSynced || r.SHA256 != sha(final) {
		t.Fatalf("record %+v", r)
	}
	if sum.Failed != 0 || sum.Uploaded+sum.Replaced == 0 {
		t.Errorf("summary %+v: the follow-up's success must replace the first attempt's failure", sum)
	}
}

func TestSyncRecoversIntents(t *testing.T) {
	e := newEnv(t)
	e.write("up.png", pngBytes(1))
	e.write("lost.png", pngBytes(2))
	e.write("del.png", pngBytes(3))
	e.syncOnce()
	f := e.st.Folder("default")
	ctx := context.Background()

	// A crash after the upload of up.png reached the API but before it was recorded: the
	// record still says pending, an upload intent is left.
	rec, _ := e.record("up.png")
	rec.State = store.StatePending
	if err := f.Put(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddIntent(store.Intent{Op: store.OpUpload, Path: "up.png", ImageID: "up.png", SHA256: sha(pngBytes(1))}); err != nil {
		t.Fatal(err)
	}
	// A crash before the upload of lost.png reached the API.
	if err := e.client.Delete(ctx, "lost.png"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddIntent(store.Intent{Op: store.OpUpload, Path: "lost.png", ImageID: "lost.png", SHA256: sha(pngBytes(2))}); err != nil {
		t.Fatal(err)
	}
	// A crash before a delete of del.png (file removed) was sent.
	e.remove("del.png")
	if _, err := f.AddIntent(store.Intent{Op: store.OpDelete, Path: "del.png", ImageID: "del.png"}); err != nil {
		t.Fatal(err)
	}

	writes := e.em.WriteCalls()
	sum := e.syncOnce()
	if ins, _ := f.Intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}
	e.wantImage("up.png", "up.png", pngBytes(1))
	e.wantImage("lost.png", "lost.png", pngBytes(2))
	e.wantNoImage("del.png")
	if _, ok := e.record("del.png"); ok {
		t.Error("del.png still indexed")
	}
	// up.png was settled without a second upload; lost.png was uploaded again; del.png
	// deleted once.
	if n := e.em.WriteCalls() - writes; n != 2 || sum.Uploaded != 1 {
		t.Errorf("%d write calls, summary %+v; want 2 (one upload, one delete)", n, sum)
	}
}

func TestSyncRecoversIntentsOtherOutcomes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.write("stale.png", pngBytes(1))
	e.write("theirs.png", pngBytes(2))
	f := e.st.Folder("default")
	up := func(id string, content []byte, creator string) {
		t.Helper()
		if _, err := e.client.Upload(ctx, batchapi.UploadRequest{ID: id, Content: bytes.NewReader(content), Size: int64(len(content)),
			Metadata: map[string]any{"sha256": sha(content)}, Creator: creator}); err != nil {
			t.Fatal(err)
		}
	}
	// Our image under the ID holds older content than the upload the intent was for.
	up("stale.png", pngBytes(9), testOwner)
	// Someone else's image took the ID.
	up("theirs.png", pngBytes(8), "someone-else")
	for _, in := range []store.Intent{
		{Op: store.OpUpload, Path: "stale.png", ImageID: "stale.png", SHA256: sha(pngBytes(1))},
		{Op: store.OpUpload, Path: "theirs.png", ImageID: "theirs.png", SHA256: sha(pngBytes(2))},
		{Op: store.OpDelete, Path: "theirs.png", ImageID: "theirs.png"},
		{Op: store.OpUpdate, Path: "x.png", ImageID: "x.png"},
	} {
		if _, err := f.AddIntent(in); err != nil {
			t.Fatal(err)
		}
	}
	sum := e.syncOnce()
	if ins, _ := f.Intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}
	e.wantImage("stale.png", "stale.png", pngBytes(1))
	if img, ok := e.em.Image("theirs.png"); !ok || img.Creator != "someone-else" {
		t.Fatalf("foreign image touched: %+v", img)
	}
	if sum.Replaced != 1 || sum.Failed != 1 {
		t.Errorf("summary %+v; want stale.png replaced and theirs.png refused", sum)
	}
}
