package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Folder is a handle on one folder's part of the index. Handles are cheap; several handles
// on the same name share the same data.
type Folder struct {
	s    *Store
	name string
}

// Name returns the folder name.
func (f *Folder) Name() string { return f.name }

// bucket returns the folder's sub-bucket sub, or nil while it was never written.
func (f *Folder) bucket(tx *bolt.Tx, sub []byte) *bolt.Bucket {
	fb := tx.Bucket(foldersBucket).Bucket([]byte(f.name))
	if fb == nil || sub == nil {
		return fb
	}
	return fb.Bucket(sub)
}

// createBucket returns the folder's sub-bucket sub (the folder bucket itself for nil),
// creating both as needed.
func (f *Folder) createBucket(tx *bolt.Tx, sub []byte) (*bolt.Bucket, error) {
	if f.name == "" {
		return nil, errors.New("empty folder name")
	}
	fb, err := tx.Bucket(foldersBucket).CreateBucketIfNotExists([]byte(f.name))
	if err != nil || sub == nil {
		return fb, err
	}
	return fb.CreateBucketIfNotExists(sub)
}

// Meta returns the folder's meta, and false if none was ever set.
func (f *Folder) Meta() (Meta, bool, error) {
	var m Meta
	var ok bool
	err := f.s.view(func(tx *bolt.Tx) error {
		fb := f.bucket(tx, nil)
		if fb == nil {
			return nil
		}
		v := fb.Get(metaKey)
		if v == nil {
			return nil
		}
		var err error
		m, err = decodeMeta(v)
		ok = err == nil
		return err
	}, nil)
	if err != nil {
		return Meta{}, false, fmt.Errorf("folder %q: read meta: %w", f.name, err)
	}
	return m, ok, nil
}

// SetMeta replaces the folder's meta. m.SchemaVersion is ignored and stored as the store's
// SchemaVersion.
func (f *Folder) SetMeta(m Meta) error {
	m.SchemaVersion = SchemaVersion
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("folder %q: encode meta: %w", f.name, err)
	}
	err = f.s.update(func(tx *bolt.Tx) error {
		fb, err := f.createBucket(tx, nil)
		if err != nil {
			return err
		}
		return fb.Put(metaKey, v)
	})
	if err != nil {
		return fmt.Errorf("folder %q: write meta: %w", f.name, err)
	}
	return nil
}

// Get returns the record of path, and false if there is none.
func (f *Folder) Get(path string) (Record, bool, error) {
	var r Record
	var ok bool
	err := f.s.view(func(tx *bolt.Tx) error {
		files := f.bucket(tx, filesBucket)
		if files == nil {
			return nil
		}
		v := files.Get([]byte(path))
		if v == nil {
			return nil
		}
		var err error
		r, err = decodeRecord([]byte(path), v)
		ok = err == nil
		return err
	}, nil)
	if err != nil {
		return Record{}, false, fmt.Errorf("folder %q: get %q: %w", f.name, path, err)
	}
	return r, ok, nil
}

// Put writes r under r.Path, replacing any record there.
func (f *Folder) Put(r Record) error {
	return f.PutMany([]Record{r})
}

