package syncer

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkScale100k imports a generated tree of small files (100,000 by default;
// CFIMGSYNC_SCALE_FILES overrides) into the emulator, then runs a no-op full pass over the
// unchanged tree. It reports both pass times side by side, their ratio, the index file
// size, and the Go heap: the first pass's peak above the start (this includes the
// in-process emulator's copy of every image), what is retained after it (mostly that
// copy), and the no-op pass's peak above what was retained (the rescan's own cost). The no-op pass must be stat only: zero API
// calls and zero file reads, which the benchmark checks rather than assumes.
//
//	go test -run '^$' -bench Scale100k -benchtime 1x -timeout 30m ./syncer/
func BenchmarkScale100k(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CFIMGSYNC_SCALE_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		b.StopTimer()
		e := newEnvTB(b)
		for i := range n {
			// 100 files per directory in 1,000 directories, like a CMS's dated folders.
			e.write(fmt.Sprintf("y%d/d%03d/f%05d.png", i/50_000, (i/100)%1000, i), pngBytes(i))
		}
		s := e.syncerWith(e.client, func(c *Config) { c.Concurrency = 32; c.MaxDelete = n })
		base := settledHeap()
		peak := watchHeap()
		b.StartTimer()

		start := time.Now()
		sum, err := s.SyncOnce(context.Background())
		first := time.Since(start)
		if err != nil || sum.Uploaded != n {
			b.Fatalf("first pass: %+v, %v", sum.Uploaded, err)
		}

		firstPeak := peak()
		// What stays after the first pass is mostly the in-process emulator's copy of every
		// image; the no-op pass's own cost is its peak above that.
		retained := settledHeap()
		peak = watchHeap()
		e.em.ResetCalls()
		reads := s.reads.Load()
		start = time.Now()
		sum, err = s.SyncOnce(context.Background())
		noop := time.Since(start)
		if err != nil || sum.Unchanged != n {
			b.Fatalf("no-op pass: unchanged %d of %d, %v", sum.Unchanged, n, err)
		}
		if calls := e.em.Calls(); sumCalls(calls) != 0 {
			b.Fatalf("no-op pass made API calls: %v", calls)
		}
		if r := s.reads.Load() - reads; r != 0 {
			b.Fatalf("no-op pass read %d files", r)
		}
		b.StopTimer()
		noopPeak := peak()

		fi, err := os.Stat(e.st.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "files")
		b.ReportMetric(first.Seconds(), "first-scan-s")
		b.ReportMetric(noop.Seconds(), "noop-rescan-s")
		b.ReportMetric(first.Seconds()/noop.Seconds(), "first/noop")
		b.ReportMetric(mib(firstPeak-min(base, firstPeak)), "first-peak-heap-MiB")
		b.ReportMetric(mib(retained-min(base, retained)), "retained-heap-MiB")
		b.ReportMetric(mib(noopPeak-min(retained, noopPeak)), "noop-peak-heap-MiB")
		b.ReportMetric(float64(fi.Size())/(1<<20), "index-MiB")
		b.ReportMetric(float64(fi.Size())/float64(n), "index-B/file")
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// settledHeap is the heap in use after a collection.
func settledHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// sumCalls adds up the per-operation counters of emulator.Calls (the summary counters
// such as "global" and "batch" count the same calls again, so only operations count).
func sumCalls(calls map[string]int) int {
	total := 0
	for _, op := range []string{"upload", "get", "update", "delete", "list", "batch_token", "direct_upload"} {
		total += calls[op]
	}
	return total
}

// watchHeap samples the Go heap until the returned function is called, which stops the
// sampling and returns the peak in bytes. The sampling interval bounds how short a peak
// it can miss; passes over 100,000 files last seconds, so 20 ms is fine-grained enough.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}
