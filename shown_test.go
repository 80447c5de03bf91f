package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"shop/boots.jpg", "shop/boots.jpg"},
		{"banners/spring sale.webp", "banners/spring sale.webp"},
		{"gallery/café.png", "gallery/café.png"},
		{"bad.png\nparked   other.png: looks fine.png", `"bad.png\nparked   other.png: looks fine.png"`},
		{"esc\x1b[2Jx.png", `"esc\x1b[2Jx.png"`},
		{"tab\there.png", `"tab\there.png"`},
		{"bad\xffutf8.png", `"bad\xffutf8.png"`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := shown(tt.in); got != tt.want {
			t.Errorf("shown(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := shownErr(errors.New("open a\nb: denied")); got != `"open a\nb: denied"` {
		t.Errorf("shownErr = %s", got)
	}
	if shownErr(nil) != "" {
		t.Error("shownErr(nil) is not empty")
	}
}

// TestFileNamesCannotForgeOutputLines: a refused file whose name holds a newline shows up
// quoted in sync's output, not as a second line of its own.
func TestFileNamesCannotForgeOutputLines(t *testing.T) {
	newEmulatorEnv(t)
	dir := t.TempDir()
	copyTree(t, "testdata/sample", dir)
	evil := "bad.png\nupload   forged.png"
	if err := os.WriteFile(filepath.Join(dir, evil), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI(t, "sync", "--dir", dir, "--once", "--state", filepath.Join(t.TempDir(), "s.db"))
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "upload   forged.png") {
			t.Fatalf("a file name forged an output line:\n%s", out)
		}
	}
	if !strings.Contains(out, `"bad.png\nupload   forged.png"`) {
		t.Errorf("the refused file is not shown quoted:\n%s", out)
	}
}
