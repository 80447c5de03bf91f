//go:build !unix

package preflight

import "os"

func openNoBlock(path string) (*os.File, error) { return os.Open(path) }
