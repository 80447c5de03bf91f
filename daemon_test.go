package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
)

// writePNGs writes n small, distinct PNG files under dir/sub.
func writePNGs(t *testing.T, dir, sub string, n int) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
		t.Fatal(err)
	}
	var rels []string
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 8, 8))
		for p := range img.Pix {
			img.Pix[p] = byte(i*37 + p)
		}
		img.Set(0, 0, color.RGBA{byte(i), byte(i >> 8), 7, 255})
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		rel := fmt.Sprintf("%s/img%03d.png", sub, i)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	return rels
}

// folderSpec is one [[folder]] of a test config.
type folderSpec struct{ path, name, prefix string }

// writeTestConfig writes a config for the emulator at base (http://host:port).
func writeTestConfig(t *testing.T, path, base, state string, extra string, folders ...folderSpec) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "account_id = %q\napi_url = %q\nbatch_url = %q\nstate = %q\nmetrics_listen = \"127.0.0.1:0\"\nlog_format = \"text\"\nconcurrency = 4\n%s\n",
		emulatorAccountID, base+"/client/v4", base, state, extra)
	for _, f := range folders {
		fmt.Fprintf(&b, "[[folder]]\npath = %q\nname = %q\nprefix = %q\nsettle = \"100ms\"\n", f.path, f.name, f.prefix)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runningDaemon is a daemon run in-process by a test.
type runningDaemon struct {
	d      *daemon
	cancel context.CancelFunc
	done   chan error
}

func startDaemon(t *testing.T, cfgPath string, tune ...func(*daemon)) *runningDaemon {
	t.Helper()
	t.Setenv("CLOUDFLARE_API_TOKEN", emulatorAPIToken)
	ctx, cancel := context.WithCancel(context.Background())
	rd := &runningDaemon{cancel: cancel, done: make(chan error, 1)}
	rd.d = &daemon{
		load:        func() (*config, error) { return loadConfig(cfgPath, os.Getenv) },
		logger:      testLogger(t),
		apiRetry:    20 * time.Millisecond,
		apiRetryMax: 200 * time.Millisecond,
		folderRetry: 20 * time.Millisecond,
	}
	for _, f := range tune {
		f(rd.d)
	}
	go func() { rd.done <- rd.d.run(ctx) }()
	t.Cleanup(func() { rd.stop(t) })
	return rd
}

// stop asks the daemon to stop and returns its error (nil for a clean stop).
func (rd *runningDaemon) stop(t *testing.T) error {
	t.Helper()
	rd.cancel()
	select {
	case err, ok := <-rd.done:
		if !ok {
			return nil
		}
		close(rd.done)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("daemon still running 60s after cancel")
		return nil
	}
}

// poll waits for cond, failing the test with what() after d.
func poll(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v: %s", d, what())
		}
		// A short pause between polls; the condition, not this pause, is what the test
		// waits for.
		<-time.After(20 * time.Millisecond)
	}
}

// daemonStatus asks the daemon at state over its socket; ok is false if none answered.
func daemonStatus(state string) (statusReport, bool) {
	r, err := statusFromDaemonOrIndex(context.Background(), state)
	return r, err == nil && r.Daemon
}

func folderOf(r statusReport, name string) (folderReport, bool) {
	for _, f := range r.Folders {
		if f.Name == name {
			return f, true
		}
	}
	return folderReport{}, false
}

// TestDaemonWaitsForTheAPI starts the daemon with the API down (nothing listens on its
// port), then brings the emulator up on that port: the daemon must wait, then sync.
func TestDaemonWaitsForTheAPI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	rels := writePNGs(t, dir, "shop", 3)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, "http://"+addr, state, "", folderSpec{dir, "shop", ""})
	rd := startDaemon(t, cfgPath)

	var last statusReport
	poll(t, 20*time.Second, func() bool {
		r, ok := daemonStatus(state)
		last = r
		return ok && r.Phase == phaseWaitingAPI
	}, func() string { return fmt.Sprintf("status %+v", last) })
	if last.PhaseError == "" {
		t.Error("waiting for the API without saying why")
	}
	resp, err := http.Get("http://" + last.MetricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz while waiting: %d, want 503", resp.StatusCode)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	e := emulator.New(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	sctx, stopServer := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- emulator.Serve(sctx, ln, e) }()
	defer func() { stopServer(); <-served }()

	poll(t, 30*time.Second, func() bool { return len(e.Images()) == len(rels) },
		func() string { return fmt.Sprintf("%d images", len(e.Images())) })
	if err := rd.stop(t); err != nil {
		t.Fatalf("daemon: %v", err)
	}
}

