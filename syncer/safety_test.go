package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
)

func TestSyncOddNames(t *testing.T) {
	e := newEnv(t)
	names := map[string]string{ // file name → image ID
		"with space.png":       "with space.png",
		"100%.png":             "100%.png",
		"what?.png":            "what?.png",
		"#hash.png":            "#hash.png",
		"a+b.png":              "a+b.png",
		"ünïcødé/日本.png":       "ünïcødé/日本.png",
		"cafe\u0301.png":       "caf\u00e9.png", // NFD on disk, NFC as ID
		"dir with %20/x?#.png": "dir with %20/x?#.png",
	}
	i := 0
	for name := range names {
		i++
		e.write(name, pngBytes(i+40))
	}
	s := e.syncer()
	sum, err := s.SyncOnce(context.Background())
	if err != nil || sum.Uploaded != len(names) {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	base := s.DeliveryBase()
	if base == "" {
		t.Fatal("no delivery base learned")
	}
	for name, id := range names {
		want := mustRead(t, e.abs(name))
		e.wantImage(id, name, want)
		u := DeliveryURL(base, id, "public")
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Errorf("GET %s: %d, %d bytes; want the file's %d bytes", u, resp.StatusCode, len(got), len(want))
		}
	}
}

func TestSyncTransientFaultsRecovered(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.write(filepathN("t", i), pngBytes(i))
	}
	e.em.FailNext(emulator.RouteUpload, 3, http.StatusServiceUnavailable)
	sum := e.syncOnce()
	if sum.Uploaded != 5 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for i := range 5 {
		e.wantImage(filepathN("t", i), filepathN("t", i), pngBytes(i))
	}
}

func TestSyncTransientFailureRecorded(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	// More failures than the client's attempts: the file fails this pass, transiently.
	e.em.FailNext(emulator.RouteUpload, 100, http.StatusServiceUnavailable)
	sum, err := e.syncer().SyncOnce(context.Background())
	if err != nil || sum.Failed != 1 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	r, _ := e.record("a.png")
	if r.State != store.StateFailed || r.ErrorClass != classTransient || r.Attempts != 1 {
		t.Fatalf("record %+v", r)
	}
	e.em.Reset()
	sum = e.syncOnce()
	if sum.Uploaded != 1 {
		t.Fatalf("retry: %+v", sum)
	}
	e.wantImage("a.png", "a.png", pngBytes(1))
}

func TestSyncDroppedResponseSettledByGet(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.em.DropResponses(emulator.RouteUpload, 2)
	sum := e.syncOnce()
	if sum.Uploaded != 2 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("a.png", "a.png", pngBytes(1))
	e.wantImage("b.png", "b.png", pngBytes(2))
	if c := e.em.Calls(); c[emulator.RouteGet] < 1 {
		t.Errorf("calls %v: the conflict was not settled by GET", c)
	}
	if e.imageCount() != 2 {
		t.Errorf("%d images", e.imageCount())
	}
}

func TestSyncStaleImageOfOursReplacedOnConflict(t *testing.T) {
	e := newEnv(t)
	// An image of ours under the ID, with other content, unknown to the index (a lost
	// index, or a crash between upload and record).
	if _, err := e.client.Upload(context.Background(), batchapi.UploadRequest{
		ID: "a.png", Filename: "a.png", Content: bytes.NewReader(pngBytes(9)), Size: int64(len(pngBytes(9))),
		Metadata: map[string]any{"sha256": sha(pngBytes(9))}, Creator: testOwner,
	}); err != nil {
		t.Fatal(err)
	}
	e.write("a.png", pngBytes(1))
	sum := e.syncOnce()
	if sum.Uploaded != 1 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("a.png", "a.png", pngBytes(1))
}

