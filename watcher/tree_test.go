package watcher

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fsnotify/fsnotify"
)

// The plumbing's bookkeeping, checked against fsnotify's own list of watches.
func TestTreeWalkAndUnwatch(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b/c", "a/d", "a/.git/objects", "e", "drafts/x"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, err := NewMatcher([]string{"drafts/"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(root, Options{Ignore: m})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	tr := newTree(w, fw.Add, fw.Remove)

	check := func(when string, wantDirs, wantIgnored []string) {
		t.Helper()
		if got := slices.Sorted(maps.Keys(tr.dirs)); !slices.Equal(got, wantDirs) {
			t.Errorf("%s: watched %q, want %q", when, got, wantDirs)
		}
		if got := slices.Sorted(maps.Keys(tr.ignored)); !slices.Equal(got, wantIgnored) {
			t.Errorf("%s: ignored %q, want %q", when, got, wantIgnored)
		}
		var fsn []string
		for _, p := range fw.WatchList() {
			rel, ok := tr.rel(p)
			if !ok {
				t.Errorf("%s: fsnotify watches %s, outside the root", when, p)
			}
			fsn = append(fsn, rel)
		}
		slices.Sort(fsn)
		if !slices.Equal(fsn, wantDirs) {
			t.Errorf("%s: fsnotify watches %q, want %q", when, fsn, wantDirs)
		}
		if len(tr.ids) != len(tr.dirs) {
			t.Errorf("%s: %d identities for %d directories", when, len(tr.ids), len(tr.dirs))
		}
		// Every watched or ignored directory but the root is linked from its parent, and
		// nothing else is.
		linked := 0
		for p, set := range tr.kids {
			for k := range set {
				linked++
				if parentDir(k) != p {
					t.Errorf("%s: %q linked under %q", when, k, p)
				}
			}
		}
		if want := max(len(wantDirs)-1, 0) + len(wantIgnored); linked != want {
			t.Errorf("%s: %d links, want %d", when, linked, want)
		}
	}

	if !tr.walk(context.Background(), "") {
		t.Fatal("walk incomplete")
	}
	check("after walk", []string{"", "a", "a/b", "a/b/c", "a/d", "e"}, []string{"a/.git", "drafts"})

	tr.unwatch("a/b")
	check("after unwatch a/b", []string{"", "a", "a/d", "e"}, []string{"a/.git", "drafts"})

	tr.unwatch("a")
	check("after unwatch a", []string{"", "e"}, []string{"drafts"})

	if !tr.walk(context.Background(), "a") {
		t.Fatal("walk of a incomplete")
	}
	check("after walking a again", []string{"", "a", "a/b", "a/b/c", "a/d", "e"}, []string{"a/.git", "drafts"})

	tr.unwatch("")
	check("after unwatch of the root", nil, nil)
}

// BenchmarkUnwatchDeepTree walks 1022 directories and unwatches them one by one, deepest
// first, as rm -rf reports them.
func BenchmarkUnwatchDeepTree(b *testing.B) {
	root := b.TempDir()
	for i := range 20 {
		for j := range 50 {
			if err := os.MkdirAll(filepath.Join(root, "t", fmt.Sprint(i), fmt.Sprint(j)), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	w, err := New(root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	tr := newTree(w, fw.Add, fw.Remove)
	for b.Loop() {
		tr.walk(context.Background(), "")
		dirs := slices.Sorted(maps.Keys(tr.dirs))
		slices.Reverse(dirs)
		for _, d := range dirs[:len(dirs)-1] {
			tr.unwatch(d)
		}
	}
}
