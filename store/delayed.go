package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// gone is the bucket of files seen missing whose remote delete waits (delete_mode "delay"):
// relative path → big-endian int64 unix nanoseconds of the first pass that missed the file.
// A mark goes with its record: Delete and Settle remove both.
var goneBucket = []byte("gone")

// UpdateMeta changes the folder's meta in one read-modify-write transaction, so changes
// from elsewhere (an approval from the CLI, say) are not lost between a read and a write.
// fn gets the current meta and whether one was set; returning an error leaves the meta as
// it was. fn may run more than once and must only change m.
func (f *Folder) UpdateMeta(fn func(m *Meta, ok bool) error) error {
	err := f.s.update(func(tx *bolt.Tx) error {
		fb, err := f.createBucket(tx, nil)
		if err != nil {
			return err
		}
		var m Meta
		ok := false
		if v := fb.Get(metaKey); v != nil {
			if m, err = decodeMeta(v); err != nil {
				return err
			}
			ok = true
		}
		if err := fn(&m, ok); err != nil {
			return err
		}
		m.SchemaVersion = SchemaVersion
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return fb.Put(metaKey, v)
	})
	if err != nil {
		return fmt.Errorf("folder %q: update meta: %w", f.name, err)
	}
	return nil
}

// MarkGone records that the files at paths were missing at time at. A path already marked
// keeps its earlier time, so the delay counts from the first pass that missed the file.
func (f *Folder) MarkGone(paths []string, at time.Time) error {
	if len(paths) == 0 {
		return nil
	}
	val := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
	err := f.s.update(func(tx *bolt.Tx) error {
		b, err := f.createBucket(tx, goneBucket)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if p == "" || len(p) > bolt.MaxKeySize {
				return fmt.Errorf("bad path %q", p)
			}
			if b.Get([]byte(p)) != nil {
				continue
			}
			if err := b.Put([]byte(p), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("folder %q: mark %d files gone: %w", f.name, len(paths), err)
	}
	return nil
}

// Unmark removes the gone marks of paths (files that came back). Paths without a mark are
// ignored.
func (f *Folder) Unmark(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	err := f.s.update(func(tx *bolt.Tx) error {
		b := f.bucket(tx, goneBucket)
		if b == nil {
			return nil
		}
		for _, p := range paths {
			if err := b.Delete([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("folder %q: unmark %d files: %w", f.name, len(paths), err)
	}
	return nil
}

// Gone returns the marked paths with the time each was first missed.
func (f *Folder) Gone() (map[string]time.Time, error) {
	out := make(map[string]time.Time)
	err := f.s.view(func(tx *bolt.Tx) error {
		b := f.bucket(tx, goneBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			t, err := decodeGone(v)
			if err != nil {
				return fmt.Errorf("gone mark %q: %w", k, err)
			}
			out[string(k)] = t
			return nil
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("folder %q: read gone marks: %w", f.name, err)
	}
	return out, nil
}

func decodeGone(v []byte) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("%w: gone mark of %d bytes", ErrCorrupt, len(v))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), nil
}

// deleteGone removes path's gone mark inside tx, if the folder has any.
func (f *Folder) deleteGone(tx *bolt.Tx, path string) error {
	b := f.bucket(tx, goneBucket)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(path))
}

// Reset removes everything the folder holds: records, intents, gone marks and meta, in one
// transaction (reindex replaces a folder's index this way).
func (f *Folder) Reset() error {
	return f.s.DeleteFolder(f.name)
}