// PutMany writes all records in one transaction: all are written, or none.
func (f *Folder) PutMany(rs []Record) error {
	if len(rs) == 0 {
		return nil
	}
	vals := make([][]byte, len(rs))
	for i := range rs {
		if err := checkRecord(&rs[i]); err != nil {
			return fmt.Errorf("folder %q: put %q: %w", f.name, rs[i].Path, err)
		}
		vals[i] = encodeRecord(&rs[i])
	}
	err := f.s.update(func(tx *bolt.Tx) error {
		files, err := f.createBucket(tx, filesBucket)
		if err != nil {
			return err
		}
		for i := range rs {
			if err := files.Put([]byte(rs[i].Path), vals[i]); err != nil {
				return fmt.Errorf("put %q: %w", rs[i].Path, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("folder %q: write %d records: %w", f.name, len(rs), err)
	}
	return nil
}

func checkRecord(r *Record) error {
	switch {
	case r.Path == "":
		return errors.New("empty path")
	case len(r.Path) > bolt.MaxKeySize:
		return fmt.Errorf("path of %d bytes exceeds %d", len(r.Path), bolt.MaxKeySize)
	case !r.State.valid():
		return fmt.Errorf("invalid state %d", r.State)
	}
	return nil
}

// Delete removes the record of path. Removing a path that has no record is not an error.
func (f *Folder) Delete(path string) error {
	err := f.s.update(func(tx *bolt.Tx) error {
		files := f.bucket(tx, filesBucket)
		if files == nil || path == "" {
			return nil
		}
		if err := f.deleteGone(tx, path); err != nil {
			return err
		}
		return files.Delete([]byte(path))
	})
	if err != nil {
		return fmt.Errorf("folder %q: delete %q: %w", f.name, path, err)
	}
	return nil
}

// ForEach calls fn for every record, sorted by path (byte order), and stops at the first
// error fn returns, which ForEach returns unchanged.
//
// fn runs inside a read transaction: it must not call back into the Store (a write could
// deadlock) nor do network or other slow I/O (it holds a snapshot that keeps the file from
// reusing pages). Collect what you need and act after ForEach returns.
func (f *Folder) ForEach(fn func(Record) error) error {
	return f.ForEachUnder("", fn)
}

// ForEachUnder is ForEach restricted to the record at prefix and the records below it:
// paths equal to prefix or starting with prefix+"/". So "a" matches "a" and "a/x", not "ab/x"
// nor "a.jpg". Trailing slashes of prefix are ignored; an empty prefix matches everything.
// The same rules as for ForEach apply to fn.
func (f *Folder) ForEachUnder(prefix string, fn func(Record) error) error {
	prefix = strings.TrimRight(prefix, "/")
	var inFn bool
	var fnErr error
	call := func(k, v []byte) error {
		r, err := decodeRecord(k, v)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		inFn = true
		fnErr = fn(r)
		inFn = false
		return fnErr
	}
	err := f.s.view(func(tx *bolt.Tx) error {
		files := f.bucket(tx, filesBucket)
		if files == nil {
			return nil
		}
		c := files.Cursor()
		if prefix == "" {
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if err := call(k, v); err != nil {
					return err
				}
			}
			return nil
		}
		// The prefix itself sorts before everything under it ("a" < "a/..."), and the
		// children are contiguous in key order.
		if v := files.Get([]byte(prefix)); v != nil {
			if err := call([]byte(prefix), v); err != nil {
				return err
			}
		}
		dir := []byte(prefix + "/")
		for k, v := c.Seek(dir); k != nil && bytes.HasPrefix(k, dir); k, v = c.Next() {
			if err := call(k, v); err != nil {
				return err
			}
		}
		return nil
	}, &inFn)
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("folder %q: read records: %w", f.name, err)
	}
	return nil
}

// Len returns the number of records.
func (f *Folder) Len() (int, error) {
	var n int
	err := f.s.view(func(tx *bolt.Tx) error {
		if files := f.bucket(tx, filesBucket); files != nil {
			n = files.Stats().KeyN
		}
		return nil
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("folder %q: count records: %w", f.name, err)
	}
	return n, nil
}

// AddIntent journals a remote call about to be made and returns its ID (in.ID is ignored).
// The intent is durable when AddIntent returns.
func (f *Folder) AddIntent(in Intent) (uint64, error) {
	if in.Op == "" {
		return 0, fmt.Errorf("folder %q: add intent for %q: empty op", f.name, in.Path)
	}
	if in.Created.IsZero() {
		in.Created = time.Now()
	}
	err := f.s.update(func(tx *bolt.Tx) error {
		intents, err := f.createBucket(tx, intentsBucket)
		if err != nil {
			return err
		}
		id, err := intents.NextSequence()
		if err != nil {
			return err
		}
		in.ID = id
		return intents.Put(binary.BigEndian.AppendUint64(nil, id), encodeIntent(&in))
	})
	if err != nil {
		return 0, fmt.Errorf("folder %q: add %s intent for %q: %w", f.name, in.Op, in.Path, err)
	}
	return in.ID, nil
}

// Intents returns the journal, oldest first.
func (f *Folder) Intents() ([]Intent, error) {
	var out []Intent
	err := f.s.view(func(tx *bolt.Tx) error {
		intents := f.bucket(tx, intentsBucket)
		if intents == nil {
			return nil
		}
		return intents.ForEach(func(k, v []byte) error {
			in, err := decodeIntent(k, v)
			if err != nil {
				return fmt.Errorf("intent %x: %w", k, err)
			}
			out = append(out, in)
			return nil
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("folder %q: read intents: %w", f.name, err)
	}
	return out, nil
}

// Settle records the outcome of a journaled call in one transaction: it removes intent
// intentID, deletes the record of deletePath if that is not empty, and writes *put if put is
// not nil (so when put.Path == deletePath the put wins). Either all of it happens or, on
// error, none. An intentID of 0 removes no intent, which makes Settle an atomic
// delete-and-put. An intentID that is not in the journal fails with ErrNoIntent.
func (f *Folder) Settle(intentID uint64, put *Record, deletePath string) error {
	var val []byte
	if put != nil {
		if err := checkRecord(put); err != nil {
			return fmt.Errorf("folder %q: settle intent %d: put %q: %w", f.name, intentID, put.Path, err)
		}
		val = encodeRecord(put)
	}
	err := f.s.update(func(tx *bolt.Tx) error {
		if intentID != 0 {
			intents := f.bucket(tx, intentsBucket)
			key := binary.BigEndian.AppendUint64(nil, intentID)
			if intents == nil || intents.Get(key) == nil {
				return ErrNoIntent
			}
			if err := intents.Delete(key); err != nil {
				return err
			}
		}
		if deletePath != "" {
			if err := f.deleteGone(tx, deletePath); err != nil {
				return err
			}
			if files := f.bucket(tx, filesBucket); files != nil {
				if err := files.Delete([]byte(deletePath)); err != nil {
					return err
				}
			}
		}
		if put != nil {
			files, err := f.createBucket(tx, filesBucket)
			if err != nil {
				return err
			}
			return files.Put([]byte(put.Path), val)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("folder %q: settle intent %d: %w", f.name, intentID, err)
	}
	return nil
}
