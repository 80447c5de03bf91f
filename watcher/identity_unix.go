//go:build unix

package watcher

import (
	"io/fs"
	"syscall"
)

// fileID identifies a directory independently of the path it was reached by, so that a
// symlink or bind mount leading back up the tree is not watched twice (and never loops).
type fileID struct {
	dev, ino uint64
	path     string // only where the platform has no inode numbers
}

func identity(_ string, fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	// The conversions are needed: Dev and Ino have different types on different platforms.
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
