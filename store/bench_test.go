package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// benchRecords returns n records in the order a directory walk would produce them: 500
// directories, each with its files in name order.
func benchRecords(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = sampleRecord(fmt.Sprintf("shop/category-%03d/product-%06d.jpg", i*500/n, i))
		rs[i].ImageID = "cat/" + rs[i].Path
		rs[i].SHA256 = fmt.Sprintf("%064x", i*2654435761)
	}
	return rs
}

// BenchmarkIndex100k fills a fresh index with 100,000 records through PutMany in chunks of
// 1,000 (as a first import would), then reads them all back with ForEach. It reports the
// cost per record of both and the file size per record.
//
//	go test -run '^$' -bench Index100k -benchtime 3x ./store/
func BenchmarkIndex100k(b *testing.B) {
	const n = 100_000
	walk := benchRecords(n)
	shuffled := slices.Clone(walk)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b.Run("walk-order", func(b *testing.B) { benchIndex(b, walk) })
	// Random order is the worst case: every chunk touches most leaf pages.
	b.Run("random-order", func(b *testing.B) { benchIndex(b, shuffled) })
}

func benchIndex(b *testing.B, rs []Record) {
	const chunk = 1_000
	n := len(rs)
	var putTime, readTime time.Duration
	var fileSize int64
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "state.db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		f := s.Folder("bench")
		start := time.Now()
		for i := 0; i < n; i += chunk {
			if err := f.PutMany(rs[i : i+chunk]); err != nil {
				b.Fatal(err)
			}
		}
		putTime += time.Since(start)

		start = time.Now()
		seen := 0
		if err := f.ForEach(func(Record) error { seen++; return nil }); err != nil {
			b.Fatal(err)
		}
		readTime += time.Since(start)
		if seen != n {
			b.Fatalf("ForEach saw %d records, want %d", seen, n)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		fileSize = fi.Size()
	}
	b.ReportMetric(float64(putTime.Nanoseconds())/float64(b.N*n), "put-ns/record")
	b.ReportMetric(float64(readTime.Nanoseconds())/float64(b.N*n), "foreach-ns/record")
	b.ReportMetric(float64(fileSize)/float64(n), "file-bytes/record")
	b.ReportMetric(float64(len(encodeRecord(&rs[0]))), "value-bytes/record")
}

// BenchmarkSettle is the per-file write of the syncer: one transaction (and its fsyncs) per
// call, the ceiling on files settled per second by a single writer.
//
//	go test -run '^$' -bench Settle ./store/
func BenchmarkSettle(b *testing.B) {
	s := openTest(b)
	f := s.Folder("bench")
	rs := benchRecords(1000)
	i := 0
	for b.Loop() {
		r := rs[i%len(rs)]
		i++
		id, err := f.AddIntent(Intent{Op: OpUpload, Path: r.Path, ImageID: r.ImageID, SHA256: r.SHA256})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Settle(id, &r, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet is a point lookup in a 100,000-record folder, as the scanner does per file.
//
//	go test -run '^$' -bench Get ./store/
func BenchmarkGet(b *testing.B) {
	s := openTest(b)
	f := s.Folder("bench")
	rs := benchRecords(100_000)
	for i := 0; i < len(rs); i += 10_000 {
		if err := f.PutMany(rs[i : i+10_000]); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, ok, err := f.Get(rs[(i*7919)%len(rs)].Path); err != nil || !ok {
			b.Fatal(ok, err)
		}
		i++
	}
}

// BenchmarkSettleParallel is the syncer's worker pool: 8 goroutines each journaling and
// settling one file after another. ns/op is per file.
//
//	go test -run '^$' -bench SettleParallel ./store/
func BenchmarkSettleParallel(b *testing.B) {
	s := openTest(b)
	f := s.Folder("bench")
	rs := benchRecords(1000)
	var next atomic.Int64
	b.SetParallelism(4) // 4×GOMAXPROCS goroutines, 8 on the 2-core CI machine
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := rs[next.Add(1)%int64(len(rs))]
			id, err := f.AddIntent(Intent{Op: OpUpload, Path: r.Path, ImageID: r.ImageID, SHA256: r.SHA256})
			if err != nil {
				b.Error(err)
				return
			}
			if err := f.Settle(id, &r, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
