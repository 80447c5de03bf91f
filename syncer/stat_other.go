//go:build !linux && !darwin && !freebsd

package syncer

import "io/fs"

// sysStat has no portable source of ctime, inode or device; zeros make the unchanged check
// rest on size and mtime alone, and the device check always pass.
func sysStat(fs.FileInfo) (ctime int64, inode, dev uint64) { return 0, 0, 0 }

const openFlags = 0

func isReadOnlyFS(error) bool { return false }

func isNotDir(error) bool { return false }
