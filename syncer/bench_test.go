package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// BenchmarkSyncOnceUpload measures a first import: b.N files of ~300 bytes uploaded to the
// emulator over loopback with 50 ms of added latency per call, as from a distant API.
// files/s is the figure to watch; with Concurrency 16 it is bounded by 16/latency.
func BenchmarkSyncOnceUpload(b *testing.B) {
	for _, lat := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", lat), func(b *testing.B) {
			e := newEnvTB(b)
			e.em.SetLatency(lat)
			for i := range b.N {
				e.write(fmt.Sprintf("d%d/f%d.png", i%10, i), pngBytes(i))
			}
			s := e.syncerWith(e.client, func(c *Config) { c.Concurrency = 16 })
			b.ResetTimer()
			sum, err := s.SyncOnce(context.Background())
			b.StopTimer()
			if err != nil || sum.Uploaded != b.N {
				b.Fatalf("summary %+v, %v", sum, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// BenchmarkSyncOnceUnchanged measures a full pass over an unchanged folder of 2000 files:
// a walk, a stat per file and one index read, no file contents and no API calls.
func BenchmarkSyncOnceUnchanged(b *testing.B) {
	const n = 2000
	e := newEnvTB(b)
	for i := range n {
		e.write(fmt.Sprintf("d%d/f%d.png", i%20, i), pngBytes(i))
	}
	s := e.syncerWith(e.client, func(c *Config) { c.Concurrency = 16; c.MaxDelete = n })
	if sum, err := s.SyncOnce(context.Background()); err != nil || sum.Uploaded != n {
		b.Fatalf("setup: %+v, %v", sum, err)
	}
	b.ResetTimer()
	for range b.N {
		sum, err := s.SyncOnce(context.Background())
		if err != nil || sum.Unchanged != n {
			b.Fatalf("summary %+v, %v", sum, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkSyncOnceUploadPaced is BenchmarkSyncOnceUpload with the real pacing: the
// emulator allows 200 requests/second per batch token and the client paces itself to it,
// with 50 ms of latency. The ceiling is 200 files/s (one request per new file).
func BenchmarkSyncOnceUploadPaced(b *testing.B) {
	e := newEnvTB(b)
	paced := emulator.NewServer(emulator.Options{Latency: 50 * time.Millisecond})
	b.Cleanup(paced.Close)
	client, err := batchapi.New(batchapi.Config{
		AccountID: "023e105f4ecef8ad9ca31a8372d0c353", APIToken: "emulator-api-token",
		APIURL: paced.APIURL(), BatchURL: paced.BatchURL(),
	})
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		e.write(fmt.Sprintf("d%d/f%d.png", i%10, i), pngBytes(i))
	}
	s := e.syncerWith(client, func(c *Config) { c.Concurrency = 0 }) // the default, 16
	b.ResetTimer()
	sum, err := s.SyncOnce(context.Background())
	b.StopTimer()
	if err != nil || sum.Uploaded != b.N {
		b.Fatalf("summary %+v, %v", sum, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}
