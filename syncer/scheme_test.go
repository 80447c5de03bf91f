package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

func versioned(c *Config) { c.IDScheme = "versioned" }
func auto(c *Config)      { c.IDScheme = "auto" }

// versionedID is the versioned scheme's ID of rel with content b.
func versionedID(t *testing.T, rel string, b []byte) string {
	t.Helper()
	id, err := versionedScheme{}.ID(rel, sha(b))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) intents() []store.Intent {
	e.t.Helper()
	ins, err := e.st.Folder("default").Intents()
	if err != nil {
		e.t.Fatal(err)
	}
	return ins
}

// imagesOf returns our images whose metadata names path rel.
func (e *env) imagesOf(rel string) []string {
	var ids []string
	for _, img := range e.em.Images() {
		var meta map[string]any
		json.Unmarshal(img.Meta, &meta)
		if meta["path"] == rel {
			ids = append(ids, img.ID)
		}
	}
	return ids
}

func TestVersionedReplaceUploadsThenDeletesOld(t *testing.T) {
	e := newEnv(t)
	v1, v2 := pngBytes(1), pngBytes(2)
	e.write("shop/boots.png", v1)
	e.syncOnce(versioned)
	old := versionedID(t, "shop/boots.png", v1)
	e.wantImage(old, "shop/boots.png", v1)

	e.write("shop/boots.png", v2)
	e.em.ResetCalls()
	sum := e.syncOnce(versioned)
	cur := versionedID(t, "shop/boots.png", v2)
	e.wantImage(cur, "shop/boots.png", v2)
	e.wantNoImage(old)
	if sum.Replaced != 1 || e.imageCount() != 1 {
		t.Fatalf("summary %+v, %d images", sum, e.imageCount())
	}
	if rec, _ := e.record("shop/boots.png"); rec.ImageID != cur || rec.State != store.StateSynced {
		t.Fatalf("record %+v", rec)
	}
	if calls := e.em.Calls(); calls["upload"] != 1 || calls["delete"] != 1 {
		t.Fatalf("calls %v: want one upload and one delete", calls)
	}
	if ins := e.intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}

	// A rename is an upload under the new path's ID, then the old one's delete.
	if err := os.Rename(e.abs("shop/boots.png"), e.abs("shop/shoes.png")); err != nil {
		t.Fatal(err)
	}
	e.syncOnce(versioned)
	e.wantImage(versionedID(t, "shop/shoes.png", v2), "shop/shoes.png", v2)
	e.wantNoImage(cur)
}

func TestVersionedGraceKeepsTheOldVersionUntilDue(t *testing.T) {
	e := newEnv(t)
	v1, v2 := pngBytes(1), pngBytes(2)
	grace := func(d time.Duration) func(*Config) {
		return func(c *Config) { c.IDScheme, c.VersionedGrace = "versioned", d }
	}
	e.write("a.png", v1)
	e.syncOnce(grace(time.Hour))
	e.write("a.png", v2)
	e.syncOnce(grace(time.Hour))
	old, cur := versionedID(t, "a.png", v1), versionedID(t, "a.png", v2)
	e.wantImage(cur, "a.png", v2)
	e.wantImage(old, "a.png", v1) // still served during the grace
	if ins := e.intents(); len(ins) != 1 || ins[0].Op != opRetire || ins[0].ImageID != old {
		t.Fatalf("intents %+v; want the old version's retirement", ins)
	}
	// Another pass within the grace keeps it.
	e.syncOnce(grace(time.Hour))
	e.wantImage(old, "a.png", v1)

	// Once the grace is over (a shorter one makes it so without waiting), the next pass
	// deletes it.
	e.syncOnce(grace(time.Nanosecond))
	e.wantNoImage(old)
	e.wantImage(cur, "a.png", v2)
	if ins := e.intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}
}

func TestVersionedRetirementSurvivesACrash(t *testing.T) {
	e := newEnv(t)
	v1, v2 := pngBytes(1), pngBytes(2)
	e.write("a.png", v1)
	e.syncOnce(versioned)
	e.write("a.png", v2)
	// Call 0 uploads the new version; call 1 (the look at the old image before its
	// delete) is the last before the "crash".
	cr := &crashingRemote{Remote: e.client, at: 1}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cr.cancel = cancel
	e.syncerWith(cr, versioned).SyncOnce(ctx)
	old, cur := versionedID(t, "a.png", v1), versionedID(t, "a.png", v2)
	e.wantImage(cur, "a.png", v2)
	e.wantImage(old, "a.png", v1)
	if ins := e.intents(); len(ins) != 1 || ins[0].Op != opRetire {
		t.Fatalf("intents after the crash %+v; want one retirement", ins)
	}
	e.syncOnce(versioned)
	e.wantNoImage(old)
	if e.imageCount() != 1 || len(e.intents()) != 0 {
		t.Fatalf("%d images, intents %+v", e.imageCount(), e.intents())
	}
}

