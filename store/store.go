package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this binary writes and understands.
const SchemaVersion = 1

// batchDelay is how long a shared write waits for others to join it. Writers only batch when
// another write is in flight, so the others are usually queued already; bbolt's default of
// 10ms would mostly be waiting.
const batchDelay = time.Millisecond

// DefaultTimeout is how long Open waits for the file lock when Options.Timeout is zero.
const DefaultTimeout = time.Second

var (
	// ErrLocked is returned by Open when another process (or another Open in this process)
	// holds the file lock for longer than Options.Timeout: usually a second daemon on the same
	// index. The returned error names the file.
	ErrLocked = errors.New("index is locked by another process (is another cfimgsync running on this index?)")

	// ErrCorrupt is returned when the file is not a valid cfimgsync index: empty, truncated,
	// not a bbolt file, a bbolt file of another program, or holding values that do not decode.
	// The index is only a cache of what was uploaded; rebuild it with `cfimgsync reindex`.
	ErrCorrupt = errors.New("index is damaged or not a cfimgsync index; run `cfimgsync reindex` to rebuild it")

	// ErrSchema is returned by Open when the index was written by a newer cfimgsync whose
	// schema version this binary does not know. Upgrade cfimgsync; do not reindex.
	ErrSchema = errors.New("index was written by a newer cfimgsync (unknown schema version); upgrade cfimgsync")

	// ErrNoIntent is returned by Settle when the intent ID is not in the journal (already
	// settled, or never added). Nothing is changed.
	ErrNoIntent = errors.New("no such intent")

	// ErrReadOnly is returned by writes on a Store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("index is open read-only")

	// ErrClosed is returned by any method called after Close.
	ErrClosed = errors.New("index is closed")
)

var (
	infoBucket    = []byte("cfimgsync")
	schemaKey     = []byte("schema")
	foldersBucket = []byte("folders")
	metaKey       = []byte("meta")
	filesBucket   = []byte("files")
	intentsBucket = []byte("intents")
)

// Options for Open. The zero value is fine.
type Options struct {
	// Timeout is how long to wait for the file lock before failing with ErrLocked. Zero means
	// DefaultTimeout; a negative value tries once and fails at once.
	Timeout time.Duration

	// ReadOnly opens the file read-only under a shared lock. bbolt still locks the file, so
	// this fails with ErrLocked while a read-write Open (the daemon) holds it; it serves
	// offline inspection (status, ls) of an index no daemon is using. The file must exist.
	ReadOnly bool
}

// Store is an open index file. Its methods are safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	writers atomic.Int32 // writes in flight, to choose between Update and Batch
}

