package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// sampleCount is the number of images the demo ships.
func sampleCount(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir("testdata/sample", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// newEmulatorEnv starts an emulator and points the CLI's environment at it.
func newEmulatorEnv(t *testing.T) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	t.Setenv("CLOUDFLARE_ACCOUNT_ID", emulatorAccountID)
	t.Setenv("CLOUDFLARE_API_TOKEN", emulatorAPIToken)
	t.Setenv("CFIMGSYNC_API_URL", srv.APIURL())
	t.Setenv("CFIMGSYNC_BATCH_URL", srv.BatchURL())
	return srv
}

// copyTree copies a directory of test images into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDemoOnceMirrorsTheSamples(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, errOut := runCLI(t, "demo", "--once", "--dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	want := sampleCount(t)
	if got := strings.Count(out, "\nupload "); got != want {
		t.Errorf("%d upload lines, want %d\n%s", got, want, out)
	}
	if got := strings.Count(out, "/cdn-cgi/imagedelivery/"); got != want {
		t.Errorf("%d delivery URLs, want %d\n%s", got, want, out)
	}
	if !strings.Contains(out, "shop/boots.jpg/public") {
		t.Errorf("no URL for shop/boots.jpg:\n%s", out)
	}
	// The seeded folder is left for the user to play with.
	if _, err := os.Stat(filepath.Join(dir, "shop", "boots.jpg")); err != nil {
		t.Error(err)
	}
}

func TestSyncOnceReportsFailuresAndSecondPassWritesNothing(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir := t.TempDir()
	copyTree(t, "testdata/sample", dir)
	if err := os.WriteFile(filepath.Join(dir, "notes.jpg"), []byte("this is text, not a JPEG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")

	code, out, errOut := runCLI(t, "sync", "--dir", dir, "--once", "--state", state)
	if code != exitFilesFailed {
		t.Fatalf("exit %d, want %d (one bad file)\nstdout:\n%s\nstderr:\n%s", code, exitFilesFailed, out, errOut)
	}
	if !strings.Contains(out, "notes.jpg") {
		t.Errorf("the refused file is not named:\n%s", out)
	}
	n := sampleCount(t)
	if got := len(srv.Emulator.Images()); got != n {
		t.Errorf("emulator holds %d images, want %d", got, n)
	}

	srv.Emulator.ResetCalls()
	code, out, _ = runCLI(t, "sync", "--dir", dir, "--once", "--state", state)
	if code != exitFilesFailed {
		t.Errorf("second pass exit %d, want %d (the bad file is still there)", code, exitFilesFailed)
	}
	if w := srv.Emulator.WriteCalls(); w != 0 {
		t.Errorf("second pass over an unchanged folder made %d write calls\n%s", w, out)
	}

	code, out, _ = runCLI(t, "ls", "--json", "--state", state)
	if code != exitOK {
		t.Fatalf("ls exit %d", code)
	}
	var synced, failed int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e lsEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("ls --json line %q: %v", sc.Text(), err)
		}
		switch e.State {
		case "synced":
			synced++
			if len(e.URLs) == 0 || !strings.HasPrefix(e.URLs[0], srv.URL) {
				t.Errorf("%s: URLs %v do not point at the emulator", e.Path, e.URLs)
			}
		case "failed":
			failed++
			if e.Error == "" {
				t.Errorf("%s: failed without a reason", e.Path)
			}
		}
	}
	if synced != n || failed != 1 {
		t.Errorf("ls: %d synced, %d failed; want %d and 1\n%s", synced, failed, n, out)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir := t.TempDir()
	copyTree(t, "testdata/sample", dir)
	state := filepath.Join(t.TempDir(), "state.db")
	code, out, errOut := runCLI(t, "sync", "--dir", dir, "--dry-run", "--state", state)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if got, want := strings.Count(out, "upload "), sampleCount(t); got != want {
		t.Errorf("plan lists %d uploads, want %d:\n%s", got, want, out)
	}
	if w := srv.Emulator.WriteCalls(); w != 0 {
		t.Errorf("dry run made %d write calls", w)
	}
	if len(srv.Emulator.Images()) != 0 {
		t.Error("dry run uploaded images")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) []string
		want  int
	}{
		{"no command", func(t *testing.T) []string { return nil }, exitUsage},
		{"unknown command", func(t *testing.T) []string { return []string{"frobnicate"} }, exitUsage},
		{"sync without dir", func(t *testing.T) []string { newEmulatorEnv(t); return []string{"sync", "--once"} }, exitUsage},
		{"bad flag", func(t *testing.T) []string { return []string{"sync", "--no-such-flag"} }, exitUsage},
		{"no credentials", func(t *testing.T) []string {
			t.Setenv("CLOUDFLARE_ACCOUNT_ID", "")
			t.Setenv("CLOUDFLARE_API_TOKEN", "")
			return []string{"sync", "--dir", t.TempDir(), "--once"}
		}, exitUsage},
		{"wrong token", func(t *testing.T) []string {
			newEmulatorEnv(t)
			t.Setenv("CLOUDFLARE_API_TOKEN", "not-the-token")
			dir := t.TempDir()
			copyTree(t, "testdata/sample", dir)
			return []string{"sync", "--dir", dir, "--once", "--state", filepath.Join(t.TempDir(), "s.db")}
		}, exitAuth},
		{"folder missing", func(t *testing.T) []string {
			newEmulatorEnv(t)
			return []string{"sync", "--dir", filepath.Join(t.TempDir(), "nope"), "--once", "--state", filepath.Join(t.TempDir(), "s.db")}
		}, exitFolder},
		{"watching a missing folder", func(t *testing.T) []string {
			newEmulatorEnv(t)
			return []string{"sync", "--dir", filepath.Join(t.TempDir(), "typo"), "--state", filepath.Join(t.TempDir(), "s.db")}
		}, exitFolder},
		{"version", func(t *testing.T) []string { return []string{"version"} }, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.setup(t)
			code, out, errOut := runCLI(t, args...)
			if code != tt.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.want, out, errOut)
			}
		})
	}
}

