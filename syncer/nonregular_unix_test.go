//go:build unix

package syncer

import (
	"os"
	"syscall"
	"testing"
)

func TestSyncSkipsNonRegular(t *testing.T) {
	e := newEnv(t)
	e.write("real.png", pngBytes(1))
	if err := os.Symlink(e.abs("real.png"), e.abs("link.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(e.abs("fifo.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := e.syncOnce()
	if sum.Uploaded != 1 || sum.Skipped != 2 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	e.wantNoImage("link.png")
	e.wantNoImage("fifo.png")
}
