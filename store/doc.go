// Package store is cfimgsync's local index: one bbolt file that remembers, per watched folder,
// which file was uploaded under which image ID (a [Record] per relative path), a write-ahead
// journal of remote calls in flight (an [Intent] per call) and the folder's identity ([Meta]).
//
// # Layout
//
// The file holds two top-level buckets:
//
//	cfimgsync            schema → big-endian uint32 schema version (checked by Open)
//	folders
//	  <folder name>      meta → JSON-encoded Meta
//	    files            <relative path> → encoded Record (the path is the key, not repeated)
//	    intents          <big-endian uint64 id> → encoded Intent
//	    gone             <relative path> → big-endian unix ns the file was first missed
//	                     (delete_mode "delay"; removed with the path's record)
//
// Records and intents use a compact binary encoding: a version byte, then fields as varints and
// length-prefixed strings; a lowercase hex SHA-256 is stored as its 32 raw bytes. A typical
// record value is about 110 bytes where JSON takes about 330 (TestRecordEncodingSize); with
// bbolt's page overhead a 100,000-file folder makes a file of about 35–50 MB
// (BenchmarkIndex100k).
//
// # Records
//
// A [Record] is keyed by the file's slash-separated path relative to the folder root (any
// non-empty bytes, including invalid UTF-8, up to 32 KiB: a path the API refuses still gets
// a record saying why). Size, ModTime and ChangeTime (unix nanoseconds) and Inode are the
// stat fingerprint the scanner compares to skip hashing unchanged files; SHA256 is the
// content hash in hex. State is pending (known here, not confirmed remotely), synced or
// failed; a failed record keeps LastError, ErrorClass and Attempts so that permanent failures
// stay parked until the file changes.
//
// # Transactions
//
// No *bolt.Tx leaves this package: every exported method opens, uses and ends its own
// transaction, and copies every byte it returns out of the memory map before the transaction
// ends. The API is shaped so that a transaction cannot be held across a network call: there is
// no Begin/Commit, and the only callbacks ([Folder.ForEach], [Folder.ForEachUnder]) run inside a
// read transaction and must not do network I/O nor call back into the Store (a write from inside
// a read transaction on the same goroutine can deadlock bbolt when the file needs to grow).
// Collect what you need in the callback and act after it returns.
//
// Each write method is one transaction, durable (fsynced) when the method returns. A lone
// write goes through bolt's Update. Writes that arrive while another is in flight (the
// syncer's worker pool settling files side by side) go through bolt's Batch and share one
// commit; that is safe because their functions touch nothing but the transaction, so
// Batch may re-run them. A failing write (Settle of an unknown intent, say) fails alone.
//
// # Crash safety
//
// Before a remote call the syncer records an Intent ([Folder.AddIntent]); after the call it
// calls [Folder.Settle], which removes the intent and writes (or deletes) the file record in
// one transaction. Intents still present at start-up are calls whose outcome is unknown; the
// syncer resolves them (DESIGN.md §4).
//
// # Locking
//
// bbolt takes flock on the file: an exclusive lock for a read-write Open and a shared lock for
// a read-only Open. The lock belongs to the open file, so a second Open of the same file fails
// even inside the same process. A read-only Open therefore also fails while the daemon has the
// file open; CLI commands must ask the daemon instead of opening its index.
//
// # Damage
//
// A file that is empty, truncated, not a bbolt file, a bbolt file of another program, or whose
// records do not decode is reported as [ErrCorrupt]. bbolt panics, and memory faults on pages
// that point outside the file, are recovered into ErrCorrupt in every method; Open checks that
// the file is as long as bbolt's high-water mark, and [Store.Check] reads every value before
// it runs bbolt's own checker (which cannot be made fault-safe). The cure is
// `cfimgsync reindex`.
package store
