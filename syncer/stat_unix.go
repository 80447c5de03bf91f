//go:build linux || darwin || freebsd

package syncer

import (
	"errors"
	"io/fs"
	"syscall"
)

// sysStat extracts what the index compares beyond size and mtime: the change time (which
// moves on writes that restore the mtime, chmod and renames), the inode (which moves on an
// editor's write-then-rename save) and the device (for the delete guard).
func sysStat(fi fs.FileInfo) (ctime int64, inode, dev uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return ctimeOf(st), uint64(st.Ino), uint64(st.Dev) //nolint:unconvert // the field types vary by OS
}

// openFlags keep a file swapped for a symlink or a FIFO between the Lstat and the open from
// being followed or from blocking the scan.
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

func isReadOnlyFS(err error) bool { return errors.Is(err, syscall.EROFS) }

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
