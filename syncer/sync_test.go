package syncer

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/watcher"
	"golang.org/x/text/unicode/norm"
)

func TestSyncNestedThenNothingToDo(t *testing.T) {
	e := newEnv(t)
	files := map[string][]byte{
		"a.png":               pngBytes(1),
		"shop/boots.png":      pngBytes(2),
		"shop/winter/hat.png": pngBytes(3),
		"deep/x/y/z/w.png":    pngBytes(4),
	}
	for rel, b := range files {
		e.write(rel, b)
	}
	var events []Event
	sum := e.syncOnce(func(c *Config) { c.Concurrency = 1; c.Progress = func(ev Event) { events = append(events, ev) } })
	if sum.Uploaded != len(files) || sum.Failed != 0 || sum.Bytes == 0 {
		t.Fatalf("summary %+v", sum)
	}
	for rel, b := range files {
		e.wantImage(rel, rel, b)
		r, ok := e.record(rel)
		if !ok || r.State != store.StateSynced || r.ImageID != rel || r.SHA256 != sha(b) || r.UploadedAt.IsZero() {
			t.Fatalf("record %q = %+v", rel, r)
		}
	}
	if n := countKind(events, EventUpload); n != len(files) {
		t.Errorf("%d upload events; want %d", n, len(files))
	}
	if _, err := os.Stat(filepath.Join(e.root, markerName)); err != nil {
		t.Errorf("marker not created: %v", err)
	}
	m, ok, _ := e.st.Folder("default").Meta()
	if !ok || m.Root != e.root || m.OwnerTag != testOwner || m.IDScheme != "path" || m.Device == 0 ||
		!strings.Contains(m.DeliveryBase, "/cdn-cgi/imagedelivery/") || len(m.Variants) == 0 {
		t.Errorf("meta = %+v", m)
	}

	// A second pass over the unchanged folder, by a restarted daemon, reads nothing and
	// writes nothing.
	writes := e.em.WriteCalls()
	s := e.syncer()
	sum, err := s.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unchanged != len(files) || sum.Uploaded+sum.Replaced+sum.Deleted+sum.Failed != 0 {
		t.Errorf("second pass summary %+v", sum)
	}
	if n := s.reads.Load(); n != 0 {
		t.Errorf("second pass read %d files; want 0", n)
	}
	if n := e.em.WriteCalls() - writes; n != 0 {
		t.Errorf("second pass made %d write calls; want 0", n)
	}
	// The same daemon's next pass makes no API call at all (the metadata check is done).
	e.em.ResetCalls()
	if _, err := s.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for op, n := range e.em.Calls() {
		if n != 0 {
			t.Errorf("third pass: %d %s calls", n, op)
		}
	}
}