func TestSyncForeignImageNeverTouched(t *testing.T) {
	e := newEnv(t)
	foreign := pngBytes(77)
	upload := func(id string) {
		t.Helper()
		if _, err := e.client.Upload(context.Background(), batchapi.UploadRequest{
			ID: id, Filename: id, Content: bytes.NewReader(foreign), Size: int64(len(foreign)), Creator: "someone-else",
		}); err != nil {
			t.Fatal(err)
		}
	}
	upload("taken.png")
	e.write("taken.png", pngBytes(1))
	e.write("mine.png", pngBytes(2))
	sum := e.syncOnce()
	if sum.Uploaded != 1 || sum.Failed != 1 || !strings.Contains(sum.Failures[0].Reason, "does not own") {
		t.Fatalf("summary %+v", sum)
	}
	r, _ := e.record("taken.png")
	if r.State != store.StateFailed || r.ErrorClass != classForeign || r.ImageID != "" {
		t.Fatalf("record %+v", r)
	}

	// The image we uploaded is replaced behind our back by someone else's.
	if err := e.client.Delete(context.Background(), "mine.png"); err != nil {
		t.Fatal(err)
	}
	upload("mine.png")

	e.remove("taken.png")
	e.remove("mine.png")
	writes := e.em.WriteCalls()
	sum = e.syncOnce()
	if sum.Deleted != 0 || e.em.WriteCalls() != writes {
		t.Fatalf("summary %+v, %d write calls", sum, e.em.WriteCalls()-writes)
	}
	for _, id := range []string{"taken.png", "mine.png"} {
		if img, ok := e.em.Image(id); !ok || img.Creator != "someone-else" {
			t.Errorf("foreign image %q touched: %+v, %v", id, img, ok)
		}
	}
}