// TestRunningDaemonStatusMetricsManifest syncs a folder with a parked file and reads the
// daemon's status, metrics and manifest while it runs, then status and manifest offline.
func TestRunningDaemonStatusMetricsManifest(t *testing.T) {
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	rels := writePNGs(t, dir, "a", 4)
	if err := os.WriteFile(filepath.Join(dir, "notes.jpg"), []byte("text, not a JPEG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	manifestPath := filepath.Join(t.TempDir(), "manifest.csv")
	writeTestConfig(t, cfgPath, srv.URL, state, fmt.Sprintf("manifest_file = %q", manifestPath), folderSpec{dir, "site", "p/"})
	rd := startDaemon(t, cfgPath)

	var r statusReport
	poll(t, 30*time.Second, func() bool {
		var ok bool
		r, ok = daemonStatus(state)
		f, _ := folderOf(r, "site")
		return ok && f.State == folderIdle && f.Files["synced"] == len(rels)
	}, func() string { return fmt.Sprintf("status %+v", r) })

	// status, as the command prints it.
	code, out, errOut := runCLI(t, "status", "--state", state)
	if code != exitOK {
		t.Fatalf("status exit %d: %s", code, errOut)
	}
	for _, want := range []string{"daemon: running", "folder site: idle", "4 synced", "1 failed", "notes.jpg", "last sync"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	f, _ := folderOf(r, "site")
	if f.ParkedTotal != 1 || len(f.Parked) != 1 || f.Parked[0].Path != "notes.jpg" || f.Parked[0].Reason == "" {
		t.Errorf("parked: %+v", f.Parked)
	}
	if f.LastSync == nil || f.Path != dir {
		t.Errorf("folder report: %+v", f)
	}
	if fi, err := os.Stat(socketPath(state)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// metrics.
	resp, err := http.Get("http://" + r.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	for _, want := range []string{
		`cfimgsync_files{folder="site",state="synced"} 4`,
		`cfimgsync_files{folder="site",state="failed"} 1`,
		`cfimgsync_operations_total{folder="site",op="upload"} 4`,
		`cfimgsync_queue_depth{folder="site"} 0`,
		`cfimgsync_retry_queue_depth{folder="site"} 0`,
		`cfimgsync_api_requests_total{op="upload",code="2xx"} 4`,
		`cfimgsync_api_reachable 1`,
		"# TYPE cfimgsync_api_retries_total counter",
		"# TYPE cfimgsync_watcher_rescans_total counter",
		`cfimgsync_api_throttled_seconds_total{wait="limiter"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if strings.Contains(metrics, `cfimgsync_last_success_timestamp_seconds{folder="site"} 0`+"\n") {
		t.Error("last success not set after a sync")
	}
	if strings.Contains(metrics, emulatorAPIToken) {
		t.Error("metrics contain the API token")
	}
	resp, err = http.Get("http://" + r.MetricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz %d", resp.StatusCode)
	}

	// ls through the daemon (it holds the index lock), as text and as JSON lines.
	code, out, errOut = runCLI(t, "ls", "--state", state)
	if code != exitOK || strings.Count(out, "synced ") != len(rels) || !strings.Contains(out, "notes.jpg") {
		t.Errorf("ls while the daemon runs: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "ls", "--state", state, "--json", "--folder", "site")
	if code != exitOK || strings.Count(out, `"folder":"site"`) != len(rels)+1 {
		t.Errorf("ls --json while the daemon runs: exit %d\n%s", code, out)
	}

	// The manifest through the daemon (it holds the index lock).
	code, out, errOut = runCLI(t, "manifest", "--state", state, "--format", "json")
	if code != exitOK {
		t.Fatalf("manifest exit %d: %s", code, errOut)
	}
	checkManifestJSON(t, out, srv.URL, rels, "p/")
	// manifest_file is kept by the daemon.
	poll(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(manifestPath)
		return err == nil && strings.Count(string(b), "\n") == 1+2*len(rels)
	}, func() string { b, _ := os.ReadFile(manifestPath); return string(b) })

	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}

	// Offline: no socket answers, the index is read read-only.
	if _, err := os.Stat(socketPath(state)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	code, out, errOut = runCLI(t, "status", "--state", state, "--json")
	if code != exitOK {
		t.Fatalf("offline status exit %d: %s", code, errOut)
	}
	var off statusReport
	if err := json.Unmarshal([]byte(out), &off); err != nil {
		t.Fatal(err)
	}
	fo, ok := folderOf(off, "site")
	if off.Daemon || !ok || fo.State != folderNotRunning || fo.Files["synced"] != len(rels) || fo.ParkedTotal != 1 || fo.Path != dir {
		t.Errorf("offline status: %+v", off)
	}
	out2 := filepath.Join(t.TempDir(), "m.csv")
	if code, _, errOut := runCLI(t, "manifest", "--state", state, "--format", "csv", "--out", out2); code != exitOK {
		t.Fatalf("offline manifest exit %d: %s", code, errOut)
	}
	checkManifestCSV(t, out2, srv.URL, rels, "p/")
}

func checkManifestJSON(t *testing.T, out, base string, rels []string, prefix string) {
	t.Helper()
	var ents []manifestEntry
	if err := json.Unmarshal([]byte(out), &ents); err != nil {
		t.Fatalf("manifest JSON: %v\n%s", err, out)
	}
	if len(ents) != len(rels) {
		t.Fatalf("%d entries, want %d (only synced files)", len(ents), len(rels))
	}
	for i, e := range ents {
		if e.Path != rels[i] || e.ImageID != prefix+rels[i] {
			t.Errorf("entry %d: %+v", i, e)
		}
		u := e.URLs["public"]
		if !strings.HasPrefix(u, base) || !strings.HasSuffix(u, "/"+prefix+rels[i]+"/public") {
			t.Errorf("entry %d URL %q", i, u)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
}

func checkManifestCSV(t *testing.T, path, base string, rels []string, prefix string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+2*len(rels) || strings.Join(rows[0], ",") != "folder,path,image_id,variant,url" {
		t.Fatalf("CSV rows: %v", rows)
	}
	for _, row := range rows[1:] {
		if !strings.HasPrefix(row[2], prefix) || !strings.HasPrefix(row[4], base) || !strings.HasSuffix(row[4], "/"+row[3]) {
			t.Errorf("row %v", row)
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestStatusWhenTheIndexIsLockedAndNoSocketAnswers(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The lock is held for the whole test, so a status that waited for it would never
	// answer; that it answers at all is the check.
	code, _, errOut := runCLI(t, "status", "--state", state)
	if code == exitOK || !strings.Contains(errOut, "a daemon holds the index") || !strings.Contains(errOut, "did not answer") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, "status", "--state", filepath.Join(t.TempDir(), "none.db"))
	if code == exitOK || !strings.Contains(errOut, "no index") {
		t.Errorf("no index: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestRunExitsNonZeroOnAFatalError(t *testing.T) {
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, filepath.Join(t.TempDir(), "state.db"), "", folderSpec{t.TempDir(), "x", ""})
	t.Setenv("CLOUDFLARE_API_TOKEN", "wrong-token")
	code, out, errOut := runCLI(t, "run", "--config", cfgPath)
	if code != exitAuth {
		t.Errorf("exit %d, want %d\n%s\n%s", code, exitAuth, out, errOut)
	}
	if strings.Contains(out+errOut, "wrong-token") {
		t.Error("the token was printed")
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("rate = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "run", "--config", bad); code != exitUsage || !strings.Contains(errOut, "bad.toml:1: rate") {
		t.Errorf("bad config: exit %d\n%s", code, errOut)
	}
}

// buildCLI builds the binary for tests that signal a real process.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cfimgsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a child process under test.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "CLOUDFLARE_API_TOKEN="+emulatorAPIToken)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signalAndWait sends sig and waits for the exit; it fails unless the exit code is 0.
func (p *proc) signalAndWait(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after %v: %v\n%s", sig, err, p.out.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("still running 90s after %v\n%s", sig, p.out.String())
	}
}

// TestSIGTERMWithUploadsInFlight stops the service while uploads are in flight (the
// emulator answers slowly): every call that was made is recorded, nothing is left in the
// journal, and a restart completes the mirror without uploading anything twice.
func TestSIGTERMWithUploadsInFlight(t *testing.T) {
	bin := buildCLI(t)
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken, Latency: 300 * time.Millisecond})
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	const n = 40
	writePNGs(t, dir, "batch", n)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{dir, "f", ""})

	p := startProc(t, bin, "run", "--config", cfgPath)
	poll(t, 60*time.Second, func() bool { return len(srv.Emulator.Images()) >= 3 },
		func() string { return p.out.String() })
	p.signalAndWait(t, syscall.SIGTERM)

	uploadsBefore := srv.Emulator.Calls()[emulator.RouteUpload]
	images := len(srv.Emulator.Images())
	st, err := store.Open(state, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	f := st.Folder("f")
	intents, err := f.Intents()
	if err != nil {
		t.Fatal(err)
	}
	synced := 0
	err = f.ForEach(func(r store.Record) error {
		if r.State == store.StateSynced {
			synced++
			if _, ok := srv.Emulator.Image(r.ImageID); !ok {
				t.Errorf("%s is synced in the index but not remotely", r.Path)
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(intents) != 0 {
		t.Errorf("%d intents left after a clean stop: %+v", len(intents), intents)
	}
	if synced != images || uploadsBefore != images {
		t.Errorf("after SIGTERM: %d synced in the index, %d images, %d upload calls; want all equal", synced, images, uploadsBefore)
	}
	t.Logf("at the stop: %d of %d images uploaded", images, n)
	if images == n {
		t.Logf("all %d uploads finished before the stop; the in-flight case was not exercised this time", n)
	}
	if !strings.Contains(p.out.String(), "in-flight calls finished") {
		t.Errorf("no shutdown log line:\n%s", p.out.String())
	}

	// Restart: the mirror completes, and no file is uploaded twice.
	q := startProc(t, bin, "sync", "--config", cfgPath, "--once")
	select {
	case err := <-q.done:
		if err != nil {
			t.Fatalf("sync --once: %v\n%s", err, q.out.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("sync --once did not finish\n%s", q.out.String())
	}
	if got := len(srv.Emulator.Images()); got != n {
		t.Errorf("%d images after the restart, want %d", got, n)
	}
	if got := srv.Emulator.Calls()[emulator.RouteUpload]; got != n {
		t.Errorf("%d upload calls in all, want %d (one per file)", got, n)
	}
}

// TestSIGHUPReloadsTheConfig adds a folder to the config and sends SIGHUP: the new folder
// is mirrored by the same process. A broken config on reload keeps the running one.
func TestSIGHUPReloadsTheConfig(t *testing.T) {
	bin := buildCLI(t)
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	a, b := t.TempDir(), t.TempDir()
	writePNGs(t, a, "x", 2)
	writePNGs(t, b, "y", 3)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{a, "a", "a/"})

	p := startProc(t, bin, "run", "--config", cfgPath)
	poll(t, 30*time.Second, func() bool { return len(srv.Emulator.Images()) == 2 }, func() string { return p.out.String() })

	// A broken config: the daemon logs it and carries on with the old one.
	if err := os.WriteFile(cfgPath, []byte("this is not = = toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, func() bool { return strings.Contains(p.out.String(), "reload failed") }, func() string { return p.out.String() })

	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{a, "a", "a/"}, folderSpec{b, "b", "b/"})
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, func() bool { return len(srv.Emulator.Images()) == 5 }, func() string { return p.out.String() })
	if _, ok := srv.Emulator.Image("b/y/img000.png"); !ok {
		t.Errorf("folder b not mirrored under its prefix: %v", srv.Emulator.Images())
	}
	var r statusReport
	poll(t, 30*time.Second, func() bool {
		var ok bool
		r, ok = daemonStatus(state)
		fa, _ := folderOf(r, "a")
		fb, _ := folderOf(r, "b")
		return ok && fa.Files["synced"] == 2 && fb.Files["synced"] == 3
	}, func() string { return fmt.Sprintf("%+v", r) })
	if r.PID != p.cmd.Process.Pid {
		t.Errorf("status answered by pid %d, want %d", r.PID, p.cmd.Process.Pid)
	}
	if got := srv.Emulator.Calls()[emulator.RouteUpload]; got != 5 {
		t.Errorf("%d upload calls, want 5: the reload uploaded folder a again", got)
	}
	p.signalAndWait(t, syscall.SIGTERM)
}

// TestDaemonWaitsForAMissingFolder starts with one folder present and one not yet there (a
// disk mounted late): the first syncs at once, the second once it appears.
func TestDaemonWaitsForAMissingFolder(t *testing.T) {
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	present := t.TempDir()
	writePNGs(t, present, "p", 2)
	late := filepath.Join(t.TempDir(), "late")
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{present, "present", "p/"}, folderSpec{late, "late", "l/"})
	rd := startDaemon(t, cfgPath)

	var r statusReport
	poll(t, 30*time.Second, func() bool {
		var ok bool
		r, ok = daemonStatus(state)
		fl, _ := folderOf(r, "late")
		return ok && fl.State == folderUnavailable && len(srv.Emulator.Images()) == 2
	}, func() string { return fmt.Sprintf("%+v, %d images", r, len(srv.Emulator.Images())) })
	if fl, _ := folderOf(r, "late"); !strings.Contains(fl.LastError, "folder unavailable") {
		t.Errorf("late folder's error: %q", fl.LastError)
	}

	tmp := filepath.Join(filepath.Dir(late), "staging")
	writePNGs(t, tmp, "q", 3)
	if err := os.Rename(tmp, late); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, func() bool { return len(srv.Emulator.Images()) == 5 },
		func() string { return fmt.Sprintf("%d images", len(srv.Emulator.Images())) })
	if _, ok := srv.Emulator.Image("l/q/img002.png"); !ok {
		t.Errorf("late folder not mirrored: %v", srv.Emulator.Images())
	}
	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestStatusShowsRetries makes every upload fail with a server error: the files wait in
// the syncer's retry queue, and status and metrics say so.
func TestStatusShowsRetries(t *testing.T) {
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	srv.Emulator.SetFailRate(emulator.RouteUpload, 1)
	dir := t.TempDir()
	writePNGs(t, dir, "r", 2)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{dir, "r", ""})
	rd := startDaemon(t, cfgPath, func(d *daemon) {
		// One attempt per call, so the failure reaches the syncer's own retry queue at once.
		d.newClient = func(cc batchapi.Config) (*batchapi.Client, error) {
			cc.MaxAttempts = 1
			return batchapi.New(cc)
		}
	})
	var r statusReport
	poll(t, 30*time.Second, func() bool {
		var ok bool
		r, ok = daemonStatus(state)
		f, _ := folderOf(r, "r")
		return ok && f.RetryingTotal == 2
	}, func() string { return fmt.Sprintf("%+v", r) })
	f, _ := folderOf(r, "r")
	if len(f.Retrying) != 2 || f.Retrying[0].Attempt < 1 || f.Retrying[0].Due.IsZero() {
		t.Errorf("retrying: %+v", f.Retrying)
	}
	if !strings.Contains(f.LastError, "r/img00") {
		t.Errorf("last error %q does not name the file", f.LastError)
	}
	code, out, _ := runCLI(t, "status", "--state", state)
	if code != exitOK || !strings.Contains(out, "retrying (2):") || !strings.Contains(out, "r/img000.png: attempt 2, next in") {
		t.Errorf("status exit %d:\n%s", code, out)
	}
	resp, err := http.Get("http://" + r.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cfimgsync_retry_queue_depth{folder="r"} 2`, `cfimgsync_operations_total{folder="r",op="fail"} 2`, `cfimgsync_api_requests_total{op="upload",code="5xx"} 2`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}
}
