package main

// metrics.go: Prometheus text exposition on metrics_listen (/metrics) and a health check
// (/healthz). Hand-written: a dozen families do not justify the client library.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenMetrics binds addr now, so a port clash fails the start instead of being logged
// later; stats reads the current API client's counters.
func listenMetrics(addr string, b *board, st *store.Store, stats func() batchapi.Stats) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, b, st, stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		phase, perr := b.phase, b.phaseErr
		b.mu.Unlock()
		if phase == phaseRunning || phase == phaseReloading {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, phase+": "+perr)
	})
	return &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

func (m *metricsServer) addr() string { return m.ln.Addr().String() }

func (m *metricsServer) serve(ctx context.Context) error { return serveUntil(ctx, m.srv, m.ln) }

// expo writes the exposition format: a HELP and TYPE line per family, then its samples.
type expo struct {
	w io.Writer
}

func (e expo) family(name, typ, help string) {
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes one line; labels alternate name, value.
func (e expo) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	b.WriteByte('\n')
	io.WriteString(e.w, b.String())
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func writeMetrics(w io.Writer, b *board, st *store.Store, stats batchapi.Stats) {
	e := expo{w}
	b.mu.Lock()
	phase := b.phase
	folders := make([]*folderBoard, 0, len(b.order))
	for _, n := range b.order {
		folders = append(folders, b.folders[n])
	}
	retries := make(map[[2]string]int64, len(b.retries))
	for k, v := range b.retries {
		retries[k] = v
	}
	b.mu.Unlock()

	e.family("cfimgsync_build_info", "gauge", "Version of the running daemon.")
	e.sample("cfimgsync_build_info", 1, "version", version)
	e.family("cfimgsync_api_reachable", "gauge", "1 once the API answered at start, 0 while waiting for it.")
	up := 0.0
	if phase == phaseRunning || phase == phaseReloading {
		up = 1
	}
	e.sample("cfimgsync_api_reachable", up)

	e.family("cfimgsync_files", "gauge", "Files in the index by state.")
	for _, f := range folders {
		counts := map[string]int{store.StateSynced.String(): 0, store.StatePending.String(): 0, store.StateFailed.String(): 0}
		_ = st.Folder(f.name).ForEach(func(r store.Record) error {
			counts[r.State.String()]++
			return nil
		})
		for _, s := range sortedKeys(counts) {
			e.sample("cfimgsync_files", float64(counts[s]), "folder", f.name, "state", s)
		}
	}
	type folderSnap struct {
		name                       string
		queue, retrying            int
		ops                        map[string]int64
		bytes, passes, rescanHints int64
		lastSync                   time.Time
	}
	snaps := make([]folderSnap, 0, len(folders))
	for _, f := range folders {
		f.mu.Lock()
		s := folderSnap{name: f.name, queue: max(f.read-f.finished, 0), ops: map[string]int64{},
			bytes: f.bytes, passes: f.passes, rescanHints: f.rescanHints, lastSync: f.lastSync}
		for k, v := range f.ops {
			s.ops[k] = v
		}
		f.mu.Unlock()
		s.retrying = len(f.retries())
		snaps = append(snaps, s)
	}
	e.family("cfimgsync_queue_depth", "gauge", "Files read in the current pass whose operation has not finished.")
	for _, s := range snaps {
		e.sample("cfimgsync_queue_depth", float64(s.queue), "folder", s.name)
	}
	e.family("cfimgsync_retry_queue_depth", "gauge", "Files waiting for another attempt after a transient failure.")
	for _, s := range snaps {
		e.sample("cfimgsync_retry_queue_depth", float64(s.retrying), "folder", s.name)
	}
	e.family("cfimgsync_operations_total", "counter", "Finished per-file operations by kind (fail: a file that could not be synced).")
	for _, s := range snaps {
		for _, op := range []string{"upload", "replace", "update", "delete", "skip", "fail"} {
			e.sample("cfimgsync_operations_total", float64(s.ops[op]), "folder", s.name, "op", op)
		}
	}
	e.family("cfimgsync_uploaded_bytes_total", "counter", "Bytes of image content uploaded.")
	for _, s := range snaps {
		e.sample("cfimgsync_uploaded_bytes_total", float64(s.bytes), "folder", s.name)
	}
	e.family("cfimgsync_passes_total", "counter", "Reconcile passes finished.")
	for _, s := range snaps {
		e.sample("cfimgsync_passes_total", float64(s.passes), "folder", s.name)
	}
	e.family("cfimgsync_watcher_rescans_total", "counter", "Rescans the watcher asked for (event overflow, lost watch, root back).")
	for _, s := range snaps {
		e.sample("cfimgsync_watcher_rescans_total", float64(s.rescanHints), "folder", s.name)
	}
	e.family("cfimgsync_last_success_timestamp_seconds", "gauge", "Unix time of the end of the last pass without a folder-wide error (0: none yet).")
	for _, s := range snaps {
		v := 0.0
		if !s.lastSync.IsZero() {
			v = float64(s.lastSync.UnixMilli()) / 1000
		}
		e.sample("cfimgsync_last_success_timestamp_seconds", v, "folder", s.name)
	}

	e.family("cfimgsync_api_requests_total", "counter", "HTTP exchanges with the Images API by operation and outcome.")
	ops := make([]string, 0, len(stats.Requests))
	for op := range stats.Requests {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		rc := stats.Requests[op]
		for _, c := range []struct {
			code string
			n    int64
		}{{"2xx", rc.Status2xx}, {"3xx", rc.Status3xx}, {"4xx", rc.Status4xx}, {"429", rc.Status429}, {"5xx", rc.Status5xx}, {"neterr", rc.NetErr}} {
			e.sample("cfimgsync_api_requests_total", float64(c.n), "op", op, "code", c.code)
		}
	}
	e.family("cfimgsync_api_retries_total", "counter", "Retries of API calls by operation and the cause of the failed attempt.")
	keys := make([][2]string, 0, len(retries))
	for k := range retries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		e.sample("cfimgsync_api_retries_total", float64(retries[k]), "op", k[0], "code", k[1])
	}
	e.family("cfimgsync_api_throttled_seconds_total", "counter", "Time API calls waited: on the client's rate limiters (limiter) and in backoff or Retry-After (retry).")
	e.sample("cfimgsync_api_throttled_seconds_total", stats.LimiterWait.Seconds(), "wait", "limiter")
	e.sample("cfimgsync_api_throttled_seconds_total", stats.RetryWait.Seconds(), "wait", "retry")
	e.family("cfimgsync_batch_tokens_minted_total", "counter", "Batch tokens fetched from the global API.")
	e.sample("cfimgsync_batch_tokens_minted_total", float64(stats.TokensMinted))
}
