package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// makeIndex writes a closed, valid index of n records spread over a few pages and returns
// its path and size.
func makeIndex(t *testing.T, n int) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = sampleRecord(fmt.Sprintf("dir%02d/file-%05d.jpg", i%17, i))
	}
	if err := s.Folder("f").PutMany(rs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Folder("f").AddIntent(Intent{Op: OpUpload, Path: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, fi.Size()
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestOpenDamagedFile feeds Open files that are not valid indexes. Each must fail with
// ErrCorrupt (or ErrSchema), never panic, and must not leave the file locked.
func TestOpenDamagedFile(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T) string // returns the path
		want error
	}{
		{"zero-length file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "state.db")
			writeFile(t, p, nil)
			return p
		}, ErrCorrupt},
		{"text file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "state.db")
			writeFile(t, p, []byte("[folders]\nroot = /srv\n"))
			return p
		}, ErrCorrupt},
		{"random 4 KiB", randomFile(1, 4096), ErrCorrupt},
		{"random 16 KiB", randomFile(2, 16384), ErrCorrupt},
		{"random 1 MiB", randomFile(3, 1<<20), ErrCorrupt},
		{"truncated to 100 bytes", truncated(100), ErrCorrupt},
		{"truncated to one page", truncated(4096), ErrCorrupt},
		{"truncated to the meta pages", truncated(8192), ErrCorrupt},
		{"truncated to three pages", truncated(12288), ErrCorrupt},
		{"truncated to half", truncatedFrac(0.5), ErrCorrupt},
		{"last used page cut off", truncatedBy(4096), ErrCorrupt},
		{"meta pages overwritten", func(t *testing.T) string {
			p, _ := makeIndex(t, 100)
			overwrite(t, p, 0, randomBytes(4, 8192))
			return p
		}, ErrCorrupt},
		{"bbolt file of another program", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "other.db")
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			return p
		}, ErrCorrupt},
		{"empty bbolt file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "empty.db")
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			return p
		}, ErrCorrupt},
		{"bad schema value", func(t *testing.T) string {
			p, _ := makeIndex(t, 1)
			tamper(t, p, func(tx *bolt.Tx) error {
				return tx.Bucket(infoBucket).Put(schemaKey, []byte("one"))
			})
			return p
		}, ErrCorrupt},
		{"no folders bucket", func(t *testing.T) string {
			p, _ := makeIndex(t, 1)
			tamper(t, p, func(tx *bolt.Tx) error { return tx.DeleteBucket(foldersBucket) })
			return p
		}, ErrCorrupt},
		{"newer schema", func(t *testing.T) string {
			p, _ := makeIndex(t, 1)
			tamper(t, p, func(tx *bolt.Tx) error {
				return tx.Bucket(infoBucket).Put(schemaKey, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
			})
			return p
		}, ErrSchema},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.make(t)
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro, Timeout: -1})
				if err == nil {
					s.Close()
					t.Fatalf("Open(ReadOnly=%v) succeeded", ro)
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("Open(ReadOnly=%v): %v, want %v", ro, err, c.want)
				}
				if errors.Is(err, ErrLocked) {
					t.Fatalf("Open(ReadOnly=%v): the failed open before left the file locked: %v", ro, err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
			}
		})
	}
}

// TestScribbledPages damages data pages (not the meta pages) of one index at many places, with
// scribbles from 64 bytes to a few pages. Whatever bbolt makes of that, the Store must report
// ErrCorrupt (at Open, from a read, or from Check) and never crash: bbolt's own checker
// faults on some of these files, which is why Check walks the file itself first.
func TestScribbledPages(t *testing.T) {
	path, _ := makeIndex(t, 1000)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages := usedSize(t, path) / 4096
	detected := 0
	const seeds = 48
	for seed := uint64(0); seed < seeds; seed++ {
		writeFile(t, path, orig)
		page := 2 + int64(seed*7919)%(pages-2)
		overwrite(t, path, page*4096+int64(seed*97%4000), randomBytes(seed, 64+int(seed%7)*2000))

		s, err := Open(path, Options{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("seed %d: Open: %v, want ErrCorrupt", seed, err)
			}
			detected++
			continue
		}
		errs := []error{s.Check(), s.Folder("f").ForEach(func(Record) error { return nil })}
		_, err = s.Folder("f").Intents()
		errs = append(errs, err)
		found := false
		for _, err := range errs {
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("seed %d: error is not ErrCorrupt: %v", seed, err)
			}
			found = found || err != nil
		}
		if found {
			detected++
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Some scribbles land in free pages or unused parts of pages and harm nothing; most do not.
	t.Logf("%d of %d scribbles detected", detected, seeds)
	if detected < seeds/2 {
		t.Errorf("only %d of %d scribbles detected", detected, seeds)
	}
}

// TestDamagedValues plants values that bbolt stores fine but that do not decode.
func TestDamagedValues(t *testing.T) {
	path, _ := makeIndex(t, 10)
	tamper(t, path, func(tx *bolt.Tx) error {
		fb := tx.Bucket(foldersBucket).Bucket([]byte("f"))
		if err := fb.Bucket(filesBucket).Put([]byte("dir00/file-00000.jpg"), []byte{recordV1, 200}); err != nil {
			return err
		}
		if err := fb.Bucket(intentsBucket).Put([]byte("short"), []byte{intentV1}); err != nil {
			return err
		}
		return fb.Put(metaKey, []byte("{not json"))
	})
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v (damaged values are found on read, not at Open)", err)
	}
	defer s.Close()
	f := s.Folder("f")
	if _, _, err := f.Get("dir00/file-00000.jpg"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of damaged record: %v, want ErrCorrupt", err)
	}
	if _, ok, err := f.Get("dir01/file-00001.jpg"); !ok || err != nil {
		t.Errorf("Get of an intact record: %v, %v", ok, err)
	}
	if err := f.ForEach(func(Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ForEach: %v, want ErrCorrupt", err)
	}
	if _, err := f.Intents(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Intents: %v, want ErrCorrupt", err)
	}
	if _, _, err := f.Meta(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Meta: %v, want ErrCorrupt", err)
	}
	err = s.Check()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check: %v, want ErrCorrupt", err)
	}
	for _, want := range []string{"dir00/file-00000.jpg", "meta", "intents"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check report does not mention %q:\n%v", want, err)
		}
	}
}

func randomFile(seed uint64, n int) func(t *testing.T) string {
	return func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "state.db")
		writeFile(t, p, randomBytes(seed, n))
		return p
	}
}

func truncated(n int64) func(t *testing.T) string {
	return func(t *testing.T) string {
		p, _ := makeIndex(t, 500)
		if err := os.Truncate(p, n); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func truncatedFrac(frac float64) func(t *testing.T) string {
	return func(t *testing.T) string {
		p, size := makeIndex(t, 500)
		if err := os.Truncate(p, int64(float64(size)*frac)); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// truncatedBy cuts n bytes off the data bbolt uses. The file itself is usually longer:
// bbolt grows it ahead of need, and cutting that slack loses nothing.
func truncatedBy(n int64) func(t *testing.T) string {
	return func(t *testing.T) string {
		p, _ := makeIndex(t, 500)
		if err := os.Truncate(p, usedSize(t, p)-n); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// usedSize is how much of an index file bbolt uses: its high-water mark. bbolt grows files
// ahead of need, so the tail beyond is unused.
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var used int64
	_ = db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	return used
}
