//go:build !unix

package watcher

import (
	"io/fs"
	"path/filepath"
)

// fileID identifies a directory independently of the path it was reached by, so that a
// symlink leading back up the tree is not watched twice (and never loops).
type fileID struct {
	dev, ino uint64 // unused here: no portable inode numbers
	path     string // the directory with every symlink resolved
}

func identity(abs string, _ fs.FileInfo) (fileID, bool) {
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fileID{}, false
	}
	return fileID{path: real}, true
}
