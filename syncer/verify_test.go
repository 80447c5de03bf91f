package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// uploadAs puts an image under id with the given creator, behind the syncer's back.
func (e *env) uploadAs(id, creator string, content []byte, meta map[string]any) {
	e.t.Helper()
	if _, err := e.client.Upload(context.Background(), batchapi.UploadRequest{
		ID: id, Filename: filepath.Base(id), Content: bytes.NewReader(content), Size: int64(len(content)),
		Creator: creator, Metadata: meta,
	}); err != nil {
		e.t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.write(fmt.Sprintf("v/%d.png", i), pngBytes(i))
	}
	e.syncOnce()
	ctx := context.Background()
	// Behind our back: one image deleted, one replaced by other content of ours, an image
	// of ours no file maps to, and someone else's image.
	if err := e.client.Delete(ctx, "v/0.png"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Delete(ctx, "v/1.png"); err != nil {
		t.Fatal(err)
	}
	e.uploadAs("v/1.png", testOwner, pngBytes(50), map[string]any{"path": "v/1.png", "sha256": sha(pngBytes(50))})
	e.uploadAs("stray.png", testOwner, pngBytes(51), map[string]any{"path": "stray.png", "sha256": sha(pngBytes(51))})
	e.uploadAs("foreign.png", "someone-else", pngBytes(52), nil)

	rep, err := e.syncer().Verify(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Listed != 4 || !reflect.DeepEqual(rep.Missing, []string{"v/0.png"}) || !reflect.DeepEqual(rep.Mismatched, []string{"v/1.png"}) ||
		len(rep.Orphans) != 1 || rep.Orphans[0] != (Orphan{ImageID: "stray.png", Path: "stray.png", SHA256: sha(pngBytes(51))}) || rep.Pruned != 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := e.em.Image("stray.png"); !ok {
		t.Fatal("orphan deleted without prune")
	}
	// The next pass restores both.
	if sum := e.syncOnce(); sum.Uploaded+sum.Replaced != 2 || sum.Deleted != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for i := range 4 {
		e.wantImage(fmt.Sprintf("v/%d.png", i), fmt.Sprintf("v/%d.png", i), pngBytes(i))
	}

	rep, err = e.syncer().Verify(ctx, true)
	if err != nil || rep.Pruned != 1 || len(rep.Missing)+len(rep.Mismatched) != 0 {
		t.Fatalf("prune: %+v, %v", rep, err)
	}
	e.wantNoImage("stray.png")
	if img, ok := e.em.Image("foreign.png"); !ok || img.Creator != "someone-else" {
		t.Fatalf("foreign image touched: %+v %v", img, ok)
	}
	if c := e.em.Calls(); c[emulator.RouteDelete] != 4 { // two behind our back, the replace, one prune
		t.Fatalf("delete calls %d", c[emulator.RouteDelete])
	}
	// A clean verify changes nothing.
	writes := e.em.WriteCalls()
	if rep, err := e.syncer().Verify(ctx, true); err != nil || rep.Listed != 4 || len(rep.Orphans) != 0 || e.em.WriteCalls() != writes {
		t.Fatalf("clean verify: %+v, %v", rep, err)
	}
}

func TestReindex(t *testing.T) {
	e := newEnv(t)
	const n = 8
	for i := range n {
		e.write(fmt.Sprintf("r/%d.png", i), pngBytes(i))
	}
	e.syncOnce(func(c *Config) { c.StaticMetadata = map[string]any{"site": "a"} })
	// While the index is lost: a file is added and one removed (its image stays).
	e.write("r/new.png", pngBytes(100))
	e.remove("r/0.png")

	st, err := store.Open(filepath.Join(t.TempDir(), "fresh.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := st.Folder("default")
	writes := e.em.WriteCalls()
	s, err := New(e.config(func(c *Config) { c.StaticMetadata = map[string]any{"site": "a"} }), f, e.client)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Reindex(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != n || rep.Matched != n-1 || len(rep.Orphans) != 1 || rep.Orphans[0].Path != "r/0.png" {
		t.Fatalf("report %+v", rep)
	}
	if e.em.WriteCalls() != writes {
		t.Fatal("reindex made write calls")
	}
	m, ok, err := f.Meta()
	if err != nil || !ok || m.MetadataDigest != metadataDigest(map[string]any{"site": "a"}, testOwner) || m.DeliveryBase == "" {
		t.Fatalf("meta %+v, %v, %v", m, ok, err)
	}
	// The pass after it uploads only the new file, reading nothing else.
	s2, err := New(e.config(func(c *Config) { c.StaticMetadata = map[string]any{"site": "a"} }), f, e.client)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s2.SyncOnce(context.Background())
	if err != nil || sum.Uploaded != 1 || sum.Replaced+sum.Updated+sum.Deleted != 0 || sum.Unchanged != n-1 || s2.reads.Load() != 1 {
		t.Fatalf("pass after reindex: %+v, %d reads, %v", sum, s2.reads.Load(), err)
	}
	// Over an index that is there, reindex replaces it, again without writing remotely.
	writes = e.em.WriteCalls()
	s3, err := New(e.config(func(c *Config) { c.StaticMetadata = map[string]any{"site": "a"} }), f, e.client)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s3.Reindex(context.Background()); err != nil || rep.Matched != n || len(rep.Orphans) != 1 || e.em.WriteCalls() != writes {
		t.Fatalf("reindex over an index: %+v, %v", rep, err)
	}
	if l, _ := f.Len(); l != n {
		t.Fatalf("%d records", l)
	}
	// A missing root leaves the index alone.
	gone := func(c *Config) { c.Root = filepath.Join(t.TempDir(), "nope") }
	s4, _ := New(e.config(gone), f, e.client)
	if _, err := s4.Reindex(context.Background()); !errors.Is(err, ErrFolderUnavailable) {
		t.Fatalf("missing root: %v", err)
	}
	if l, _ := f.Len(); l != n {
		t.Fatalf("%d records after a failed reindex", l)
	}
}

// TestReindexStaleMetadata: images whose metadata differs from the configuration are
// adopted and patched by the next pass, not uploaded again.
func TestReindexStaleMetadata(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.syncOnce()
	st, err := store.Open(filepath.Join(t.TempDir(), "fresh.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	site := func(c *Config) { c.StaticMetadata = map[string]any{"site": "b"} }
	s, err := New(e.config(site), st.Folder("default"), e.client)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Reindex(context.Background()); err != nil || rep.Matched != 1 {
		t.Fatalf("%+v, %v", rep, err)
	}
	s, _ = New(e.config(site), st.Folder("default"), e.client)
	if sum, err := s.SyncOnce(context.Background()); err != nil || sum.Updated != 1 || sum.Uploaded != 0 {
		t.Fatalf("%+v, %v", sum, err)
	}
}

func TestRunVerifyNow(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	idle := e.syncer()
	if _, err := idle.VerifyNow(context.Background(), false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("VerifyNow without Run: %v", err)
	}
	hints := make(chan watcher.Batch)
	r := startRun(t, e, hints)
	eventually(t, "both uploaded", func() bool { return e.imageCount() == 2 })
	if err := e.client.Delete(context.Background(), "a.png"); err != nil {
		t.Fatal(err)
	}
	rep, err := r.s.VerifyNow(context.Background(), false)
	if err != nil || !reflect.DeepEqual(rep.Missing, []string{"a.png"}) {
		t.Fatalf("%+v, %v", rep, err)
	}
	eventually(t, "a.png uploaded again", func() bool { return e.hasContent("a.png", pngBytes(1)) })
}

// TestMovedFolderReindex: a folder moved elsewhere is refused with what changed and what to
// run; reindex then adopts its images without uploading anything.
func TestMovedFolderReindex(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.write(fmt.Sprintf("m/%d.png", i), pngBytes(i))
	}
	e.syncOnce()
	moved := filepath.Join(filepath.Dir(e.root), "moved")
	if err := os.Rename(e.root, moved); err != nil {
		t.Fatal(err)
	}
	at := func(c *Config) { c.Root = moved }
	_, err := e.syncer(at).SyncOnce(context.Background())
	if !errors.Is(err, ErrIdentityChanged) || !strings.Contains(err.Error(), "root") || !strings.Contains(err.Error(), moved) ||
		!strings.Contains(err.Error(), "cfimgsync reindex --folder default") || !strings.Contains(err.Error(), "moved") {
		t.Fatalf("err = %v", err)
	}
	writes := e.em.WriteCalls()
	rep, err := e.syncer(at).Reindex(context.Background())
	if err != nil || rep.Matched != 4 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if sum := e.syncOnce(at); sum.Unchanged != 4 || e.em.WriteCalls() != writes {
		t.Fatalf("after reindex: %+v, %d writes", sum, e.em.WriteCalls()-writes)
	}
	e.root = moved
	e.remove("m/0.png")
	if sum := e.syncOnce(at); sum.Deleted != 1 {
		t.Fatalf("deletes in the moved folder: %+v", sum)
	}
}
