package syncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

var (
	// ErrIdentityChanged means the account, root, ID scheme or prefix differ from what the
	// index was made for. Continuing would upload everything again under other IDs or delete
	// the wrong images, so the syncer refuses; the error says what changed and what to do.
	ErrIdentityChanged = errors.New("folder identity changed since the index was made")

	// ErrFolderUnavailable means the folder root is missing, not a directory, on another
	// filesystem than before, or lacks its marker file: typically an unmounted disk. Nothing
	// is deleted (nor uploaded) until it is back.
	ErrFolderUnavailable = errors.New("folder unavailable")

	// ErrDeleteGuard means a pass would delete more images than allowed without approval.
	// Nothing was deleted; `cfimgsync approve-deletes` or a higher max_delete lets it proceed.
	ErrDeleteGuard = errors.New("delete guard tripped")
)

// Remote is the part of the Images API the syncer uses; *batchapi.Client satisfies it.
// Methods are called from several worker goroutines at once. Errors are classified with the
// batchapi classifiers (IsNotFound, IsAlreadyExists, IsAuth, IsTransient); an error that is
// none of those is treated as permanent for that file.
type Remote interface {
	// Upload stores a new image under req.ID. It fails with an "already exists" error when
	// the ID is taken. Content is read through ReaderAt and may be re-read on a retry.
	Upload(ctx context.Context, req batchapi.UploadRequest) (batchapi.Image, error)
	// Get returns an image's details, or a "not found" error.
	Get(ctx context.Context, id string) (batchapi.Image, error)
	// Update patches metadata or creator; a nil field is left as it is.
	Update(ctx context.Context, id string, req batchapi.UpdateRequest) (batchapi.Image, error)
	// Delete deletes an image, or fails with "not found" if there is none.
	Delete(ctx context.Context, id string) error
	// List iterates over the account's images (filtered by creator when opts.Creator is
	// set); after an error it yields that error once and stops. Recovery lists our images
	// to settle uploads without a custom ID.
	List(ctx context.Context, opts batchapi.ListOptions) iter.Seq2[batchapi.Image, error]
}

// Syncer mirrors one folder. Its methods run one pass at a time and must not be called
// concurrently with each other.
type Syncer struct {
	cfg    Config
	idx    *store.Folder
	remote Remote
	scheme IDScheme
	log    *slog.Logger

	// owners are the creator tags recognised as ours: the configured one and the one the
	// index was made with, so renaming the host does not orphan the folder's images.
	owners []string

	mu   sync.Mutex // guards meta: workers learn the delivery base concurrently
	meta store.Meta
	// markerWarned is set once the log has said that the marker check is skipped because
	// the root is read-only.
	markerWarned bool

	// reads counts files whose content was read (tests assert on it); beforeRead, if set,
	// runs before each read (tests change files there).
	reads      atomic.Int64
	beforeRead func(rel string)

	// driftChecked is set once a full pass has compared the images' metadata with the
	// configuration and patched them as needed.
	driftChecked bool

	statusMu sync.Mutex // guards status, which Status reads from other goroutines
	status   Status

	// verifies carries VerifyNow's requests into Run, which serves them between passes.
	verifies chan verifyRequest
}

// New returns a Syncer for cfg over the folder's index and remote. It does no I/O: the
// identity check and the marker are done by the first pass.
func New(cfg Config, idx *store.Folder, remote Remote) (*Syncer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("syncer config: %w", err)
	}
	if idx == nil || remote == nil {
		return nil, errors.New("syncer: index and remote are required")
	}
	scheme, err := NewIDScheme(cfg.IDScheme, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("syncer config: %w", err)
	}
	// Static metadata that leaves no room for a hash and a size would refuse every file.
	if _, err := buildMetadata(cfg.StaticMetadata, "", strings.Repeat("0", 64), 10<<20); err != nil {
		return nil, fmt.Errorf("syncer config: static metadata: %w", err)
	}
	return &Syncer{
		cfg:      cfg,
		idx:      idx,
		remote:   remote,
		scheme:   scheme,
		log:      cfg.Logger.With("folder", cfg.FolderName),
		owners:   []string{cfg.OwnerTag},
		verifies: make(chan verifyRequest),
	}, nil
}

// Root returns the absolute folder root.
func (s *Syncer) Root() string { return s.cfg.Root }

// DeliveryBase returns the delivery URL base learned from the first upload ("" before).
func (s *Syncer) DeliveryBase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta.DeliveryBase
}