func countKind(evs []Event, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func TestSyncCorpusValid(t *testing.T) {
	dir := corpus(t, "valid")
	e := newEnv(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rel := "corpus/" + ent.Name()
		e.write(rel, b)
		want[rel] = b
	}
	sum := e.syncOnce()
	if sum.Uploaded != len(want) || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for rel, b := range want {
		e.wantImage(rel, rel, b)
	}
}

func TestSyncRefusesInvalidAndOverLimit(t *testing.T) {
	e := newEnv(t)
	var refused []string
	for _, sub := range []string{"invalid", "limits"} {
		dir := corpus(t, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			rel := sub + "/" + ent.Name()
			e.write(rel, b)
			if ent.Name() != "edge-12000x8000.png" {
				refused = append(refused, rel)
			}
		}
	}
	// Refusals found without the corpus: a non-image extension and an empty file.
	e.write("notes.txt", pngBytes(1))
	e.write("empty.png", nil)
	refused = append(refused, "notes.txt", "empty.png")
	e.write("good.png", pngBytes(2))

	sum := e.syncOnce()
	if sum.Uploaded != 2 || sum.Failed != len(refused) {
		t.Fatalf("summary %+v; want 2 uploads, %d failures", sum, len(refused))
	}
	reasons := map[string]string{}
	for _, fe := range sum.Failures {
		reasons[fe.Path] = fe.Reason
	}
	for _, rel := range refused {
		if reasons[rel] == "" {
			t.Errorf("%s: no failure reported", rel)
		}
		e.wantNoImage(rel)
		r, ok := e.record(rel)
		if !ok || r.State != store.StateFailed || r.ErrorClass == "" || r.LastError == "" {
			t.Errorf("%s: record %+v; want a parked failure", rel, r)
		}
	}
	if !strings.Contains(reasons["limits/too-wide-13000x10.png"], "13") || !strings.Contains(reasons["notes.txt"], ".txt") {
		t.Errorf("reasons do not name the limit or rule: %q, %q", reasons["limits/too-wide-13000x10.png"], reasons["notes.txt"])
	}
	e.wantImage("good.png", "good.png", pngBytes(2))
	e.wantImage("limits/edge-12000x8000.png", "limits/edge-12000x8000.png", mustRead(t, e.abs("limits/edge-12000x8000.png")))

	// Parked: the next pass neither reads them again nor calls the API, but still reports.
	writes := e.em.WriteCalls()
	s := e.syncer()
	sum, err := s.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.reads.Load() != 0 || e.em.WriteCalls() != writes || sum.Failed != len(refused) {
		t.Errorf("second pass: %d reads, %d writes, summary %+v", s.reads.Load(), e.em.WriteCalls()-writes, sum)
	}

	// Fixing a file un-parks it.
	e.write("empty.png", pngBytes(3))
	sum = e.syncOnce()
	if sum.Uploaded != 1 {
		t.Fatalf("after fixing empty.png: %+v", sum)
	}
	e.wantImage("empty.png", "empty.png", pngBytes(3))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSyncModifyDeleteRename(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.write("dir/c.png", pngBytes(3))
	e.syncOnce()

	t.Run("modify replaces under the same ID", func(t *testing.T) {
		e.write("a.png", pngBytes(11))
		sum := e.syncOnce()
		if sum.Replaced != 1 || sum.Uploaded+sum.Deleted != 0 {
			t.Fatalf("summary %+v", sum)
		}
		e.wantImage("a.png", "a.png", pngBytes(11))
	})
	t.Run("delete", func(t *testing.T) {
		e.remove("b.png")
		sum := e.syncOnce()
		if sum.Deleted != 1 {
			t.Fatalf("summary %+v", sum)
		}
		e.wantNoImage("b.png")
		if _, ok := e.record("b.png"); ok {
			t.Fatal("record of a deleted file kept")
		}
	})
	t.Run("rename moves", func(t *testing.T) {
		if err := os.Rename(e.abs("dir"), e.abs("renamed")); err != nil {
			t.Fatal(err)
		}
		sum := e.syncOnce()
		if sum.Uploaded != 1 || sum.Deleted != 1 {
			t.Fatalf("summary %+v", sum)
		}
		e.wantImage("renamed/c.png", "renamed/c.png", pngBytes(3))
		e.wantNoImage("dir/c.png")
	})
	t.Run("editor save: write temp, rename over", func(t *testing.T) {
		tmp := e.abs(".a.png.swp")
		if err := os.WriteFile(tmp, pngBytes(12), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.abs("a.png")); err != nil {
			t.Fatal(err)
		}
		sum := e.syncOnce()
		if sum.Replaced != 1 {
			t.Fatalf("summary %+v", sum)
		}
		e.wantImage("a.png", "a.png", pngBytes(12))
	})
	t.Run("touch without change reads but writes nothing", func(t *testing.T) {
		now := mustStat(t, e.abs("a.png")).ModTime()
		if err := os.Chtimes(e.abs("a.png"), now, now.Add(1e9)); err != nil {
			t.Fatal(err)
		}
		writes := e.em.WriteCalls()
		sum := e.syncOnce()
		if sum.Unchanged != 2 || e.em.WriteCalls() != writes {
			t.Fatalf("summary %+v, %d writes", sum, e.em.WriteCalls()-writes)
		}
	})
	if n := e.imageCount(); n != 2 {
		t.Errorf("%d images remain; want 2", n)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestSyncChangesWhileStopped(t *testing.T) {
	e := newEnv(t)
	for i := range 6 {
		e.write(filepathN("img", i), pngBytes(i))
	}
	e.syncOnce()
	// "Stopped": changes happen with no syncer running.
	e.write("img0.png", pngBytes(100))
	e.remove("img1.png")
	e.write("new/img9.png", pngBytes(9))
	if err := os.Rename(e.abs("img2.png"), e.abs("new/img2.png")); err != nil {
		t.Fatal(err)
	}
	sum := e.syncOnce()
	if sum.Replaced != 1 || sum.Uploaded != 2 || sum.Deleted != 2 || sum.Unchanged != 3 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("img0.png", "img0.png", pngBytes(100))
	e.wantNoImage("img1.png")
	e.wantNoImage("img2.png")
	e.wantImage("new/img2.png", "new/img2.png", pngBytes(2))
	e.wantImage("new/img9.png", "new/img9.png", pngBytes(9))
}

func filepathN(stem string, i int) string { return stem + string(rune('0'+i)) + ".png" }

func TestSyncIdentityChanged(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.syncOnce()
	for _, mod := range []func(*Config){
		func(c *Config) { c.Prefix = "cdn/" },
		func(c *Config) { c.AccountID = "another" },
	} {
		_, err := e.syncer(mod).SyncOnce(context.Background())
		if !errors.Is(err, ErrIdentityChanged) || !strings.Contains(err.Error(), "→") || !strings.Contains(err.Error(), "reindex") {
			t.Errorf("err = %v; want ErrIdentityChanged saying what changed and what to do", err)
		}
	}
	other := t.TempDir()
	_, err := e.syncer(func(c *Config) { c.Root = other }).SyncOnce(context.Background())
	if !errors.Is(err, ErrIdentityChanged) || !strings.Contains(err.Error(), other) {
		t.Errorf("moved root: err = %v", err)
	}
}

func TestSyncPatchesWhenStaticMetadataChanges(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.write(filepathN("m", i), pngBytes(i))
	}
	e.syncOnce(func(c *Config) { c.StaticMetadata = map[string]any{"site": "a"} })
	sum := e.syncOnce(func(c *Config) { c.StaticMetadata = map[string]any{"site": "b"} })
	if sum.Updated != 5 || sum.Uploaded+sum.Replaced != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for i := range 5 {
		img, _ := e.em.Image(filepathN("m", i))
		if !strings.Contains(string(img.Meta), `"site":"b"`) || !strings.Contains(string(img.Meta), `"sha256"`) {
			t.Fatalf("meta %s", img.Meta)
		}
	}
	writes := e.em.WriteCalls()
	if sum := e.syncOnce(func(c *Config) { c.StaticMetadata = map[string]any{"site": "b"} }); sum.Updated != 0 || e.em.WriteCalls() != writes {
		t.Fatalf("patched again: %+v", sum)
	}
}

func TestSyncOwnerTagChangeAdoptsImages(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.syncOnce()
	renamed := func(c *Config) { c.OwnerTag = "cfimgsync:newhost:default" }
	if sum := e.syncOnce(renamed); sum.Updated != 2 {
		t.Fatalf("summary %+v", sum)
	}
	for _, id := range []string{"a.png", "b.png"} {
		if img, _ := e.em.Image(id); img.Creator != "cfimgsync:newhost:default" {
			t.Fatalf("%s creator %q", id, img.Creator)
		}
	}
	// Images of the old tag are still ours: a removed file's image is deleted.
	e.remove("a.png")
	if sum := e.syncOnce(renamed); sum.Deleted != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

// TestSyncRepoSample mirrors the repository's sample folder, which needs no corpus.
func TestSyncRepoSample(t *testing.T) {
	src := filepath.Join("..", "testdata", "sample")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no %s: %v", src, err)
	}
	e := newEnv(t)
	want := map[string][]byte{}
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		e.write(filepath.ToSlash(rel), b)
		want[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil || len(want) == 0 {
		t.Fatalf("sample: %d files, %v", len(want), err)
	}
	sum := e.syncOnce()
	if sum.Uploaded != len(want) || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for rel, b := range want {
		e.wantImage(norm.NFC.String(rel), rel, b)
	}
}

func TestSyncContentSchemeReplacesUploadFirst(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	s := e.syncer()
	s.scheme = contentScheme{}
	if _, err := s.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	oldID, _ := contentScheme{}.ID("a.png", sha(pngBytes(1)))
	e.wantImage(oldID, "a.png", pngBytes(1))
	e.write("a.png", pngBytes(2))
	sum, err := s.SyncOnce(context.Background())
	if err != nil || sum.Replaced != 1 || sum.Deleted != 1 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	newID, _ := contentScheme{}.ID("a.png", sha(pngBytes(2)))
	e.wantImage(newID, "a.png", pngBytes(2))
	e.wantNoImage(oldID)
	if r, _ := e.record("a.png"); r.ImageID != newID || r.State != store.StateSynced {
		t.Fatalf("record %+v", r)
	}
}

func TestSyncIgnored(t *testing.T) {
	e := newEnv(t)
	e.write("ok.png", pngBytes(1))
	e.write("drafts/a.png", pngBytes(2))
	e.write(".hidden.png", pngBytes(3))
	e.write("upload.png.part", pngBytes(4))
	e.write("sub/.cache/b.png", pngBytes(5))
	sum := e.syncOnce()
	if sum.Uploaded != 2 {
		t.Fatalf("summary %+v", sum)
	}
	for _, id := range []string{".hidden.png", "upload.png.part", "sub/.cache/b.png"} {
		e.wantNoImage(id)
	}
	// Ignoring a path later leaves its image alone: an ignore pattern never deletes.
	m, err := watcher.NewMatcher([]string{"drafts/"})
	if err != nil {
		t.Fatal(err)
	}
	e.write("drafts/new.png", pngBytes(6))
	sum = e.syncOnce(func(c *Config) { c.Ignore = m })
	if sum.Deleted+sum.Uploaded != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("drafts/a.png", "drafts/a.png", pngBytes(2))
	e.wantNoImage("drafts/new.png")
}

func TestSyncDeleteFailsTransiently(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.write(filepathN("d", i), pngBytes(i))
	}
	e.syncOnce()
	e.remove("d0.png")
	// Every attempt of this pass's delete call fails; the next pass's succeeds.
	e.em.FailNext(emulator.RouteDelete, batchapi.DefaultMaxAttempts, http.StatusServiceUnavailable)
	sum := e.syncOnce()
	if sum.Deleted != 0 || sum.Failed != 1 {
		t.Fatalf("summary %+v", sum)
	}
	r, ok := e.record("d0.png")
	if !ok || r.ImageID != "d0.png" || r.ErrorClass != classTransient {
		t.Fatalf("record %+v, %v: the image must stay tracked until deleted", r, ok)
	}
	if sum := e.syncOnce(); sum.Deleted != 1 {
		t.Fatalf("retry: %+v", sum)
	}
	e.wantNoImage("d0.png")
}

func TestSyncFileChangedDuringRead(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	s := e.syncer()
	var n atomic.Int32
	s.beforeRead = func(rel string) {
		if n.Add(1) == 1 {
			// A writer appends while the scan is about to read.
			f, err := os.OpenFile(e.abs(rel), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Write(pngBytes(2))
			f.Close()
		}
	}
	sum, err := s.SyncOnce(context.Background())
	if err != nil || sum.Uploaded != 1 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	e.wantImage("a.png", "a.png", pngBytes(2))
	if n.Load() != 2 {
		t.Errorf("%d reads; want 2 (the changing file looked at again)", n.Load())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	for name, mod := range map[string]func(*Config){
		"no root":         func(c *Config) { c.Root = "" },
		"delete mode":     func(c *Config) { c.DeleteMode = "sometimes" },
		"scheme":          func(c *Config) { c.IDScheme = "bogus" },
		"auto prefix":     func(c *Config) { c.IDScheme, c.Prefix = "auto", "shop/" },
		"negative grace":  func(c *Config) { c.IDScheme, c.VersionedGrace = "versioned", -time.Second },
		"prefix":          func(c *Config) { c.Prefix = "/abs" },
		"static too big":  func(c *Config) { c.StaticMetadata = map[string]any{"x": strings.Repeat("x", 950)} },
		"negative delete": func(c *Config) { c.MaxDelete = -1 },
	} {
		if _, err := New(e.config(mod), e.st.Folder("default"), e.client); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	s, err := New(Config{Root: e.root}, e.st.Folder("default"), e.client)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.cfg; c.FolderName != "default" || !strings.HasPrefix(c.OwnerTag, "cfimgsync:") || !strings.HasSuffix(c.OwnerTag, ":default") ||
		c.Concurrency != 16 || c.DeleteMode != DeleteMirror || c.RescanInterval != time.Hour || c.RetryBackoff != 30*time.Second {
		t.Errorf("defaults %+v", c)
	}
}