func TestWrongTokenIsNeverPrinted(t *testing.T) {
	newEmulatorEnv(t)
	const secret = "s3cr3t-token-value-that-must-not-leak"
	t.Setenv("CLOUDFLARE_API_TOKEN", secret)
	dir := t.TempDir()
	copyTree(t, "testdata/sample", dir)
	_, out, errOut := runCLI(t, "sync", "--dir", dir, "--once", "--state", filepath.Join(t.TempDir(), "s.db"))
	if strings.Contains(out+errOut, secret) {
		t.Fatalf("the API token appears in the output:\n%s\n%s", out, errOut)
	}
}

func TestDeleteGuardTripsWhenMostFilesVanish(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir := t.TempDir()
	copyTree(t, "testdata/sample", dir)
	state := filepath.Join(t.TempDir(), "state.db")
	if code, out, errOut := runCLI(t, "sync", "--dir", dir, "--once", "--state", state); code != exitOK {
		t.Fatalf("first pass exit %d\n%s\n%s", code, out, errOut)
	}
	before := len(srv.Emulator.Images())
	for _, sub := range []string{"shop", "gallery", "animated", "banners"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Emulator.ResetCalls()
	code, out, errOut := runCLI(t, "sync", "--dir", dir, "--once", "--state", state)
	if code != exitFolder {
		t.Errorf("exit %d, want %d\n%s\n%s", code, exitFolder, out, errOut)
	}
	if got := srv.Emulator.Calls()[emulator.RouteDelete]; got != 0 {
		t.Errorf("%d delete calls despite the guard", got)
	}
	if got := len(srv.Emulator.Images()); got != before {
		t.Errorf("%d images left, want %d", got, before)
	}
	if !strings.Contains(errOut, "approve") {
		t.Errorf("the error does not say how to proceed:\n%s", errOut)
	}
}

// TestBinaryWatchesAndStopsOnSIGTERM runs the real binary as a daemon: a file dropped in
// is uploaded, and SIGTERM ends it cleanly with exit code 0.
func TestBinaryWatchesAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cfimgsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := newEmulatorEnv(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "sync", "--dir", dir, "--settle", "100ms", "--state", filepath.Join(t.TempDir(), "s.db"))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// Wait until the daemon watches, so the drop below is an event, not part of the first scan.
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), "watching") }, &out)

	png, err := os.ReadFile("testdata/sample/shop/hat.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new", "drop.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { _, ok := srv.Emulator.Image("new/drop.png"); return ok }, &out)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM\n%s", out.String())
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool, out *syncBuffer) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("condition not met within %v\noutput:\n%s", d, out.String())
		case <-tick.C:
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a child process's writers and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// TestDirThenConfigKeepsTheIndex: a folder first synced with --dir, then through a config
// file naming the same path, is the same folder: nothing is uploaded again and nothing is
// taken for someone else's image.
func TestDirThenConfigKeepsTheIndex(t *testing.T) {
	srv := newEmulatorEnv(t)
	tmp := t.TempDir()
	dir, state, cfgPath := filepath.Join(tmp, "images"), filepath.Join(tmp, "state.db"), filepath.Join(tmp, "c.toml")
	copyTree(t, "testdata/sample", dir)
	if code, out, errOut := runCLI(t, "sync", "--dir", dir, "--once", "--state", state); code != exitOK {
		t.Fatalf("--dir: exit %d\n%s\n%s", code, out, errOut)
	}
	srv.Emulator.ResetCalls()
	base := strings.TrimSuffix(srv.APIURL(), "/client/v4")
	doc := fmt.Sprintf("account_id = %q\napi_url = %q\nbatch_url = %q\nstate = %q\n[[folder]]\npath = %q\n",
		emulatorAccountID, base+"/client/v4", base, state, dir) // no name: derived from the path
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "sync", "--config", cfgPath, "--once")
	if code != exitOK {
		t.Fatalf("--config: exit %d\n%s\n%s", code, out, errOut)
	}
	if w := srv.Emulator.WriteCalls(); w != 0 {
		t.Errorf("the config run made %d write calls over an unchanged folder\n%s", w, out)
	}
}