// prepare checks the folder's identity against the index meta. With write set (any pass
// that may change things) it records the meta and creates the marker on first use.
func (s *Syncer) prepare(write bool) error {
	m, ok, err := s.idx.Meta()
	if err != nil {
		return err
	}
	if ok {
		if err := checkIdentity(m, s.cfg, s.scheme.Name()); err != nil {
			return err
		}
		if m.OwnerTag != "" && m.OwnerTag != s.cfg.OwnerTag {
			s.owners = []string{s.cfg.OwnerTag, m.OwnerTag}
		}
		s.mu.Lock()
		s.meta = m
		s.mu.Unlock()
		return nil
	}
	fi, err := os.Stat(s.cfg.Root)
	if err != nil {
		return fmt.Errorf("%w: root %s: %w", ErrFolderUnavailable, s.cfg.Root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: root %s is not a directory", ErrFolderUnavailable, s.cfg.Root)
	}
	_, _, dev := sysStat(fi)
	m = store.Meta{
		AccountID: s.cfg.AccountID,
		Root:      s.cfg.Root,
		IDScheme:  s.scheme.Name(),
		Prefix:    s.cfg.Prefix,
		OwnerTag:  s.cfg.OwnerTag,
		Device:    dev,
		// A new index has no images yet; every upload carries the configured metadata.
		MetadataDigest: s.digest(),
	}
	s.mu.Lock()
	s.meta = m
	s.mu.Unlock()
	if !write {
		return nil
	}
	created, err := s.createMarker()
	if err != nil {
		return err
	}
	m.MarkerCreated = created
	s.mu.Lock()
	s.meta = m
	s.mu.Unlock()
	if err := s.idx.SetMeta(m); err != nil {
		return fmt.Errorf("record folder identity: %w", err)
	}
	return nil
}

// createMarker creates the marker file; created reports whether it now exists. A root
// the daemon may not write (the service's usual read-only access) gets none, and the marker
// check is skipped for it.
func (s *Syncer) createMarker() (created bool, err error) {
	p := filepath.Join(s.cfg.Root, markerName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	switch {
	case err == nil:
		_, err = f.WriteString("This folder is mirrored to Cloudflare Images by cfimgsync.\n" +
			"Its presence tells cfimgsync the folder is mounted; deletes stop without it.\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, fmt.Errorf("create marker %s: %w", p, err)
		}
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return true, nil
	case errors.Is(err, fs.ErrPermission) || isReadOnlyFS(err):
		s.markerWarned = true
		s.log.Warn("folder root is read-only: no marker file, so the marker check is skipped for this folder",
			"root", s.cfg.Root, "marker", markerName)
		return false, nil
	default:
		return false, fmt.Errorf("create marker %s: %w", p, err)
	}
}

// checkIdentity compares the index meta with the configuration.
func checkIdentity(m store.Meta, cfg Config, scheme string) error {
	var diffs []string
	diff := func(what, old, cur string) {
		if old != cur {
			diffs = append(diffs, fmt.Sprintf("%s %q → %q", what, old, cur))
		}
	}
	diff("account", m.AccountID, cfg.AccountID)
	diff("root", m.Root, cfg.Root)
	was := m.IDScheme
	if was == "" {
		was = "path"
	}
	diff("id scheme", was, scheme)
	diff("prefix", m.Prefix, cfg.Prefix)
	if len(diffs) == 0 {
		return nil
	}
	reindex := "cfimgsync reindex --folder " + cfg.FolderName
	var advice []string
	if m.Root != cfg.Root {
		advice = append(advice, fmt.Sprintf("if the folder was moved, run `%s` to rebuild its index for the new place "+
			"(images whose path and content match are kept, nothing is uploaded twice)", reindex))
	}
	if was != scheme || m.Prefix != cfg.Prefix {
		advice = append(advice, fmt.Sprintf("to publish under the new image IDs, run `%s` (every file is uploaded "+
			"under its new ID; the old images are then orphans, which `cfimgsync verify --prune` deletes)", reindex))
	}
	if m.AccountID != cfg.AccountID {
		advice = append(advice, fmt.Sprintf("to mirror into the other account, run `%s`, or give the folder a new name", reindex))
	}
	return fmt.Errorf("%w: %s. If the old setting was right, restore it in the configuration; %s",
		ErrIdentityChanged, strings.Join(diffs, ", "), strings.Join(advice, "; "))
}

// checkFolder is the delete-safety check of DESIGN §6, run before every pass: the root
// exists, is a directory, is on the filesystem it was on, and carries the marker if the
// index has records. Unless dry, a missing marker of a folder without records is created.
func (s *Syncer) checkFolder(dry bool) error {
	root := s.cfg.Root
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("%w: root %s: %w", ErrFolderUnavailable, root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: root %s is not a directory", ErrFolderUnavailable, root)
	}
	s.mu.Lock()
	wantDev := s.meta.Device
	s.mu.Unlock()
	if _, _, dev := sysStat(fi); wantDev != 0 && dev != 0 && dev != wantDev {
		return fmt.Errorf("%w: root %s is on another filesystem than when the index was made (device %d, was %d); "+
			"is a disk not mounted?", ErrFolderUnavailable, root, dev, wantDev)
	}
	s.mu.Lock()
	markerCreated := s.meta.MarkerCreated
	s.mu.Unlock()
	if _, err := os.Lstat(filepath.Join(root, markerName)); err == nil {
		if !markerCreated && !dry {
			// Made by hand, or by a version that did not record it: from now on its
			// absence means this is not the indexed folder.
			return s.updateMeta(func(m *store.Meta) { m.MarkerCreated = true })
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: marker %s: %w", ErrFolderUnavailable, markerName, err)
	}
	if !markerCreated {
		n, err := s.idx.Len()
		if err != nil {
			return err
		}
		if n == 0 {
			if dry {
				return nil
			}
			created, err := s.createMarker()
			if err != nil || !created {
				return err
			}
			return s.updateMeta(func(m *store.Meta) { m.MarkerCreated = true })
		}
		// The root was read-only when the index was made, so there never was a marker and
		// its absence proves nothing; the device check above still catches an unmounted
		// disk. Creating one now could bless an empty mount point.
		if !s.markerWarned {
			s.markerWarned = true
			s.log.Warn("folder has no marker file (its root was read-only when indexed): the marker check is skipped; "+
				"create the marker by hand to enable it", "root", root, "marker", markerName)
		}
		return nil
	}
	return fmt.Errorf("%w: marker file %s is missing from %s, so this may not be the folder the index "+
		"was made for (an empty mount point?); if it is, recreate the marker with `touch %s`",
		ErrFolderUnavailable, markerName, root, filepath.Join(root, markerName))
}

// isOwner reports whether an image carries one of our owner tags.
func (s *Syncer) isOwner(img batchapi.Image) bool {
	for _, o := range s.owners {
		if img.Creator == o {
			return true
		}
	}
	return false
}

func (s *Syncer) emit(ev Event) {
	if s.cfg.Progress != nil {
		s.cfg.Progress(ev)
	}
}
