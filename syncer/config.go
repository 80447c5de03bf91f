package syncer

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// Config configures one folder's Syncer. The zero value of every field but Root means its
// default.
type Config struct {
	// FolderName is the folder's key in the index, default "default".
	FolderName string
	// Root is the folder to mirror. It is made absolute and cleaned.
	Root string
	// Prefix is prepended to every image ID (for example "shop/").
	Prefix string
	// IDScheme names how files map to image IDs; only "path" (the default) exists so far.
	IDScheme string
	// OwnerTag is sent as the creator of every image and is how the syncer recognises its
	// own images; default "cfimgsync:<hostname>:<FolderName>".
	OwnerTag string
	// StaticMetadata is added to every image's metadata.
	StaticMetadata map[string]any
	// Ignore says which paths are not part of the folder; nil applies the watcher's default
	// ignores only. The marker file is always ignored.
	Ignore *watcher.Matcher
	// Limits are the pre-flight limits; the zero value means preflight.DefaultLimits().
	Limits preflight.Limits
	// Concurrency bounds the remote calls in flight, default 16: enough to use a batch
	// token's 200 requests/second at about 50 ms of latency.
	Concurrency int
	// MaxDelete is the most deletes one pass may make without approval. 0 means the default
	// rule: half of the indexed images or 1000, whichever is smaller, but at least
	// minDeleteAllowance so small folders can lose a file or two.
	MaxDelete int
	// DeleteMode is "mirror" (default: a file removed locally is deleted remotely) or "keep"
	// (never delete remotely; only the index forgets the file).
	DeleteMode string
	// RescanInterval is the period of full passes in Run, default 1h.
	RescanInterval time.Duration
	// RetryBackoff is the first delay before a file that failed transiently is tried again
	// in Run, default 30s; it doubles per failure up to maxRetryBackoff.
	RetryBackoff time.Duration
	// AccountID is recorded in the index meta; a later start with another account refuses.
	AccountID string
	// Logger receives the syncer's log; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called for every per-file event. It is called from worker
	// goroutines, concurrently, while a pass holds a worker slot: it must be quick and must
	// not call back into the Syncer.
	Progress func(Event)
}

// Defaults.
const (
	defaultFolderName     = "default"
	defaultConcurrency    = 16
	defaultRescanInterval = time.Hour
	defaultRetryBackoff   = 30 * time.Second
	maxRetryBackoff       = time.Hour
	defaultMaxDeleteCap   = 1000
	minDeleteAllowance    = 3

	// markerName is the file whose presence proves the root is the folder the index was
	// made for and not, say, an empty mount point.
	markerName = ".cfimgsync-folder"
)

// Delete modes (Config.DeleteMode).
const (
	// DeleteMirror deletes the image of a file removed locally (guarded, see ErrDeleteGuard).
	DeleteMirror = "mirror"
	// DeleteKeep never deletes remotely; the index forgets the file and the image stays.
	DeleteKeep = "keep"
)

// withDefaults returns cfg with defaults filled in and checked.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Root == "" {
		return cfg, fmt.Errorf("folder root is not set")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return cfg, fmt.Errorf("folder root %s: %w", cfg.Root, err)
	}
	cfg.Root = filepath.Clean(root)
	if cfg.FolderName == "" {
		cfg.FolderName = defaultFolderName
	}
	if cfg.IDScheme == "" {
		cfg.IDScheme = "path"
	}
	if cfg.OwnerTag == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		cfg.OwnerTag = "cfimgsync:" + host + ":" + cfg.FolderName
	}
	if cfg.Limits == (preflight.Limits{}) {
		cfg.Limits = preflight.DefaultLimits()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.MaxDelete < 0 {
		return cfg, fmt.Errorf("max delete %d is negative", cfg.MaxDelete)
	}
	switch cfg.DeleteMode {
	case "":
		cfg.DeleteMode = DeleteMirror
	case DeleteMirror, DeleteKeep:
	default:
		return cfg, fmt.Errorf("unknown delete mode %q (want %q or %q)", cfg.DeleteMode, DeleteMirror, DeleteKeep)
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = defaultRescanInterval
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = defaultRetryBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// deleteLimit is the most deletes a pass may make without approval, given how many images
// the folder has in the index.
func deleteLimit(maxDelete, indexed int) int {
	if maxDelete > 0 {
		return maxDelete
	}
	return max(min(indexed/2, defaultMaxDeleteCap), minDeleteAllowance)
}

// Event reports progress on one file to Config.Progress.
type Event struct {
	// Kind is one of "scan", "upload", "replace", "update", "delete", "skip", "fail", "done".
	Kind    string
	Path    string
	ImageID string
	Bytes   int64
	Err     error
}

// Event kinds.
const (
	EventScan    = "scan"
	EventUpload  = "upload"
	EventReplace = "replace"
	EventUpdate  = "update"
	EventDelete  = "delete"
	EventSkip    = "skip"
	EventFail    = "fail"
	EventDone    = "done"
)

// Summary counts what one pass did.
type Summary struct {
	Uploaded, Replaced, Deleted, Unchanged, Skipped, Failed int
	// Updated counts images whose metadata was patched.
	Updated int
	// Bytes is the content uploaded.
	Bytes int64
	// Failures lists the files that failed in this pass or stay parked from an earlier one.
	Failures []FileError
}

func (s *Summary) add(o Summary) {
	s.Uploaded += o.Uploaded
	s.Replaced += o.Replaced
	s.Deleted += o.Deleted
	s.Updated += o.Updated
	s.Unchanged += o.Unchanged
	s.Skipped += o.Skipped
	s.Failed += o.Failed
	s.Bytes += o.Bytes
	s.Failures = append(s.Failures, o.Failures...)
}

// FileError is a failure confined to one file; the rest of the pass goes on.
type FileError struct {
	Path string
	// Reason says in a few words why, for status output ("permission denied",
	// "invalid image ID: …", a pre-flight refusal).
	Reason string
	Err    error
}

func (e FileError) Error() string { return e.Path + ": " + e.Reason }
func (e FileError) Unwrap() error { return e.Err }
