package watcher

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// isWatchLimit reports whether err means the system refused another watch because a
// per-user or per-process limit is reached: ENOSPC from inotify_add_watch on Linux, EMFILE
// or ENFILE where every watch is an open file (kqueue).
func isWatchLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// watchLimitMessage explains a watch-limit error in words an operator can act on.
func watchLimitMessage(err error) string {
	return watchLimitText(runtime.GOOS, err, readSysctl("fs/inotify/max_user_watches"))
}

func watchLimitText(goos string, err error, current string) string {
	if goos == "linux" && errors.Is(err, syscall.ENOSPC) {
		now := ""
		if current != "" {
			now = " (now " + current + ")"
		}
		return "inotify watch limit reached: the kernel allows each user fs.inotify.max_user_watches" + now +
			" watches, one per watched directory, shared by every program of that user. Directories" +
			" without a watch are only synced by the periodic rescan. Raise the limit with" +
			" `sudo sysctl fs.inotify.max_user_watches=524288` and keep it across reboots with the line" +
			" `fs.inotify.max_user_watches=524288` in /etc/sysctl.d/90-cfimgsync.conf"
	}
	if goos == "linux" {
		return "too many open files while adding a watch: raise the process's open-file limit " +
			"(LimitNOFILE= in the systemd unit, or ulimit -n). Directories without a watch are only " +
			"synced by the periodic rescan"
	}
	return fmt.Sprintf("cannot add another file system watch (%v): every watched directory needs an "+
		"open file on %s; raise the open-file limit (ulimit -n, or the kern.maxfiles and "+
		"kern.maxfilesperproc sysctls). Directories without a watch are only synced by the periodic rescan",
		err, goos)
}

// instanceLimitHint adds advice to an error from fsnotify.NewWatcher.
func instanceLimitHint(err error) string {
	if runtime.GOOS == "linux" && errors.Is(err, syscall.EMFILE) {
		v := readSysctl("fs/inotify/max_user_instances")
		if v != "" {
			v = " (now " + v + ")"
		}
		return "; the per-user limit on inotify instances, the sysctl fs.inotify.max_user_instances" + v +
			", is reached: raise it with `sudo sysctl fs.inotify.max_user_instances=512`"
	}
	return ""
}

// readSysctl returns a Linux sysctl value from /proc/sys, or "" if it cannot be read.
func readSysctl(name string) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
