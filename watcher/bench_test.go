package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// BenchmarkInitialWalk measures adding watches to a tree of 1000 directories (10 × 10 × 10,
// one file each), as Run does at start.
func BenchmarkInitialWalk(b *testing.B) {
	root := b.TempDir()
	for i := range 10 {
		for j := range 10 {
			for k := range 10 {
				dir := filepath.Join(root, fmt.Sprint(i), fmt.Sprint(j), fmt.Sprint(k))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "a.jpg"), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	w, err := New(root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			b.Fatal(err)
		}
		tr := newTree(w, fw.Add, fw.Remove)
		if !tr.walk(context.Background(), "") {
			b.Fatal("walk incomplete")
		}
		if len(tr.dirs) != 1111 {
			b.Fatalf("%d directories watched, want 1111", len(tr.dirs))
		}
		fw.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1111, "µs/dir")
}

// BenchmarkCreateToBatch measures the time from creating a file to receiving its batch,
// with a 1ms Settle: the watcher's own overhead on top of the quiet time.
func BenchmarkCreateToBatch(b *testing.B) {
	root := b.TempDir()
	w, err := New(root, Options{Settle: time.Millisecond, MaxWait: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan Batch)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, out) }()
	defer func() { cancel(); <-errc }()

	// Wait for the root watch, with fresh names so retries do not postpone each other.
	for i := 0; ; i++ {
		name := fmt.Sprintf("warmup-%d.jpg", i)
		if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		select {
		case <-out:
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("f%d.jpg", i)
		if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		for got := false; !got; {
			select {
			case batch := <-out:
				for _, p := range batch.Paths {
					got = got || p == name
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("%s never reported", name)
			}
		}
	}
}
