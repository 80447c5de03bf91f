package preflight

import (
	"fmt"
	"io/fs"
	"os"
)

// CheckFile checks the file at path. It refuses anything but a regular file before opening it
// (opening a FIFO would block, opening a device may have effects), opens without blocking where
// the platform allows, and checks again on the open handle, whose size it then passes to Check.
func CheckFile(path string, lim Limits) (Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return Info{}, refuse(ReasonNotRegular, "%s", kindOf(fi.Mode()))
	}
	f, err := openNoBlock(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() { // swapped between the two looks
		return Info{}, refuse(ReasonNotRegular, "%s", kindOf(fi.Mode()))
	}
	info, err := Check(f, fi.Size(), lim)
	if err != nil && ReasonOf(err) == "" {
		return Info{}, fmt.Errorf("check %s: %w", path, err)
	}
	return info, err
}

// kindOf names a non-regular file type for a message.
func kindOf(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	default:
		return "a special file (" + t.String() + ")"
	}
}