func TestSyncDeleteGuard(t *testing.T) {
	const n = 20
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		for i := range n {
			e.write(fmt.Sprintf("g/f%02d.png", i), pngBytes(i))
		}
		if sum := e.syncOnce(); sum.Uploaded != n {
			t.Fatalf("setup: %+v", sum)
		}
		return e
	}
	t.Run("emptied folder", func(t *testing.T) {
		e := setup(t)
		e.remove("g")
		writes := e.em.WriteCalls()
		sum, err := e.syncer().SyncOnce(context.Background())
		if !errors.Is(err, ErrDeleteGuard) || !strings.Contains(err.Error(), "approve-deletes") {
			t.Fatalf("err = %v", err)
		}
		if sum.Deleted != 0 || e.em.WriteCalls() != writes || e.imageCount() != n {
			t.Fatalf("deleted despite the guard: %+v, %d images", sum, e.imageCount())
		}
		// Approval lets the same pass through once.
		f := e.st.Folder("default")
		m, _, _ := f.Meta()
		m.DeletesApproved = n
		if err := f.SetMeta(m); err != nil {
			t.Fatal(err)
		}
		sum = e.syncOnce()
		if sum.Deleted != n || e.imageCount() != 0 {
			t.Fatalf("after approval: %+v, %d images", sum, e.imageCount())
		}
		if m, _, _ := f.Meta(); m.DeletesApproved != 0 {
			t.Errorf("approval not used up: %d", m.DeletesApproved)
		}
	})
	t.Run("over half", func(t *testing.T) {
		e := setup(t)
		for i := range 11 {
			e.remove(fmt.Sprintf("g/f%02d.png", i))
		}
		p, err := e.syncer().Plan(context.Background())
		if err != nil || !errors.Is(p.Guard, ErrDeleteGuard) || p.Deletes != 11 || p.DeleteLimit != 10 {
			t.Fatalf("plan: deletes %d limit %d guard %v err %v", p.Deletes, p.DeleteLimit, p.Guard, err)
		}
		if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrDeleteGuard) || e.imageCount() != n {
			t.Fatalf("err = %v, %d images", err, e.imageCount())
		}
		// Half is allowed.
		e.write("g/f00.png", pngBytes(0))
		if sum := e.syncOnce(); sum.Deleted != 10 {
			t.Fatalf("10 of 20: %+v", sum)
		}
	})
	t.Run("marker removed", func(t *testing.T) {
		e := setup(t)
		e.remove(markerName)
		e.remove("g/f00.png")
		e.write("new.png", pngBytes(99))
		writes := e.em.WriteCalls()
		_, err := e.syncer().SyncOnce(context.Background())
		if !errors.Is(err, ErrFolderUnavailable) || !strings.Contains(err.Error(), markerName) {
			t.Fatalf("err = %v", err)
		}
		if e.em.WriteCalls() != writes {
			t.Fatal("a pass over an unavailable folder made write calls")
		}
	})
	t.Run("root gone", func(t *testing.T) {
		e := setup(t)
		e.remove("")
		_, err := e.syncer().SyncOnce(context.Background())
		if !errors.Is(err, ErrFolderUnavailable) || e.imageCount() != n {
			t.Fatalf("err = %v, %d images", err, e.imageCount())
		}
		// The dry run says so too.
		p, err := e.syncer().Plan(context.Background())
		if err != nil || !errors.Is(p.Guard, ErrFolderUnavailable) {
			t.Fatalf("plan guard %v, err %v", p.Guard, err)
		}
	})
	t.Run("root replaced by a file", func(t *testing.T) {
		e := setup(t)
		e.remove("")
		if err := os.WriteFile(e.root, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := e.syncer().SyncOnce(context.Background()); !errors.Is(err, ErrFolderUnavailable) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("keep mode deletes nothing remotely", func(t *testing.T) {
		e := setup(t)
		e.remove("g")
		sum := e.syncOnce(func(c *Config) { c.DeleteMode = DeleteKeep })
		if sum.Deleted != 0 || e.imageCount() != n {
			t.Fatalf("summary %+v, %d images", sum, e.imageCount())
		}
		if l, _ := e.st.Folder("default").Len(); l != 0 {
			t.Fatalf("%d records kept", l)
		}
	})
}

func TestSyncPlanIsDry(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	e.write("b.png", pngBytes(2))
	e.write("bad.txt", pngBytes(3))
	p, err := e.syncer().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Ops) != 2 || p.Ops[0].Kind != OpUpload || len(p.Failed) != 1 {
		t.Fatalf("plan %+v", p)
	}
	if e.em.WriteCalls() != 0 || e.imageCount() != 0 {
		t.Fatal("the dry run wrote remotely")
	}
	if _, ok, _ := e.st.Folder("default").Meta(); ok {
		t.Fatal("the dry run wrote the meta")
	}
	if l, _ := e.st.Folder("default").Len(); l != 0 {
		t.Fatal("the dry run wrote records")
	}
	if _, err := os.Stat(e.abs(markerName)); err == nil {
		t.Fatal("the dry run created the marker")
	}
}

func TestSyncUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permissions do not stop reads")
	}
	e := newEnv(t)
	e.write("ok.png", pngBytes(1))
	e.write("locked/a.png", pngBytes(2))
	e.write("secret.png", pngBytes(3))
	e.syncOnce()
	if err := os.Chmod(e.abs("locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(e.abs("locked"), 0o755) })
	if err := os.Chmod(e.abs("secret.png"), 0); err != nil {
		t.Fatal(err)
	}
	e.write("secret.png", pngBytes(4)) // changed and unreadable
	e.write("ok2.png", pngBytes(5))
	sum := e.syncOnce()
	if sum.Deleted != 0 || sum.Uploaded != 1 || sum.Failed < 2 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage("locked/a.png", "locked/a.png", pngBytes(2))
}

// authRemote answers every call with an authentication failure after the first n.
func TestSyncAuthErrorAborts(t *testing.T) {
	e := newEnv(t)
	e.write("a.png", pngBytes(1))
	bad, err := batchapi.New(batchapi.Config{
		AccountID: "023e105f4ecef8ad9ca31a8372d0c353", APIToken: "wrong-token",
		APIURL: e.srv.APIURL(), BatchURL: e.srv.BatchURL(), MaxRetryWait: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.syncerWith(bad).SyncOnce(context.Background())
	if !batchapi.IsAuth(err) {
		t.Fatalf("err = %v; want an auth error", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Fatal("the error shows the token")
	}
	if ins, _ := e.st.Folder("default").Intents(); len(ins) != 0 {
		t.Fatalf("intents left: %+v", ins)
	}
}

func TestHintNeverFollowsSymlinkedDirectory(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir()
	if err := os.WriteFile(outside+"/secret.png", pngBytes(5), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.abs("link")); err != nil {
		t.Fatal(err)
	}
	e.write("real.png", pngBytes(1))
	e.syncOnce()
	s := e.syncer()
	res, err := s.pass(context.Background(), hintScope([]string{"link/secret.png", "link"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 0 || s.reads.Load() != 0 || e.imageCount() != 1 {
		t.Fatalf("read through a symlinked directory: %+v, %d reads", res.Summary, s.reads.Load())
	}
}

func TestSyncFolderVanishingMidPassDeletesNothing(t *testing.T) {
	e := newEnv(t)
	for i := range 6 {
		e.write(filepathN("v", i), pngBytes(i))
	}
	e.syncOnce()
	e.remove("v0.png")
	e.write("new.png", pngBytes(50))
	var once sync.Once
	h := &hookRemote{Remote: e.client, beforeUpload: func(batchapi.UploadRequest) {
		once.Do(func() { os.Remove(e.abs(markerName)) }) // the disk goes away mid-pass
	}}
	_, err := e.syncerWith(h).SyncOnce(context.Background())
	if !errors.Is(err, ErrFolderUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if e.absent("v0.png") {
		t.Fatal("deleted after the folder became unavailable")
	}
}

func TestHintUnderAFileThatWasADirectory(t *testing.T) {
	e := newEnv(t)
	for i := range 8 {
		e.write(filepathN("keep", i), pngBytes(i))
	}
	e.write("x/a.png", pngBytes(20))
	e.syncOnce()
	e.remove("x")
	e.write("x", pngBytes(21)) // a file now, with no extension
	res, err := e.syncer().pass(context.Background(), hintScope([]string{"x/a.png"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || !e.absent("x/a.png") {
		t.Fatalf("summary %+v", res.Summary)
	}
}

func TestSyncNamesEqualAfterNormalization(t *testing.T) {
	e := newEnv(t)
	nfc, nfd := "caf\u00e9.png", "cafe\u0301.png"
	e.write(nfc, pngBytes(1))
	e.syncOnce()
	e.write(nfd, pngBytes(2)) // a second file for the same ID
	sum := e.syncOnce()
	if sum.Failed != 1 || sum.Failures[0].Path != nfd || !strings.Contains(sum.Failures[0].Reason, "already used") {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage(nfc, nfc, pngBytes(1))
	writes := e.em.WriteCalls()
	if sum := e.syncOnce(); sum.Failed != 1 || e.em.WriteCalls() != writes {
		t.Fatalf("the pair takes turns: %+v, %d writes", sum, e.em.WriteCalls()-writes)
	}
	// Removing the refused twin leaves the image alone.
	e.remove(nfd)
	if sum := e.syncOnce(); sum.Deleted != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantImage(nfc, nfc, pngBytes(1))
}

// TestSyncNormalizationTwinTakesOverWhenTheHolderGoes: of two names equal after Unicode
// normalization, the one refused must be published once the one holding the ID is removed,
// not stay parked behind an image that is deleted.
func TestSyncNormalizationTwinTakesOverWhenTheHolderGoes(t *testing.T) {
	e := newEnv(t)
	nfc, nfd := "caf\u00e9.png", "cafe\u0301.png"
	e.write(nfc, pngBytes(1))
	e.syncOnce()
	e.write(nfd, pngBytes(2))
	if sum := e.syncOnce(); sum.Failed != 1 {
		t.Fatalf("summary %+v", sum)
	}
	e.remove(nfc)
	e.syncOnce()
	e.syncOnce()
	e.wantImage(nfc, nfd, pngBytes(2))
	if sum := e.syncOnce(); sum.Failed != 0 || sum.Unchanged != 1 {
		t.Fatalf("after the takeover: %+v", sum)
	}
}
