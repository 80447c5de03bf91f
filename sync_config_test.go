package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// TestSyncOnceWithConfig mirrors two configured folders in one run, then checks that the
// flags override the file: --dir replaces the folders and --state the index.
func TestSyncOnceWithConfig(t *testing.T) {
	srv := emulator.NewServer(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken})
	t.Cleanup(srv.Close)
	t.Setenv("CLOUDFLARE_API_TOKEN", emulatorAPIToken)
	a, b := t.TempDir(), t.TempDir()
	writePNGs(t, a, "x", 2)
	writePNGs(t, b, "y", 3)
	state := filepath.Join(t.TempDir(), "state.db")
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	writeTestConfig(t, cfgPath, srv.URL, state, "", folderSpec{a, "a", "a/"}, folderSpec{b, "b", "b/"})

	code, out, errOut := runCLI(t, "sync", "--config", cfgPath, "--once")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if got := len(srv.Emulator.Images()); got != 5 {
		t.Errorf("%d images, want 5\n%s", got, out)
	}
	for _, id := range []string{"a/x/img000.png", "b/y/img002.png"} {
		if _, ok := srv.Emulator.Image(id); !ok {
			t.Errorf("no image %s", id)
		}
	}
	if strings.Count(out, "== folder ") != 2 || strings.Count(out, "done: ") != 2 {
		t.Errorf("output does not show both folders:\n%s", out)
	}

	// --dir replaces the config's folders; --prefix and --state override the file.
	c := t.TempDir()
	writePNGs(t, c, "z", 1)
	state2 := filepath.Join(t.TempDir(), "other.db")
	code, out, errOut = runCLI(t, "sync", "--config", cfgPath, "--once", "--dir", c, "--prefix", "c/", "--state", state2)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if _, ok := srv.Emulator.Image("c/z/img000.png"); !ok {
		t.Errorf("--dir/--prefix not applied: %v", srv.Emulator.Images())
	}
	if _, err := os.Stat(state2); err != nil {
		t.Errorf("--state not applied: %v", err)
	}
	code, out, _ = runCLI(t, "ls", "--state", state2, "--json")
	// --dir names the folder as a config's [[folder]] with that path would be named.
	if code != exitOK || !strings.Contains(out, `"folder":"`+deriveFolderName(c)+`"`) || strings.Count(out, "\n") != 1 {
		t.Errorf("ls of the --dir index: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "ls", "--state", state, "--folder", "b")
	if code != exitOK || strings.Count(out, "\n") != 3 {
		t.Errorf("ls --folder b: exit %d\n%s", code, out)
	}
}
