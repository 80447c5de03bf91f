package syncer

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
)

// benchFolder is a synced folder of n files, for the verify and reindex benchmarks.
func benchFolder(b *testing.B, n int) *env {
	e := newEnvTB(b)
	for i := range n {
		e.write(fmt.Sprintf("d%d/f%d.png", i%20, i), pngBytes(i))
	}
	s := e.syncerWith(e.client, func(c *Config) { c.Concurrency = 16 })
	if sum, err := s.SyncOnce(context.Background()); err != nil || sum.Uploaded != n {
		b.Fatalf("setup: %+v, %v", sum, err)
	}
	return e
}

// BenchmarkVerify2000 measures a verify of 2000 images that are all in place: the listing
// (list calls/op) and one index read, no write call.
func BenchmarkVerify2000(b *testing.B) {
	const n = 2000
	e := benchFolder(b, n)
	e.em.ResetCalls()
	b.ResetTimer()
	for range b.N {
		rep, err := e.syncer().Verify(context.Background(), false)
		if err != nil || rep.Listed != n || len(rep.Missing)+len(rep.Orphans) != 0 {
			b.Fatalf("%+v, %v", rep, err)
		}
	}
	b.StopTimer()
	if e.em.WriteCalls() != 0 {
		b.Fatalf("%d write calls", e.em.WriteCalls())
	}
	b.ReportMetric(float64(e.em.Calls()[emulator.RouteList])/float64(b.N), "list-calls/op")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkReindex2000 measures rebuilding the index of a folder of 2000 synced files into
// a fresh index file: listing, reading and hashing every file, no upload.
func BenchmarkReindex2000(b *testing.B) {
	const n = 2000
	e := benchFolder(b, n)
	e.em.ResetCalls()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		st, err := store.Open(filepath.Join(b.TempDir(), fmt.Sprintf("r%d.db", i)), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(e.config(), st.Folder("default"), e.client)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := s.Reindex(context.Background())
		b.StopTimer()
		st.Close()
		if err != nil || rep.Matched != n {
			b.Fatalf("%+v, %v", rep, err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if c := e.em.Calls(); e.em.WriteCalls() != 0 {
		b.Fatalf("write calls: %v", c)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
}
