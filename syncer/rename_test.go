package syncer

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// logBuffer collects a syncer's log lines for a test to search.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunDirectoryRenameIsAMove renames a directory holding most of the folder while the
// daemon watches. The watcher hands on the parent, so one pass sees both names: the images
// move (upload under the new IDs, delete the old ones) without tripping the delete guard,
// and no image under the old name is left behind.
func TestRunDirectoryRenameIsAMove(t *testing.T) {
	e := newEnv(t)
	const n = 30
	for i := range n {
		e.write(fmt.Sprintf("shop/photos/p%02d.png", i), pngBytes(500+i))
	}
	e.write("shop/keep.png", pngBytes(1))
	var log logBuffer
	hints := startWatcher(t, e)
	startRun(t, e, hints, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	eventually(t, "the initial upload", func() bool { return e.imageCount() == n+1 })

	if err := os.Rename(e.abs("shop/photos"), e.abs("shop/pics")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the renamed tree published and the old names gone", func() bool {
		for i := range n {
			if !e.hasContent(fmt.Sprintf("shop/pics/p%02d.png", i), pngBytes(500+i)) ||
				!e.absent(fmt.Sprintf("shop/photos/p%02d.png", i)) {
				return false
			}
		}
		return e.imageCount() == n+1
	})
	if strings.Contains(log.String(), "deletes held back") {
		t.Errorf("the rename tripped the delete guard:\n%s", log.String())
	}
}