// Open opens the index at path, creating the parent directory (0700) and the file (0600) if
// they do not exist, and checks its schema version. The file is created complete (schema
// written) under a temporary name and then linked into place, so a crash during creation
// never leaves an empty or half-made index behind.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open index: empty path")
	}
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		// bbolt treats 0 as "wait forever"; 1ns makes it give up after the first try.
		timeout = time.Nanosecond
	}

	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("open index %s: not a regular file", path)
		}
		if fi.Size() == 0 {
			// bbolt would silently initialise an empty file; an index we created is never
			// empty, so this one was truncated by something else.
			return nil, fmt.Errorf("open index %s: %w: the file is empty", path, ErrCorrupt)
		}
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		if err := create(path, timeout); err != nil {
			return nil, fmt.Errorf("create index %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("open index: %w", err)
	}

	db, err := openBolt(path, opts.ReadOnly, timeout)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Store{db: db, path: path}
	if err := s.validate(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return s, nil
}

// create makes a complete new index at a temporary name beside path and hard-links it into
// place. Link (unlike rename) fails if path appeared meanwhile, so two processes creating the
// same index cannot replace each other's file; the loser simply opens the winner's.
func create(path string, timeout time.Duration) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Close(); err != nil {
		return err
	}
	db, err := bolt.Open(tmpName, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		info, err := tx.CreateBucket(infoBucket)
		if err != nil {
			return err
		}
		if err := info.Put(schemaKey, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
			return err
		}
		_, err = tx.CreateBucket(foldersBucket)
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		// Some filesystems have no hard links; fall back to rename, accepting the small
		// window in which a concurrent creator could be replaced.
		if err := os.Rename(tmpName, path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// syncDir makes the new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		// Windows cannot sync a directory; elsewhere a failure means the entry may be lost.
		return err
	}
	return nil
}

// openBolt opens the bbolt file, turning bbolt's panics and memory faults on a damaged file
// into ErrCorrupt and its lock timeout into ErrLocked.
func openBolt(path string, readOnly bool, timeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	bopts := &bolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly,
		// Keep the file so that a panic half-way through bolt.Open does not leak the
		// descriptor, and with it the lock.
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if file != nil {
				// The memory map bbolt made is leaked (we cannot reach it); the
				// descriptor and the lock are not.
				unlockFile(file)
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("%w: bbolt: %v", ErrCorrupt, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, bopts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, ErrLocked
	}
	// What the operating system refused (permissions, mmap limits, I/O errors) is not
	// damage; everything bbolt itself complains about ("invalid database", "checksum
	// error", "file size too small" ...) is.
	var pathErr *fs.PathError
	var errno syscall.Errno
	if errors.As(err, &pathErr) || errors.As(err, &errno) {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// validate runs the checks that make a file ours: not truncated, our schema key, a known
// version. It is also the first read, so a damaged tree is likely to show up here.
func (s *Store) validate() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: the file is %d bytes but its data extends to %d (truncated?)",
				ErrCorrupt, fi.Size(), tx.Size())
		}
		info := tx.Bucket(infoBucket)
		if info == nil {
			return fmt.Errorf("%w: no cfimgsync schema bucket (a bbolt file of another program?)", ErrCorrupt)
		}
		v := info.Get(schemaKey)
		if len(v) != 4 {
			return fmt.Errorf("%w: bad schema key (%d bytes)", ErrCorrupt, len(v))
		}
		switch ver := binary.BigEndian.Uint32(v); {
		case ver > SchemaVersion:
			return fmt.Errorf("%w: file has schema %d, this binary knows up to %d", ErrSchema, ver, SchemaVersion)
		case ver < 1:
			return fmt.Errorf("%w: schema version %d", ErrCorrupt, ver)
		}
		if tx.Bucket(foldersBucket) == nil {
			return fmt.Errorf("%w: no folders bucket", ErrCorrupt)
		}
		return nil
	}, nil)
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close index %s: %w", s.path, err)
	}
	return nil
}

// Path returns the file name given to Open.
func (s *Store) Path() string { return s.path }

// Folder returns a handle for the named folder. It is cheap and touches nothing; the
// folder's buckets are created by its first write. Reads of a folder never written see it
// empty.
func (s *Store) Folder(name string) *Folder {
	return &Folder{s: s, name: name}
}

// Folders returns the names of the folders that have been written, sorted.
func (s *Store) Folders() ([]string, error) {
	var names []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(foldersBucket).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list folders: %w", err)
	}
	return names, nil
}

// DeleteFolder removes a folder with all its records, intents and meta (for reindex, or a
// folder removed from the configuration). Deleting a folder that does not exist is not an
// error.
func (s *Store) DeleteFolder(name string) error {
	err := s.update(func(tx *bolt.Tx) error {
		err := tx.Bucket(foldersBucket).DeleteBucket([]byte(name))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete folder %q: %w", name, err)
	}
	return nil
}

// maxCheckProblems bounds the report of Check; a badly damaged file could list millions.
const maxCheckProblems = 20

// Check verifies the file: that every value decodes (records, intents, meta, schema), then
// bbolt's own consistency check of pages, free list and key order. It reads the whole file.
// The error wraps ErrCorrupt and lists the first problems found.
func (s *Store) Check() error {
	var problems []error
	var more int
	report := func(err error) {
		if len(problems) < maxCheckProblems {
			problems = append(problems, err)
		} else {
			more++
		}
	}
	// Our walk comes first and runs in this goroutine, where a damaged page that points
	// outside the file faults into a recoverable panic. tx.Check runs its own goroutine,
	// where the same fault would kill the process, so it only gets files our walk read
	// end to end.
	err := s.view(func(tx *bolt.Tx) error {
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			touchAll(b)
			return nil
		})
		if err != nil {
			return err
		}
		folders := tx.Bucket(foldersBucket)
		if folders == nil {
			report(errors.New("no folders bucket"))
			return nil
		}
		return folders.ForEach(func(name, v []byte) error {
			fb := folders.Bucket(name)
			if fb == nil {
				report(fmt.Errorf("folders: key %q is not a bucket", name))
				return nil
			}
			checkFolder(string(name), fb, report)
			return nil
		})
	}, nil)
	if err == nil {
		err = s.view(func(tx *bolt.Tx) error {
			// Drain to the end: the checker goroutine holds the transaction until it
			// has sent everything.
			for err := range tx.Check() {
				report(err)
			}
			return nil
		}, nil)
	}
	if err != nil {
		return fmt.Errorf("check index %s: %w", s.path, err)
	}
	if len(problems) == 0 {
		return nil
	}
	if more > 0 {
		problems = append(problems, fmt.Errorf("and %d more problems", more))
	}
	return fmt.Errorf("check index %s: %w:\n%w", s.path, ErrCorrupt, errors.Join(problems...))
}

