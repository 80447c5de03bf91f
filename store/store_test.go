package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "cfimgsync")
	path := filepath.Join(dir, "state.db")
	s := openTestAt(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for p, want := range map[string]fs.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", p, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only state.db (temporary file left behind?)", entries)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s := openTest(t)
	f := s.Folder("photos")
	want := []Record{sampleRecord("a.jpg"), sampleRecord("b/c.png")}
	mustPut(t, f, want...)
	meta := Meta{AccountID: "acc", Root: "/srv/photos", IDScheme: "path", Prefix: "p/",
		OwnerTag: "cfimgsync:h:photos", Device: 42, DeliveryBase: "https://imagedelivery.net/x",
		Variants: []string{"public", "thumb"}, DeletesApproved: 3}
	if err := f.SetMeta(meta); err != nil {
		t.Fatal(err)
	}
	id, err := f.AddIntent(Intent{Op: OpUpload, Path: "d.jpg", ImageID: "p/d.jpg"})
	if err != nil {
		t.Fatal(err)
	}

	s = reopen(t, s)
	f = s.Folder("photos")
	var got []Record
	if err := f.ForEach(func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records after reopen:\n got %+v\nwant %+v", got, want)
	}
	m, ok, err := f.Meta()
	meta.SchemaVersion = SchemaVersion
	if err != nil || !ok || !reflect.DeepEqual(m, meta) {
		t.Errorf("Meta() = %+v, %v, %v; want %+v", m, ok, err, meta)
	}
	ins, err := f.Intents()
	if err != nil || len(ins) != 1 || ins[0].ID != id || ins[0].Path != "d.jpg" {
		t.Errorf("Intents() = %+v, %v; want one intent %d for d.jpg", ins, err, id)
	}
	if names, err := s.Folders(); err != nil || !slices.Equal(names, []string{"photos"}) {
		t.Errorf("Folders() = %v, %v", names, err)
	}
}

func TestOddPathsThroughStore(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	for _, p := range oddPaths {
		mustPut(t, f, sampleRecord(p))
	}
	s = reopen(t, s)
	f = s.Folder("f")
	for _, p := range oddPaths {
		got, ok, err := f.Get(p)
		if err != nil || !ok || !reflect.DeepEqual(got, sampleRecord(p)) {
			t.Errorf("Get(%q) = %+v, %v, %v", p, got, ok, err)
		}
	}
	if n, err := f.Len(); err != nil || n != len(oddPaths) {
		t.Errorf("Len() = %d, %v; want %d", n, err, len(oddPaths))
	}
	all := paths(t, f, "")
	if !slices.IsSorted(all) || len(all) != len(oddPaths) {
		t.Errorf("ForEach order %q is not the sorted set of paths", all)
	}
}

func TestPutValidates(t *testing.T) {
	f := openTest(t).Folder("f")
	for name, r := range map[string]Record{
		"empty path":   {},
		"bad state":    {Path: "a", State: 9},
		"path too big": {Path: strings.Repeat("x", 32769)},
	} {
		if err := f.Put(r); err == nil {
			t.Errorf("%s: Put succeeded", name)
		}
	}
	// PutMany is all or nothing: one bad record keeps the good ones out.
	if err := f.PutMany([]Record{{Path: "good"}, {Path: ""}}); err == nil {
		t.Error("PutMany with an empty path succeeded")
	}
	if n, _ := f.Len(); n != 0 {
		t.Errorf("Len() = %d after failed puts, want 0", n)
	}
	if err := openTest(t).Folder("").Put(Record{Path: "a"}); err == nil {
		t.Error("Put into a folder with an empty name succeeded")
	}
}

func TestGetDeleteMissing(t *testing.T) {
	f := openTest(t).Folder("never-written")
	if _, ok, err := f.Get("nope"); ok || err != nil {
		t.Errorf("Get on empty folder = %v, %v", ok, err)
	}
	if err := f.Delete("nope"); err != nil {
		t.Errorf("Delete on empty folder: %v", err)
	}
	if _, ok, err := f.Meta(); ok || err != nil {
		t.Errorf("Meta on empty folder = %v, %v", ok, err)
	}
	if ins, err := f.Intents(); len(ins) != 0 || err != nil {
		t.Errorf("Intents on empty folder = %v, %v", ins, err)
	}
	if n, err := f.Len(); n != 0 || err != nil {
		t.Errorf("Len on empty folder = %v, %v", n, err)
	}
	mustPut(t, f, Record{Path: "x"})
	if err := f.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := f.Get("x"); ok {
		t.Error("record still present after Delete")
	}
}