func TestAutoUploadReplaceAndRename(t *testing.T) {
	e := newEnv(t)
	v1, v2 := pngBytes(1), pngBytes(2)
	e.write("a.png", v1)
	e.syncOnce(auto)
	rec, _ := e.record("a.png")
	first := rec.ImageID
	if img, ok := e.em.Image(first); !ok || img.Custom {
		t.Fatalf("image %q: %+v; want one with a generated ID", first, img)
	}
	e.wantImage(first, "a.png", v1)

	// Unchanged: nothing is sent.
	e.em.ResetCalls()
	e.syncOnce(auto)
	if n := e.em.WriteCalls(); n != 0 {
		t.Fatalf("%d write calls for an unchanged folder", n)
	}

	// A rename patches the metadata: same image, no upload.
	os.MkdirAll(filepath.Dir(e.abs("sub/b.png")), 0o755)
	if err := os.Rename(e.abs("a.png"), e.abs("sub/b.png")); err != nil {
		t.Fatal(err)
	}
	e.syncOnce(auto)
	calls := e.em.Calls()
	if calls["upload"] != 0 || calls["update"] != 1 || calls["delete"] != 0 {
		t.Fatalf("calls %v; want one update only", calls)
	}
	e.wantImage(first, "sub/b.png", v1)
	if rec, ok := e.record("sub/b.png"); !ok || rec.ImageID != first {
		t.Fatalf("record %+v", rec)
	}
	if _, ok := e.record("a.png"); ok {
		t.Fatal("the old path's record is still there")
	}

	// A content change uploads a new image, then deletes the old.
	e.write("sub/b.png", v2)
	e.syncOnce(auto)
	rec, _ = e.record("sub/b.png")
	if rec.ImageID == first || rec.ImageID == "" {
		t.Fatalf("record %+v after a change", rec)
	}
	e.wantImage(rec.ImageID, "sub/b.png", v2)
	e.wantNoImage(first)
	if e.imageCount() != 1 || len(e.intents()) != 0 {
		t.Fatalf("%d images, intents %+v", e.imageCount(), e.intents())
	}
}

// TestAutoLostAnswerMakesNoDuplicate: the API stores the uploads but the answers never
// arrive (the client gives up with ErrOutcomeUnknown); the pass that follows finds them by
// listing instead of uploading again.
func TestAutoLostAnswerMakesNoDuplicate(t *testing.T) {
	e := newEnv(t)
	files := map[string][]byte{"a.png": pngBytes(1), "b/c.png": pngBytes(2), "d.png": pngBytes(3)}
	for rel, b := range files {
		e.write(rel, b)
	}
	e.em.DropResponses("upload", 2)
	sum, err := e.syncer(auto).SyncOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 {
		t.Errorf("summary %+v: the lost answers should be settled within the run", sum)
	}
	if calls := e.em.Calls(); calls["upload"] != 3 || calls["list"] == 0 {
		t.Errorf("calls %v; want 3 uploads and a listing", calls)
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		ids := e.imagesOf(rel)
		rec, _ := e.record(rel)
		if len(ids) != 1 || rec.ImageID != ids[0] || rec.State != store.StateSynced {
			t.Errorf("%s: images %v, record %+v", rel, ids, rec)
			continue
		}
		e.wantImage(ids[0], rel, files[rel])
	}
	if ins := e.intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}
}

