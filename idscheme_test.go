package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSyncIDSchemeFlag: --id-scheme picks the scheme of a --dir sync, and a bad one (or a
// prefix the scheme cannot take) is a usage error.
func TestSyncIDSchemeFlag(t *testing.T) {
	srv := newEmulatorEnv(t)
	versioned := regexp.MustCompile(`^v/img00[0-2]\.[0-9a-f]{8}\.png$`)
	generated := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, tt := range []struct {
		scheme string
		match  *regexp.Regexp
	}{{"versioned", versioned}, {"auto", generated}} {
		dir := t.TempDir()
		writePNGs(t, dir, "v", 3)
		srv.Emulator.Reset()
		code, out, errOut := runCLI(t, "sync", "--once", "--dir", dir, "--id-scheme", tt.scheme,
			"--state", filepath.Join(t.TempDir(), "s.db"))
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s\n%s", tt.scheme, code, out, errOut)
		}
		imgs := srv.Emulator.Images()
		if len(imgs) != 3 {
			t.Fatalf("%s: %d images, want 3", tt.scheme, len(imgs))
		}
		for _, img := range imgs {
			if !tt.match.MatchString(img.ID) {
				t.Errorf("%s: image ID %q", tt.scheme, img.ID)
			}
		}
	}
	for _, args := range [][]string{
		{"--id-scheme", "sha"},
		{"--id-scheme", "auto", "--prefix", "x/"},
	} {
		code, _, errOut := runCLI(t, append([]string{"sync", "--once", "--dir", t.TempDir(),
			"--state", filepath.Join(t.TempDir(), "s.db")}, args...)...)
		if code != exitUsage || !strings.Contains(errOut, "scheme") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error about the scheme", args, code, errOut)
		}
	}
}
