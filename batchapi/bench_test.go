package batchapi_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// The benchmarks run the server in a child process (this test binary re-executed), so the
// CPU time, allocations and heap they report are the client's alone.

const childEnv = "BATCHAPI_BENCH_CHILD"

// TestBenchServerChild is the child side: it serves until its stdin closes. It is skipped
// in ordinary test runs.
func TestBenchServerChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("only runs as the benchmarks' server process")
	}
	var url string
	var closeFn func()
	switch mode {
	case "emulator":
		latency, _ := time.ParseDuration(os.Getenv("BENCH_LATENCY"))
		srv := emulator.NewServer(emulator.Options{
			AccountID: testAccount, APIToken: testAPIToken, Latency: latency, TokenTTL: time.Hour,
		})
		url, closeFn = srv.URL, srv.Close
	case "sink":
		srv := &http.Server{Handler: sinkHandler{}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		url = "http://" + ln.Addr().String()
		closeFn = func() { srv.Close() }
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	fmt.Printf("URL=%s\n", url)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	closeFn()
}

// sinkHandler mints tokens and accepts any upload after reading it whole, without storing
// it: the memory benchmark is about the client, and the emulator would keep every file.
type sinkHandler struct{}

func (sinkHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/batch_token") {
		fmt.Fprintf(w, `{"success":true,"errors":[],"messages":[],"result":{"token":"sink-token","expiresAt":%q}}`,
			time.Now().Add(time.Hour).Format(time.RFC3339Nano))
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil || n != r.ContentLength {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"success":false,"errors":[{"code":5400,"message":"read %d of %d bytes"}]}`, n, r.ContentLength)
		return
	}
	fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"x","filename":"x"}}`)
}

func startChild(b *testing.B, mode string, env ...string) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchServerChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL="); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return u
		}
	}
	b.Fatalf("server child exited without a URL: %v", sc.Err())
	return ""
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThroughput uploads small images through the emulator with 50 ms of latency and
// the documented 200 requests/s per token, and reports the achieved rate as a fraction of
// the ceiling (tokens x 200/s). "ratio" is the steady state (first to last completion, so
// the one-latency pipeline fill is not counted); "ratio-wall" includes it.
// Run: go test -run '^$' -bench Throughput -benchtime 2000x ./batchapi/
func BenchmarkThroughput(b *testing.B) {
	const perTokenRate = 200
	for _, tokens := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("tokens=%d", tokens), func(b *testing.B) {
			url := startChild(b, "emulator", "BENCH_LATENCY=50ms")
			c, err := batchapi.New(batchapi.Config{
				AccountID: testAccount, APIToken: testAPIToken,
				APIURL: url + "/client/v4", BatchURL: url,
				BatchTokens: tokens, TokenRate: perTokenRate,
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			workers := 32 * tokens // rate x latency = 10 in flight per token; 3x headroom
			img := pngBytes(b, 1)

			// Warm up: mint every token and open the connections.
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() { _, _ = c.Get(ctx, "warm-up") })
			}
			wg.Wait()
			before := c.Stats()
			var seq atomic.Int64
			var first, last atomic.Int64
			cpu0 := cpuTime()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Go(func() {
					for {
						i := seq.Add(1)
						if i > int64(b.N) {
							return
						}
						_, err := c.Upload(ctx, batchapi.UploadRequest{
							ID: fmt.Sprintf("bench/%d/%d", w, i), Content: bytesReaderAt(img), Size: int64(len(img)),
						})
						if err != nil {
							b.Error(err)
							return
						}
						now := time.Since(start).Nanoseconds()
						first.CompareAndSwap(0, now)
						for {
							l := last.Load()
							if now <= l || last.CompareAndSwap(l, now) {
								break
							}
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			cpu := cpuTime() - cpu0
			after := c.Stats()
			ceiling := float64(tokens * perTokenRate)
			if span := time.Duration(last.Load() - first.Load()); b.N > 1 && span > 0 {
				b.ReportMetric(float64(b.N-1)/span.Seconds()/ceiling, "ratio")
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds()/ceiling, "ratio-wall")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "uploads/s")
			b.ReportMetric(float64(after.Requests[batchapi.OpUpload].Status429-before.Requests[batchapi.OpUpload].Status429), "429s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

type bytesReaderAt []byte

func (p bytesReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(p)) {
		return 0, io.EOF
	}
	n := copy(b, p[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// BenchmarkUploadMemory uploads 5 MB files with 128 uploads in flight (4 tokens' worth of
// workers) to a server that reads and discards them, and reports the client's peak heap in
// use above idle. Uploads stream from the file, so it should stay far below 128 x 5 MB.
// Run: go test -run '^$' -bench UploadMemory -benchtime 512x ./batchapi/
func BenchmarkUploadMemory(b *testing.B) {
	const size = 5 << 20
	path := filepath.Join(b.TempDir(), "big.bin")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	data = nil
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()

	url := startChild(b, "sink")
	c, err := batchapi.New(batchapi.Config{
		AccountID: testAccount, APIToken: testAPIToken,
		APIURL: url + "/client/v4", BatchURL: url,
		BatchTokens: 4, TokenRate: 200,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const workers = 128

	runtime.GC()
	idle := heapInuse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInuse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	var seq atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := seq.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := c.Upload(ctx, batchapi.UploadRequest{ID: fmt.Sprintf("big/%d/%d", w, i), Content: f, Size: size}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	<-sampled
	above := float64(0)
	if p := peak.Load(); p > idle {
		above = float64(p-idle) / (1 << 20)
	}
	b.ReportMetric(above, "peak-heap-MB")
	if above > 64 {
		b.Logf("peak heap %.1f MB above idle exceeds the 64 MB goal", above)
	}
}

var heapMetrics = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}

// heapInuse is MemStats.HeapInuse without stopping the world: objects plus unused
// space in in-use spans.
func heapInuse() uint64 {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	var sum uint64
	for _, m := range s {
		if m.Value.Kind() == metrics.KindUint64 {
			sum += m.Value.Uint64()
		}
	}
	return sum
}