// touchAll reads the first and last byte of every key and value under b, so that a key or
// value that reaches outside the memory map faults here rather than in bbolt's checker.
func touchAll(b *bolt.Bucket) byte {
	var x byte
	touch := func(p []byte) {
		if len(p) > 0 {
			x ^= p[0] ^ p[len(p)-1]
		}
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		touch(k)
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				x ^= touchAll(sub)
			}
			continue
		}
		touch(v)
	}
	return x
}

func checkFolder(name string, fb *bolt.Bucket, report func(error)) {
	if v := fb.Get(metaKey); v != nil {
		if _, err := decodeMeta(v); err != nil {
			report(fmt.Errorf("folder %q: meta: %w", name, err))
		}
	}
	if files := fb.Bucket(filesBucket); files != nil {
		_ = files.ForEach(func(k, v []byte) error {
			if v == nil {
				report(fmt.Errorf("folder %q: files: %q is a bucket", name, k))
			} else if _, err := decodeRecord(k, v); err != nil {
				report(fmt.Errorf("folder %q: record %q: %w", name, k, err))
			}
			return nil
		})
	}
	if gone := fb.Bucket(goneBucket); gone != nil {
		_ = gone.ForEach(func(k, v []byte) error {
			if _, err := decodeGone(v); err != nil {
				report(fmt.Errorf("folder %q: gone %q: %w", name, k, err))
			}
			return nil
		})
	}
	if intents := fb.Bucket(intentsBucket); intents != nil {
		_ = intents.ForEach(func(k, v []byte) error {
			if v == nil || len(k) != 8 {
				report(fmt.Errorf("folder %q: intents: bad key %x", name, k))
			} else if _, err := decodeIntent(k, v); err != nil {
				report(fmt.Errorf("folder %q: intent %d: %w", name, binary.BigEndian.Uint64(k), err))
			}
			return nil
		})
	}
}

// view runs fn in a read transaction. See guard for userFn.
func (s *Store) view(fn func(*bolt.Tx) error, userFn *bool) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(&err, userFn)
	return mapErr(s.db.View(protect(fn, userFn)))
}

// update runs fn in a read-write transaction, its own or, while other writes are in flight,
// one shared with them.
//
// Every commit costs two fsyncs, so the syncer's worker pool, each worker journaling and
// settling its own file, would otherwise queue behind one commit after another. bbolt's Batch
// merges the writes that queue up into one transaction. That is safe here because fn only
// touches the transaction: Batch may run fn more than once (when another fn in the batch
// fails, the batch is rolled back and each fn retried alone), and a rolled-back fn leaves
// nothing behind. A lone writer uses Update, so it does not wait out Batch's delay.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(&err, nil)
	defer s.writers.Add(-1)
	if s.writers.Add(1) > 1 {
		return mapErr(s.db.Batch(protect(fn, nil)))
	}
	return mapErr(s.db.Update(protect(fn, nil)))
}

// protect makes fn fault-safe in whatever goroutine runs it: Batch runs it in one of its
// own, where a fault on a damaged page would otherwise end the process.
func protect(fn func(*bolt.Tx) error, userFn *bool) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer guard(&err, userFn)
		return fn(tx)
	}
}

// guard turns a panic or memory fault inside bbolt (a damaged page) into ErrCorrupt. bbolt
// rolls the transaction back on the way out. A panic raised by the caller's callback
// (*userFn true while it runs) is not ours to swallow: recover is not called, so it keeps
// unwinding with its own stack.
func guard(err *error, userFn *bool) {
	if userFn != nil && *userFn {
		return
	}
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, p)
	}
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, berrors.ErrDatabaseReadOnly), errors.Is(err, berrors.ErrTxNotWritable):
		return ErrReadOnly
	}
	return err
}
