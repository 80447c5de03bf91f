// Package preflight decides, from a file's content alone, whether the Cloudflare Images API would
// accept it, so the daemon does not spend an API call (and a retry loop) on a file that can only
// fail. It sniffs the format from magic bytes (never the extension), reads dimensions and frame
// counts from headers and container structure, and checks them against the documented limits.
//
// The files come from a folder that people and programs we do not fully trust write into, so the
// checks are built to be cheap and safe on hostile input:
//
//   - the size limit is checked before anything is read;
//   - images are never decoded: PNG IDAT data is inflated into io.Discard (bounded by what the
//     header's dimensions allow, and by [Limits.MaxInflate]), JPEG, GIF, WebP and ISO-BMFF files are
//     walked by their marker, block, chunk and box structure;
//   - memory use is a small constant per call, never in proportion to pixel count;
//   - nothing is read at or past the size the caller gives, so a file that grows while being
//     checked cannot make the check read more.
//
// A refusal is an [*Error] whose [Reason] is stable (for the index and status output) and whose
// message names the limit and the value found, e.g.
// "side too long: 13000x10 px: width 13,000 exceeds the 12,000 px limit".
// Read errors from the underlying file are returned as ordinary errors: they say nothing about the
// content, and the caller should retry rather than park the file.
package preflight