// TestAutoRecoveryDeletesDuplicatesAndSparesForeign starts from what two lost answers for
// the same file leave behind (two images of ours with its path and content, one intent),
// beside a foreign image with the same metadata: recovery adopts one of ours, deletes the
// other, and never touches the foreign one.
func TestAutoRecoveryDeletesDuplicatesAndSparesForeign(t *testing.T) {
	e := newEnv(t)
	b := pngBytes(1)
	e.write("a.png", b)
	e.syncOnce(auto) // the folder's identity and marker
	rec, _ := e.record("a.png")
	upload := func(creator string) string {
		md, err := buildMetadata(nil, "x.png", sha(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		img, err := e.client.Upload(t.Context(), batchapi.UploadRequest{Filename: "x.png",
			Content: bytes.NewReader(b), Size: int64(len(b)), Metadata: md, Creator: creator})
		if err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	foreign := upload("someone-else")
	ours1, ours2 := upload(testOwner), upload(testOwner)
	e.write("x.png", b)
	if _, err := e.st.Folder("default").AddIntent(store.Intent{Op: store.OpUpload, Path: "x.png", SHA256: sha(b)}); err != nil {
		t.Fatal(err)
	}
	e.em.ResetCalls()
	e.syncOnce(auto)

	if _, ok := e.em.Image(foreign); !ok {
		t.Fatal("the foreign image was deleted")
	}
	x, _ := e.record("x.png")
	_, ok1 := e.em.Image(ours1)
	_, ok2 := e.em.Image(ours2)
	if ok1 == ok2 || x.ImageID != ours1 && x.ImageID != ours2 {
		t.Fatalf("record %+v; ours %v %v: want exactly one of them, recorded", x, ok1, ok2)
	}
	if calls := e.em.Calls(); calls["upload"] != 0 || calls["delete"] != 1 {
		t.Fatalf("calls %v; want no upload and one delete", calls)
	}
	if a, _ := e.record("a.png"); a.ImageID != rec.ImageID {
		t.Fatalf("a.png's record changed: %+v", a)
	}
	if e.imageCount() != 3 || len(e.intents()) != 0 {
		t.Fatalf("%d images (want a.png, x.png and the foreign one), intents %+v", e.imageCount(), e.intents())
	}
}

// TestVersionedGivenUpUploadThatLanded: the first attempt is stored but its answer lost,
// and every retry fails until the client gives up. The image exists all the same: the
// syncer looks it up instead of recording a failure, so a rename right after leaves no
// orphan behind.
func TestVersionedGivenUpUploadThatLanded(t *testing.T) {
	e := newEnv(t)
	b := pngBytes(1)
	e.write("a.png", b)
	e.em.DropResponses("upload", 1)
	e.em.FailNext("upload", 7, 503) // with the dropped one, all 8 attempts of the client
	sum := e.syncOnce(versioned)
	id := versionedID(t, "a.png", b)
	if rec, _ := e.record("a.png"); sum.Failed != 0 || rec.ImageID != id || rec.State != store.StateSynced {
		t.Fatalf("summary %+v, record %+v", sum, rec)
	}
	if err := os.Rename(e.abs("a.png"), e.abs("b.png")); err != nil {
		t.Fatal(err)
	}
	e.syncOnce(versioned)
	e.wantNoImage(id)
	e.wantImage(versionedID(t, "b.png", b), "b.png", b)
	if e.imageCount() != 1 || len(e.intents()) != 0 {
		t.Fatalf("%d images, intents %+v", e.imageCount(), e.intents())
	}
}

func TestMakePlanAutoScheme(t *testing.T) {
	indexed := func(p, id, sum string) store.Record {
		return store.Record{Path: p, ImageID: id, SHA256: sum, State: store.StateSynced}
	}
	tests := []struct {
		name  string
		files []localFile
		index map[string]store.Record
		drift bool
		want  []string
	}{
		{"new file", []localFile{read("a.png", sumA)}, nil, false,
			[]string{"upload a.png id=", "unchanged=0 deletes=0"}},
		{"same content, stat moved", []localFile{read("a.png", sumA)}, map[string]store.Record{"a.png": indexed("a.png", "gen-1", sumA)}, false,
			[]string{"put a.png state=synced class= id=gen-1", "unchanged=1 deletes=0"}},
		{"changed: upload new, then delete old", []localFile{read("a.png", sumB)}, map[string]store.Record{"a.png": indexed("a.png", "gen-1", sumA)}, false,
			[]string{"replace a.png id= old=:gen-1", "unchanged=0 deletes=0"}},
		{"renamed: patch the same image", []localFile{read("b.png", sumA)}, map[string]store.Record{"a.png": indexed("a.png", "gen-1", sumA)}, false,
			[]string{"move b.png id=gen-1 old=a.png:gen-1", "unchanged=0 deletes=0"}},
		{"metadata drift patches the recorded image", []localFile{read("a.png", sumA)}, map[string]store.Record{"a.png": indexed("a.png", "gen-1", sumA)}, true,
			[]string{"update a.png id=gen-1", "unchanged=0 deletes=0"}},
		{"removed", nil, map[string]store.Record{"a.png": indexed("a.png", "gen-1", sumA)}, false,
			[]string{"delete a.png id=gen-1", "unchanged=0 deletes=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := makePlan(planInput{scheme: autoScheme{}, files: tt.files, index: tt.index, metadataChanged: tt.drift})
			if got := planText(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan %q; want %q", got, tt.want)
			}
		})
	}
}
