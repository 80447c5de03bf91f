package preflight_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Extensions are ignored both ways.
	jpegAsPNG := write("photo.png", encodeJPEG(t, gradient(12, 8)))
	textAsJPEG := write("notes.jpg", []byte("shopping list"))
	empty := write("empty.gif", nil)

	info, err := preflight.CheckFile(jpegAsPNG, preflight.DefaultLimits())
	if err != nil || info.Format != preflight.JPEG || info.ContentType != "image/jpeg" || info.Width != 12 {
		t.Errorf("JPEG named .png: %+v, %v", info, err)
	}
	if _, err := preflight.CheckFile(textAsJPEG, preflight.DefaultLimits()); preflight.ReasonOf(err) != preflight.ReasonNotAnImage {
		t.Errorf("text named .jpg: got %v", err)
	}
	if _, err := preflight.CheckFile(empty, preflight.DefaultLimits()); preflight.ReasonOf(err) != preflight.ReasonEmpty {
		t.Errorf("empty file: got %v", err)
	}
	if _, err := preflight.CheckFile(dir, preflight.DefaultLimits()); preflight.ReasonOf(err) != preflight.ReasonNotRegular {
		t.Errorf("directory: got %v", err)
	}
	_, err = preflight.CheckFile(filepath.Join(dir, "missing.png"), preflight.DefaultLimits())
	if !errors.Is(err, fs.ErrNotExist) || preflight.ReasonOf(err) != "" {
		t.Errorf("missing file: got %v, want a not-exist error that is no refusal", err)
	}
}

func TestCheckFileSpecial(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs or unix sockets here")
	}
	dir := t.TempDir()
	// A FIFO would block a plain open until a writer appears: the test would hang, not fail.
	fifo := filepath.Join(dir, "pipe.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err := preflight.CheckFile(fifo, preflight.DefaultLimits())
	if preflight.ReasonOf(err) != preflight.ReasonNotRegular {
		t.Errorf("FIFO: got %v, want not-regular", err)
	}
	sock := filepath.Join(dir, "s.png")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	defer l.Close()
	if _, err := preflight.CheckFile(sock, preflight.DefaultLimits()); preflight.ReasonOf(err) != preflight.ReasonNotRegular {
		t.Errorf("socket: got %v, want not-regular", err)
	}
	if _, err := preflight.CheckFile("/dev/null", preflight.DefaultLimits()); preflight.ReasonOf(err) != preflight.ReasonNotRegular {
		t.Errorf("/dev/null: got %v, want not-regular", err)
	}
}
