package store

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// openTest opens a fresh index in t.TempDir(). Its cleanup checks the file (bbolt's page
// check and our decoding invariants) before closing it, so every test also proves it left a
// consistent file behind.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openTestAt(t, filepath.Join(t.TempDir(), "state.db"))
}

func openTestAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Check at cleanup: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	return s
}

// reopen closes s and opens its file again, to prove what was written reached the file.
func reopen(t testing.TB, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openTestAt(t, s.Path())
}

// tamper edits a closed index file behind the store's back, to plant damage.
func tamper(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("bolt Close: %v", err)
	}
}

func mustPut(t testing.TB, f *Folder, rs ...Record) {
	t.Helper()
	if err := f.PutMany(rs); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
}

func paths(t testing.TB, f *Folder, prefix string) []string {
	t.Helper()
	var out []string
	err := f.ForEachUnder(prefix, func(r Record) error {
		out = append(out, r.Path)
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachUnder(%q): %v", prefix, err)
	}
	return out
}
