package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// emulatorClient is an API client for changing the emulator behind the CLI's back.
func emulatorClient(t *testing.T, srv *emulator.Server) *batchapi.Client {
	t.Helper()
	c, err := batchapi.New(batchapi.Config{AccountID: emulatorAccountID, APIToken: emulatorAPIToken,
		APIURL: srv.APIURL(), BatchURL: srv.BatchURL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRun(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out + errOut
}

// TestApproveDeletesWithoutDaemon: 60% of the files deleted for real: nothing is deleted
// until approve-deletes, which writes the approval into the index.
func TestApproveDeletesWithoutDaemon(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.db")
	rels := writePNGs(t, dir, "a", 10)
	mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state)
	mustRun(t, exitOK, "approve-deletes", "--state", state) // nothing waiting: fine
	for _, rel := range rels[:6] {
		if err := os.Remove(filepath.Join(dir, rel)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Emulator.ResetCalls()
	out := mustRun(t, exitFolder, "sync", "--dir", dir, "--once", "--state", state)
	if !strings.Contains(out, "approve-deletes") || srv.Emulator.Calls()[emulator.RouteDelete] != 0 {
		t.Fatalf("guard: %d delete calls\n%s", srv.Emulator.Calls()[emulator.RouteDelete], out)
	}
	r, err := statusFromDaemonOrIndex(context.Background(), state)
	name := deriveFolderName(dir) // what --dir calls the folder in the index
	if f, ok := folderOf(r, name); err != nil || !ok || f.DeletesBlocked != 6 {
		t.Fatalf("status: %+v, %v", r, err)
	}
	out = mustRun(t, exitOK, "approve-deletes", "--state", state, "--folder", name)
	if !strings.Contains(out, "6 deletes approved") {
		t.Fatalf("approve output:\n%s", out)
	}
	mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state)
	if n := len(srv.Emulator.Images()); n != 4 || srv.Emulator.Calls()[emulator.RouteDelete] != 6 {
		t.Fatalf("%d images, %d delete calls after approval", n, srv.Emulator.Calls()[emulator.RouteDelete])
	}
	mustRun(t, exitUsage, "approve-deletes", "--state", state, "--folder", "nope")
}

// TestApproveDeletesThroughDaemon: the daemon holds the index, so approval goes through
// its socket, and the daemon deletes at once.
func TestApproveDeletesThroughDaemon(t *testing.T) {
	srv := newEmulatorEnv(t)
	base := strings.TrimSuffix(srv.APIURL(), "/client/v4")
	tmp := t.TempDir()
	dir, state, cfgPath := filepath.Join(tmp, "images"), filepath.Join(tmp, "state.db"), filepath.Join(tmp, "c.toml")
	writePNGs(t, dir, "gone", 6)
	writePNGs(t, dir, "stay", 4)
	writeTestConfig(t, cfgPath, base, state, "", folderSpec{path: dir, name: "images"})
	startDaemon(t, cfgPath)
	images := func() int { return len(srv.Emulator.Images()) }
	poll(t, 30*time.Second, func() bool { return images() == 10 }, func() string { return "10 images uploaded" })

	if err := os.RemoveAll(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	blocked := func() int {
		r, _ := daemonStatus(state)
		f, _ := folderOf(r, "images")
		return f.DeletesBlocked
	}
	poll(t, 30*time.Second, func() bool { return blocked() == 6 }, func() string { return "the guard holding 6 deletes" })
	if n := srv.Emulator.Calls()[emulator.RouteDelete]; n != 0 || images() != 10 {
		t.Fatalf("%d delete calls, %d images before approval", n, images())
	}
	out := mustRun(t, exitOK, "approve-deletes", "--config", cfgPath)
	if !strings.Contains(out, "folder images: 6 deletes approved") || !strings.Contains(out, "daemon") {
		t.Fatalf("approve output:\n%s", out)
	}
	poll(t, 30*time.Second, func() bool { return images() == 4 }, func() string { return "the approved deletes" })
	poll(t, 30*time.Second, func() bool { return blocked() == 0 }, func() string { return "status clear" })
}

// TestReindexAfterStateLoss: the state file deleted → reindex restores it without uploading
// anything; a damaged one → a clear error naming reindex (exit 2, no restart loop), and
// reindex moves it aside.
func TestReindexAfterStateLoss(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.db")
	writePNGs(t, dir, "r", 12)
	mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state)
	uploads := func() int { return srv.Emulator.Calls()[emulator.RouteUpload] }

	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	srv.Emulator.ResetCalls()
	out := mustRun(t, exitOK, "reindex", "--dir", dir, "--state", state)
	if !strings.Contains(out, "12 found remotely") || uploads() != 0 || srv.Emulator.WriteCalls() != 0 {
		t.Fatalf("%d uploads, %d writes\n%s", uploads(), srv.Emulator.WriteCalls(), out)
	}
	out = mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state)
	if !strings.Contains(out, "0 uploaded") || srv.Emulator.WriteCalls() != 0 {
		t.Fatalf("after reindex:\n%s", out)
	}

	// Truncated: half of the file is gone.
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, exitUsage, "sync", "--dir", dir, "--once", "--state", state)
	if !strings.Contains(out, "cfimgsync reindex") {
		t.Fatalf("the error does not name reindex:\n%s", out)
	}
	// Garbage is as bad.
	if err := os.WriteFile(state, bytes.Repeat([]byte("not bbolt "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, exitUsage, "sync", "--dir", dir, "--once", "--state", state)
	if !strings.Contains(out, "cfimgsync reindex") {
		t.Fatalf("the error does not name reindex:\n%s", out)
	}
	out = mustRun(t, exitOK, "reindex", "--dir", dir, "--state", state)
	aside, _ := filepath.Glob(state + ".corrupt-*")
	if len(aside) != 1 || !strings.Contains(out, "moved it aside to "+aside[0]) || uploads() != 0 {
		t.Fatalf("aside %v, %d uploads\n%s", aside, uploads(), out)
	}
	if n := len(srv.Emulator.Images()); n != 12 {
		t.Fatalf("%d images", n)
	}
}

// TestVerifyRestoresAndPrunes: an image deleted behind our back is restored; an orphan of
// ours goes only with --prune; a foreign image is never touched.
func TestVerifyRestoresAndPrunes(t *testing.T) {
	srv := newEmulatorEnv(t)
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.db")
	rels := writePNGs(t, dir, "v", 5)
	mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state)
	cl := emulatorClient(t, srv)
	ctx := context.Background()
	if err := cl.Delete(ctx, rels[0]); err != nil {
		t.Fatal(err)
	}
	// An image of ours whose file was removed while the index was lost, and someone else's.
	img, _ := srv.Emulator.Image(rels[1])
	content, _ := srv.Emulator.Content(rels[1])
	for id, creator := range map[string]string{"stray.png": img.Creator, "foreign.png": "someone-else"} {
		if _, err := cl.Upload(ctx, batchapi.UploadRequest{ID: id, Filename: id, Content: bytes.NewReader(content),
			Size: int64(len(content)), Creator: creator}); err != nil {
			t.Fatal(err)
		}
	}
	out := mustRun(t, exitOK, "verify", "--dir", dir, "--state", state)
	if !strings.Contains(out, "missing  "+rels[0]) || !strings.Contains(out, "orphan   stray.png") || !strings.Contains(out, "1 uploaded") {
		t.Fatalf("verify output:\n%s", out)
	}
	if _, ok := srv.Emulator.Image(rels[0]); !ok {
		t.Fatal("the deleted image was not restored")
	}
	if _, ok := srv.Emulator.Image("stray.png"); !ok {
		t.Fatal("an orphan was deleted without --prune")
	}
	out = mustRun(t, exitOK, "verify", "--prune", "--dir", dir, "--state", state)
	if !strings.Contains(out, "pruned   stray.png") {
		t.Fatalf("verify --prune output:\n%s", out)
	}
	if _, ok := srv.Emulator.Image("stray.png"); ok {
		t.Fatal("orphan not pruned")
	}
	if img, ok := srv.Emulator.Image("foreign.png"); !ok || img.Creator != "someone-else" {
		t.Fatal("a foreign image was touched")
	}
	if n := len(srv.Emulator.Images()); n != 6 {
		t.Fatalf("%d images, want 5 of ours and the foreign one", n)
	}
}

// TestIdentityChangeRefused: a changed prefix is refused with what changed and what to
// run, and exit 2 so the service is not restarted in a loop.
func TestIdentityChangeRefused(t *testing.T) {
	newEmulatorEnv(t)
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.db")
	writePNGs(t, dir, "i", 2)
	mustRun(t, exitOK, "sync", "--dir", dir, "--once", "--state", state, "--prefix", "a/")
	out := mustRun(t, exitUsage, "sync", "--dir", dir, "--once", "--state", state, "--prefix", "b/")
	if !strings.Contains(out, `prefix "a/" → "b/"`) || !strings.Contains(out, "cfimgsync reindex") {
		t.Fatalf("message:\n%s", out)
	}
}

// TestVerifyThroughDaemon: with the daemon holding the index, verify goes through its
// socket, and the daemon uploads the lost image again.
func TestVerifyThroughDaemon(t *testing.T) {
	srv := newEmulatorEnv(t)
	base := strings.TrimSuffix(srv.APIURL(), "/client/v4")
	tmp := t.TempDir()
	dir, state, cfgPath := filepath.Join(tmp, "images"), filepath.Join(tmp, "state.db"), filepath.Join(tmp, "c.toml")
	rels := writePNGs(t, dir, "v", 3)
	writeTestConfig(t, cfgPath, base, state, "", folderSpec{path: dir, name: "images"})
	startDaemon(t, cfgPath)
	poll(t, 30*time.Second, func() bool { return len(srv.Emulator.Images()) == 3 }, func() string { return "3 images uploaded" })
	if err := emulatorClient(t, srv).Delete(context.Background(), rels[2]); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, exitOK, "verify", "--state", state)
	if !strings.Contains(out, "missing  "+rels[2]) || !strings.Contains(out, "the daemon uploads them again") {
		t.Fatalf("verify output:\n%s", out)
	}
	poll(t, 30*time.Second, func() bool { _, ok := srv.Emulator.Image(rels[2]); return ok }, func() string { return "the image restored" })
	mustRun(t, exitUsage, "verify", "--state", state, "--folder", "nope")
}

// TestDaemonRefusesADamagedIndex: the service with a damaged index stops with exit code 2,
// which the unit does not restart, and says to run reindex.
func TestDaemonRefusesADamagedIndex(t *testing.T) {
	srv := newEmulatorEnv(t)
	base := strings.TrimSuffix(srv.APIURL(), "/client/v4")
	tmp := t.TempDir()
	dir, state, cfgPath := filepath.Join(tmp, "images"), filepath.Join(tmp, "state.db"), filepath.Join(tmp, "c.toml")
	writePNGs(t, dir, "d", 1)
	writeTestConfig(t, cfgPath, base, state, "", folderSpec{path: dir, name: "images"})
	if err := os.WriteFile(state, bytes.Repeat([]byte{0xff}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, exitUsage, "run", "--config", cfgPath)
	if !strings.Contains(out, "cfimgsync reindex") {
		t.Fatalf("the error does not name reindex:\n%s", out)
	}
	unit, err := os.ReadFile("packaging/cfimgsync.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "RestartPreventExitStatus=2") {
		t.Fatal("the unit would restart on exit code 2")
	}
	if n := srv.Emulator.WriteCalls(); n != 0 {
		t.Fatalf("%d write calls", n)
	}
}

// TestDeleteDelayFromConfig: delete_mode = "delay" keeps a removed file's image, and the
// dry run and status say so.
func TestDeleteDelayFromConfig(t *testing.T) {
	srv := newEmulatorEnv(t)
	base := strings.TrimSuffix(srv.APIURL(), "/client/v4")
	tmp := t.TempDir()
	dir, state, cfgPath := filepath.Join(tmp, "images"), filepath.Join(tmp, "state.db"), filepath.Join(tmp, "c.toml")
	rels := writePNGs(t, dir, "k", 3)
	writeTestConfig(t, cfgPath, base, state, "", folderSpec{path: dir, name: "images"})
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, "delete_mode = \"delay\"\ndelete_delay = \"2h\"\n"...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, exitOK, "sync", "--config", cfgPath, "--once")
	if err := os.Remove(filepath.Join(dir, rels[0])); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, exitOK, "sync", "--config", cfgPath, "--dry-run")
	if !strings.Contains(out, "delayed  "+rels[0]) {
		t.Fatalf("dry run:\n%s", out)
	}
	mustRun(t, exitOK, "sync", "--config", cfgPath, "--once")
	if _, ok := srv.Emulator.Image(rels[0]); !ok || srv.Emulator.Calls()[emulator.RouteDelete] != 0 {
		t.Fatal("deleted before delete_delay")
	}
	out = mustRun(t, exitOK, "status", "--state", state)
	if !strings.Contains(out, "deletes delayed: 1") {
		t.Fatalf("status:\n%s", out)
	}
}