func TestFoldersAreSeparate(t *testing.T) {
	s := openTest(t)
	a, b := s.Folder("a"), s.Folder("b")
	mustPut(t, a, Record{Path: "same.jpg", ImageID: "A"})
	mustPut(t, b, Record{Path: "same.jpg", ImageID: "B"})
	if r, _, _ := a.Get("same.jpg"); r.ImageID != "A" {
		t.Errorf("folder a sees %q", r.ImageID)
	}
	if err := s.DeleteFolder("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFolder("a"); err != nil {
		t.Errorf("deleting a missing folder: %v", err)
	}
	if names, _ := s.Folders(); !slices.Equal(names, []string{"b"}) {
		t.Errorf("Folders() = %v, want [b]", names)
	}
	if r, ok, _ := b.Get("same.jpg"); !ok || r.ImageID != "B" {
		t.Errorf("folder b lost its record: %+v %v", r, ok)
	}
}

func TestForEachUnder(t *testing.T) {
	f := openTest(t).Folder("f")
	for _, p := range []string{"a", "a b", "a.jpg", "a/x", "a/y/z", "a0", "ab/x", "b/a/x", "a/"} {
		mustPut(t, f, Record{Path: p})
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"a", []string{"a", "a/", "a/x", "a/y/z"}},
		{"a/", []string{"a", "a/", "a/x", "a/y/z"}},
		{"a/y", []string{"a/y/z"}},
		{"ab", []string{"ab/x"}},
		{"b", []string{"b/a/x"}},
		{"b/a/x", []string{"b/a/x"}},
		{"c", nil},
		{"", []string{"a", "a b", "a.jpg", "a/", "a/x", "a/y/z", "a0", "ab/x", "b/a/x"}},
	}
	for _, c := range cases {
		if got := paths(t, f, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("ForEachUnder(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func TestForEachStopsWithCallersError(t *testing.T) {
	f := openTest(t).Folder("f")
	mustPut(t, f, Record{Path: "1"}, Record{Path: "2"}, Record{Path: "3"})
	stop := errors.New("stop")
	var seen []string
	err := f.ForEach(func(r Record) error {
		seen = append(seen, r.Path)
		if r.Path == "2" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("ForEach returned %v, want the callback's error unchanged", err)
	}
	if !slices.Equal(seen, []string{"1", "2"}) {
		t.Errorf("visited %v, want [1 2]", seen)
	}
}

func TestForEachCallbackPanicPropagates(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	mustPut(t, f, Record{Path: "1"})
	func() {
		defer func() {
			if p := recover(); p != "callback bug" {
				t.Errorf("recovered %v, want the callback's own panic", p)
			}
		}()
		_ = f.ForEach(func(Record) error { panic("callback bug") })
		t.Error("ForEach returned instead of panicking")
	}()
	// The read transaction was released: a write still goes through.
	mustPut(t, f, Record{Path: "2"})
}

func TestIntentsAndSettle(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	mustPut(t, f, Record{Path: "old.jpg", ImageID: "old.jpg", State: StateSynced})

	up, err := f.AddIntent(Intent{Op: OpUpload, Path: "new.jpg", ImageID: "new.jpg", SHA256: strings.Repeat("1", 64)})
	if err != nil {
		t.Fatal(err)
	}
	del, err := f.AddIntent(Intent{Op: OpDelete, Path: "old.jpg", ImageID: "old.jpg"})
	if err != nil {
		t.Fatal(err)
	}
	if del <= up {
		t.Errorf("intent IDs %d then %d do not increase", up, del)
	}
	ins, err := f.Intents()
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 || ins[0].ID != up || ins[1].ID != del || ins[0].Created.IsZero() {
		t.Fatalf("Intents() = %+v", ins)
	}

	// Rename: the new record appears, the old one and the intent go, in one transaction.
	rec := Record{Path: "new.jpg", ImageID: "new.jpg", State: StateSynced}
	if err := f.Settle(up, &rec, "old.jpg"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	f = s.Folder("f")
	if _, ok, _ := f.Get("old.jpg"); ok {
		t.Error("old.jpg still recorded after Settle")
	}
	if got, ok, _ := f.Get("new.jpg"); !ok || got != rec {
		t.Errorf("new.jpg = %+v, %v; want %+v", got, ok, rec)
	}
	if ins, _ := f.Intents(); len(ins) != 1 || ins[0].ID != del {
		t.Errorf("Intents() after Settle = %+v, want only %d", ins, del)
	}

	// Settling twice fails and changes nothing.
	other := Record{Path: "other.jpg"}
	if err := f.Settle(up, &other, "new.jpg"); !errors.Is(err, ErrNoIntent) {
		t.Errorf("second Settle: %v, want ErrNoIntent", err)
	}
	if _, ok, _ := f.Get("other.jpg"); ok {
		t.Error("failed Settle wrote its record")
	}
	if _, ok, _ := f.Get("new.jpg"); !ok {
		t.Error("failed Settle deleted its path")
	}

	// A bad record fails before anything changes: the intent stays.
	if err := f.Settle(del, &Record{}, ""); err == nil {
		t.Error("Settle with an empty record path succeeded")
	}
	if ins, _ := f.Intents(); len(ins) != 1 {
		t.Errorf("intent lost by a failed Settle: %+v", ins)
	}

	// The put wins over a delete of the same path; intent 0 removes no intent.
	same := Record{Path: "new.jpg", ImageID: "replaced"}
	if err := f.Settle(0, &same, "new.jpg"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Get("new.jpg"); got.ImageID != "replaced" {
		t.Errorf("new.jpg ImageID = %q, want replaced", got.ImageID)
	}

	// A delete intent settles with only a delete.
	if err := f.Settle(del, nil, "new.jpg"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
	if ins, _ := f.Intents(); len(ins) != 0 {
		t.Errorf("Intents() = %+v, want none", ins)
	}
	// IDs are never reused, even after the journal emptied.
	next, err := f.AddIntent(Intent{Op: OpUpdate, Path: "x"})
	if err != nil || next <= del {
		t.Errorf("AddIntent after emptying = %d, %v; want > %d", next, err, del)
	}
	if _, err := f.AddIntent(Intent{Path: "x"}); err == nil {
		t.Error("AddIntent without op succeeded")
	}
}

func TestLockTimeout(t *testing.T) {
	s := openTest(t)
	const timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Open(s.Path(), Options{Timeout: timeout})
	elapsed := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("error %q does not name the file", err)
	}
	// bbolt retries every 50ms until timeout-50ms has passed; it must not give up sooner.
	if elapsed < timeout-50*time.Millisecond {
		t.Errorf("gave up after %v, before the %v timeout", elapsed, timeout)
	}
	if _, err := Open(s.Path(), Options{Timeout: -1}); !errors.Is(err, ErrLocked) {
		t.Errorf("Open with negative timeout: %v, want ErrLocked", err)
	}
	if _, err := Open(s.Path(), Options{ReadOnly: true, Timeout: -1}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only Open beside a writer: %v, want ErrLocked", err)
	}
}

func TestLockReleasedByClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestAt(t, path)
	if _, err := s.Folder("f").Len(); !errors.Is(err, ErrClosed) {
		t.Errorf("Len on closed store: %v, want ErrClosed", err)
	}
	mustPut(t, s2.Folder("f"), Record{Path: "a"})
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open of a missing file: %v, want ErrNotExist", err)
	}
	s := openTestAt(t, path)
	mustPut(t, s.Folder("f"), Record{Path: "a"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Two read-only opens share the lock.
	r1, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("second read-only Open: %v", err)
	}
	defer r2.Close()
	if _, ok, err := r2.Folder("f").Get("a"); !ok || err != nil {
		t.Errorf("read-only Get = %v, %v", ok, err)
	}
	if err := r1.Folder("f").Put(Record{Path: "b"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Put: %v, want ErrReadOnly", err)
	}
	if _, err := Open(path, Options{Timeout: -1}); !errors.Is(err, ErrLocked) {
		t.Errorf("writer Open beside readers: %v, want ErrLocked", err)
	}
	if err := r1.Check(); err != nil {
		t.Errorf("Check read-only: %v", err)
	}
}

// TestConcurrentCreate races several Opens of a file that does not exist yet: each must end
// up in the same index, not in a file another replaced.
func TestConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "state.db")
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(path, Options{Timeout: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			if err := s.Folder("f").Put(Record{Path: fmt.Sprint(i)}); err != nil {
				errs <- err
			}
			errs <- s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	s := openTestAt(t, path)
	if n2, err := s.Folder("f").Len(); err != nil || n2 != n {
		t.Errorf("Len() = %d, %v; want %d (a creator's file was replaced?)", n2, err, n)
	}
}

// TestConcurrentReadersSeeSnapshots runs readers beside a writer. Each write replaces every
// record with the same generation number, so a reader that ever sees two generations in one
// ForEach saw a torn write.
func TestConcurrentReadersSeeSnapshots(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	const records, writes = 50, 30
	gen := func(g int) []Record {
		rs := make([]Record, records)
		for i := range rs {
			rs[i] = Record{Path: fmt.Sprintf("p%03d", i), Attempts: g, ImageID: strings.Repeat("i", g)}
		}
		return rs
	}
	mustPut(t, f, gen(0)...)

	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for reads := 0; ; reads++ {
				select {
				case <-done:
					if reads == 0 {
						t.Error("reader never ran")
					}
					return
				default:
				}
				var gens []int
				err := f.ForEach(func(r Record) error {
					gens = append(gens, r.Attempts)
					if len(r.ImageID) != r.Attempts {
						return fmt.Errorf("%s: torn record %+v", r.Path, r)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(gens) != records || slices.Min(gens) != slices.Max(gens) {
					t.Errorf("one ForEach saw %d records of generations %v", len(gens), slices.Compact(gens))
					return
				}
				if _, _, err := f.Get("p007"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for g := 1; g <= writes; g++ {
		if err := f.PutMany(gen(g)); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if r, _, _ := f.Get("p000"); r.Attempts != writes {
		t.Errorf("final generation %d, want %d", r.Attempts, writes)
	}
}

func TestSetMetaForcesSchemaVersion(t *testing.T) {
	f := openTest(t).Folder("f")
	if err := f.SetMeta(Meta{SchemaVersion: 99, Prefix: "x/"}); err != nil {
		t.Fatal(err)
	}
	m, ok, err := f.Meta()
	if err != nil || !ok || m.SchemaVersion != SchemaVersion || m.Prefix != "x/" {
		t.Errorf("Meta() = %+v, %v, %v", m, ok, err)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StatePending: "pending", StateSynced: "synced", StateFailed: "failed", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// TestConcurrentWriters runs a worker pool as the syncer does: each worker journals and
// settles its own files while others do the same, so writes share transactions. Some
// settles are bound to fail (a second Settle of the same intent); a failure must stay with
// its caller and not undo or block the others in the same shared transaction.
func TestConcurrentWriters(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	ids := make(chan uint64, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				p := fmt.Sprintf("w%d/%03d.jpg", w, i)
				id, err := f.AddIntent(Intent{Op: OpUpload, Path: p})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
				if err := f.Settle(id, &Record{Path: p, State: StateSynced}, ""); err != nil {
					t.Errorf("Settle %d: %v", id, err)
					return
				}
				if err := f.Settle(id, &Record{Path: p + ".dup"}, ""); !errors.Is(err, ErrNoIntent) {
					t.Errorf("second Settle %d: %v, want ErrNoIntent", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("intent ID %d handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != workers*perWorker {
		t.Errorf("%d intents added, want %d", len(seen), workers*perWorker)
	}
	if n, err := f.Len(); err != nil || n != workers*perWorker {
		t.Errorf("Len() = %d, %v; want %d (and no .dup records)", n, err, workers*perWorker)
	}
	if ins, err := f.Intents(); err != nil || len(ins) != 0 {
		t.Errorf("Intents() = %d, %v; want all settled", len(ins), err)
	}
}

func TestOpenRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{"empty path": "", "directory": dir} {
		if s, err := Open(path, Options{}); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		} else if errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v; a wrong path is not a damaged index", name, err)
		}
	}
}
