// Package watcher turns file system notifications for one folder tree into debounced
// batches of relative paths that may have changed, plus a "rescan everything" signal.
//
// It is a source of hints, not of truth: it never reads file contents or decides what to
// upload, and a path in a [Batch] may name a file, a directory to walk, or something that no
// longer exists. Whatever it cannot see exactly (a queue overflow, the watch limit, the
// root disappearing) becomes [Batch.Rescan] rather than a silent gap; the consumer's periodic
// full scan remains the truth.
//
// The work is split in two so each half can be tested on its own. The OS plumbing keeps one
// fsnotify watch per directory (fsnotify is not recursive), adds watches to directories as
// they appear and hands on the new directory itself, so files created before its watch
// existed are found by the consumer's walk. The debouncer holds each path until it has been
// quiet for [Options.Settle], or for at most [Options.MaxWait] if it keeps changing, folds
// paths into a pending parent directory, and never blocks on a slow consumer: paths keep
// accumulating, and beyond [Options.MaxPending] collapse into a single rescan.
//
// Which paths are ignored is decided by a [Matcher]; see [Matcher] for the defaults and the
// pattern syntax.
//
// # Platform notes
//
// On Linux every watched directory uses one inotify watch out of the per-user limit
// fs.inotify.max_user_watches; hitting it is logged with instructions and turns into a
// rescan. Directories reached through several paths (bind mounts, or symlinks with
// [Options.FollowSymlinks]) are watched once, under the first path found. A change of
// permissions or ownership is reported like a write. Write events on directories (kqueue and
// Windows send them when entries change) are dropped, as the entries have events of their
// own. A watch the kernel drops silently (a subdirectory's file system unmounted) is not
// noticed; the root is checked every [Options.RootPoll]. File systems without change
// notification (NFS, SMB, FUSE) need the consumer's periodic scan.
package watcher
