//go:build unix

package preflight

import (
	"os"
	"syscall"
)

// openNoBlock opens path read-only with O_NONBLOCK, so a FIFO swapped in after the Stat cannot
// hang us; for regular files the flag changes nothing.
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
