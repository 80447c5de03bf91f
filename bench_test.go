package main

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// benchIndex makes an index with n records in folder "f", a tenth of them parked.
func benchIndex(b *testing.B, n int) *store.Store {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "state.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	f := st.Folder("f")
	if err := f.SetMeta(store.Meta{AccountID: validAccount, Root: "/srv/f", IDScheme: "path",
		DeliveryBase: "https://imagedelivery.net/abc", Variants: []string{"public", "thumbnail"}}); err != nil {
		b.Fatal(err)
	}
	rs := make([]store.Record, 0, n)
	for i := range n {
		r := store.Record{Path: fmt.Sprintf("dir%03d/img%06d.jpg", i%500, i), ImageID: fmt.Sprintf("dir%03d/img%06d.jpg", i%500, i),
			SHA256: fmt.Sprintf("%064x", i), Size: 100_000, State: store.StateSynced, UploadedAt: time.Unix(1_700_000_000, 0)}
		if i%10 == 0 {
			r.State, r.LastError, r.ErrorClass = store.StateFailed, "too big", "preflight"
		}
		rs = append(rs, r)
	}
	if err := f.PutMany(rs); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkMetricsScrape is one /metrics answer over an index of 100,000 files: the file
// counts are read from the index at every scrape.
func BenchmarkMetricsScrape(b *testing.B) {
	st := benchIndex(b, 100_000)
	bd := newBoard(st.Path())
	bd.setFolders([]folderConfig{{name: "f", path: "/srv/f"}})
	stats := batchapi.Stats{Requests: map[string]batchapi.RequestCounts{"upload": {Status2xx: 5}}}
	b.ResetTimer()
	for b.Loop() {
		writeMetrics(io.Discard, bd, st, stats)
	}
}

// BenchmarkStatusReport is one status answer over the same index.
func BenchmarkStatusReport(b *testing.B) {
	st := benchIndex(b, 100_000)
	bd := newBoard(st.Path())
	bd.setFolders([]folderConfig{{name: "f", path: "/srv/f"}})
	b.ResetTimer()
	for b.Loop() {
		r := bd.report(st)
		if r.Folders[0].ParkedTotal != 10_000 {
			b.Fatal(r.Folders[0].ParkedTotal)
		}
	}
}

// BenchmarkManifest writes the JSON manifest of 100,000 files.
func BenchmarkManifest(b *testing.B) {
	st := benchIndex(b, 100_000)
	b.ResetTimer()
	for b.Loop() {
		ents, err := manifestEntries(st, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := encodeManifest(io.Discard, ents, "json"); err != nil {
			b.Fatal(err)
		}
	}
}
