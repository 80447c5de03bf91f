package syncer

import (
	"encoding/json"
	"fmt"
	"maps"
)

// maxMetadataBytes is the API's limit on the JSON text of an image's metadata.
const maxMetadataBytes = 1024

// Metadata keys the syncer owns. They win over static metadata with the same name, because
// settling an upload after a lost response depends on reading them back.
const (
	metaPath   = "path"
	metaSHA256 = "sha256"
	metaSize   = "size"
)

// MetadataError says an image's metadata cannot fit the API's limit.
type MetadataError struct {
	Size int // bytes of JSON without the path
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("metadata is %d bytes without the path, over the %d-byte limit (shorten static metadata)", e.Size, maxMetadataBytes)
}

// buildMetadata returns the metadata uploaded with a file. The path is informative only
// (the ID already carries it), so it is the first thing dropped when the object is too big.
func buildMetadata(static map[string]any, rel, sum string, size int64) (map[string]any, error) {
	m := make(map[string]any, len(static)+3)
	maps.Copy(m, static)
	m[metaSHA256] = sum
	m[metaSize] = size
	m[metaPath] = rel
	if n, err := jsonLen(m); err != nil {
		return nil, err
	} else if n <= maxMetadataBytes {
		return m, nil
	}
	delete(m, metaPath)
	n, err := jsonLen(m)
	if err != nil {
		return nil, err
	}
	if n > maxMetadataBytes {
		return nil, &MetadataError{Size: n}
	}
	return m, nil
}

func jsonLen(m map[string]any) (int, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("encode metadata: %w", err)
	}
	return len(b), nil
}

// metadataEqual reports whether the metadata read back from the API equals want. Values
// come back decoded from JSON (numbers as float64), so both sides are compared as JSON.
func metadataEqual(got, want map[string]any) bool {
	a, err1 := json.Marshal(got)
	b, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && string(a) == string(b)
}
