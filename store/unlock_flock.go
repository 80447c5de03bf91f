//go:build !windows && !plan9 && !solaris && !aix && !android

package store

import (
	"os"
	"syscall"
)

// unlockFile drops the flock bbolt took on f. Closing f alone is not enough after a panic
// inside bolt.Open: the memory map bbolt leaves behind still references the open file, and
// the lock lives as long as that.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
