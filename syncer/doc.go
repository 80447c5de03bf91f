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
package syncer
