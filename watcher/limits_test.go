package watcher

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
)

func TestWatchLimitText(t *testing.T) {
	enospc := fmt.Errorf("add /srv/images/a: %w", syscall.ENOSPC)
	emfile := fmt.Errorf("add /srv/images/a: %w", syscall.EMFILE)
	tests := []struct {
		goos    string
		err     error
		current string
		want    []string
	}{
		{"linux", enospc, "8192", []string{"fs.inotify.max_user_watches (now 8192)", "sudo sysctl fs.inotify.max_user_watches=", "/etc/sysctl.d/", "periodic rescan"}},
		{"linux", enospc, "", []string{"fs.inotify.max_user_watches watches", "sysctl"}},
		{"linux", emfile, "", []string{"open-file limit", "LimitNOFILE"}},
		{"darwin", emfile, "", []string{"kern.maxfiles", "ulimit -n", "darwin"}},
	}
	for _, tt := range tests {
		got := watchLimitText(tt.goos, tt.err, tt.current)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s %v: message lacks %q:\n%s", tt.goos, tt.err, w, got)
			}
		}
	}
	for _, err := range []error{enospc, emfile, fmt.Errorf("x: %w", syscall.ENFILE)} {
		if !isWatchLimit(err) {
			t.Errorf("isWatchLimit(%v) = false", err)
		}
	}
	if isWatchLimit(fmt.Errorf("x: %w", syscall.EACCES)) {
		t.Error("EACCES taken for a watch limit")
	}
}
