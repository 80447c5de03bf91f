// Package syncer reconciles one local folder with Cloudflare Images.
//
// A reconcile has three steps kept apart so each can be reasoned about and tested on its own:
// a scan reads the local tree (stat first; contents are read only when the stat differs from
// the index), a pure planner compares that listing with the index and returns operations, and
// an executor runs the operations through a Remote with bounded concurrency, journalling each
// remote call as an intent in the store so a crash never leaves an outcome unknown.
//
// SyncOnce is one full reconcile, Plan is the same without any write, and Run is the daemon
// loop: watcher batches are hints that narrow a pass to some paths, while a periodic full pass
// is the truth. Deletes are guarded (see DESIGN §6): a folder that is missing, replaced or
// emptied by accident deletes nothing.
//
// # Index records
//
// The syncer keeps these invariants on store.Record, which status and verify tools may rely on:
//   - ImageID is set only while an image of ours (probably) exists under it, and SHA256 is
//     then the hash of that image's content. A file that never made it has ImageID "".
//   - StateSynced: the image holds the file as of the recorded stat (size, mtime, ctime,
//     inode); a pass that sees the same stat does not read the file.
//   - StatePending: the path needs another look (a write raced the upload, or a crash left
//     the outcome to be confirmed); the next pass re-reads it and replaces the image.
//   - StateFailed with ErrorClass "transient": retried with backoff. With any other class
//     ("preflight", "id", "metadata", "foreign", "permanent") the file is parked until its
//     stat changes; LastError says why. A parked file keeps the image of an earlier good
//     version, if any.
//
// # Images we own
//
// Every upload carries the folder's owner tag as its creator and {path, sha256, size} plus
// static metadata. The syncer never deletes or patches an image whose creator is not its
// owner tag (or the tag recorded when the index was made), and settles an upload whose
// answer was lost by reading the image back and comparing the hash.
package syncer
