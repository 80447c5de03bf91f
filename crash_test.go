package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// TestSIGKILLDuringLargeSync kills the real binary with SIGKILL in the middle of a large
// first sync, runs it again on the same index, and checks that the remote side is an exact
// mirror: one image per file, holding the file's content, and no duplicate of any path.
// Under "auto" the uploads in flight at the kill have no ID to look up: they are found
// again by listing our images, so this is also the test that the restart creates no
// duplicate there.
func TestSIGKILLDuringLargeSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and syncs thousands of files")
	}
	bin := filepath.Join(t.TempDir(), "cfimgsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		scheme string
		files  int
	}{
		{"path", 2000},
		{"auto", 1000},
	} {
		t.Run(tt.scheme, func(t *testing.T) { sigkillMidSync(t, bin, tt.scheme, tt.files) })
	}
}

func sigkillMidSync(t *testing.T, bin, scheme string, files int) {
	// Latency makes the calls overlap as they do over a real network, so the kill lands
	// with many uploads in flight.
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken,
		Latency: 10 * time.Millisecond})
	t.Cleanup(srv.Close)
	em := srv.Emulator

	dir := t.TempDir()
	rels := writePNGs(t, dir, "big", files)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	cfg := fmt.Sprintf("account_id = %q\napi_url = %q\nbatch_url = %q\nstate = %q\n"+
		"metrics_listen = \"off\"\nlog_format = \"text\"\nconcurrency = 32\nbatch_tokens = 4\n"+
		"[[folder]]\npath = %q\nname = \"big\"\nid_scheme = %q\n",
		emulatorAccountID, srv.APIURL(), srv.BatchURL(), state, dir, scheme)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CLOUDFLARE_API_TOKEN="+emulatorAPIToken)

	cmd := exec.Command(bin, "sync", "--config", cfgPath, "--once")
	cmd.Env = env
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
	waitFor(t, 60*time.Second, func() bool { return em.Calls()["upload"] >= files/2 }, &out)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("first run: %v, want killed\n%s", err, out.String())
	}
	before := len(em.Images())
	if before == 0 || before >= files {
		t.Fatalf("%d of %d images at the kill: the kill did not land mid-sync", before, files)
	}
	t.Logf("killed with %d of %d images up, %d upload calls", before, files, em.Calls()["upload"])

	again := exec.Command(bin, "sync", "--config", cfgPath, "--once")
	again.Env = env
	res, err := again.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, res)
	}

	// Exactly one image per file, with the file's content, and nothing else.
	byPath := make(map[string][]emulator.Image)
	for _, img := range em.Images() {
		var meta struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(img.Meta, &meta); err != nil {
			t.Fatalf("image %s: meta %s: %v", img.ID, img.Meta, err)
		}
		if meta.SHA256 != img.SHA256 {
			t.Errorf("image %s: metadata says sha256 %s, content is %s", img.ID, meta.SHA256, img.SHA256)
		}
		byPath[meta.Path] = append(byPath[meta.Path], img)
	}
	for _, rel := range rels {
		imgs := byPath[rel]
		delete(byPath, rel)
		if len(imgs) != 1 {
			t.Errorf("%s: %d images, want 1", rel, len(imgs))
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if imgs[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: image %s holds other content", rel, imgs[0].ID)
		}
		if scheme == "path" && imgs[0].ID != rel {
			t.Errorf("%s: image ID %s", rel, imgs[0].ID)
		}
	}
	for p, imgs := range byPath {
		t.Errorf("image(s) for no file: %q (%d)", p, len(imgs))
	}
	t.Logf("the restart settled %d upload intents (%d stored before the kill took their answer)",
		strings.Count(string(res), "settled upload intent"), strings.Count(string(res), "stored before its answer was lost")+
			strings.Count(string(res), "state=synced"))
	if t.Failed() {
		t.Logf("second run:\n%s", res)
	}
}
