package main

// reindex.go: `cfimgsync reindex`, which rebuilds a lost or damaged index from the remote
// listing (our owner tag) and the folder, then uploads only what is not there.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cfimgsync/cfimgsync/store"
)

func (c cli) reindex(ctx context.Context, args []string) error {
	flags, err := c.parseOffline("reindex", args, nil)
	if err != nil {
		return err
	}
	off, err := c.offlineSetup("reindex", flags)
	if err != nil {
		return err
	}
	path := off.cfg.state
	st, err := openIndexExclusive(path, "reindex")
	if errors.Is(err, store.ErrCorrupt) {
		aside, mvErr := moveAside(path)
		if mvErr != nil {
			return fmt.Errorf("the index %s is damaged and could not be moved aside: %w", path, mvErr)
		}
		fmt.Fprintf(c.stdout, "the index %s is damaged (%v);\nmoved it aside to %s and rebuilding every folder\n", path, err, aside)
		off.folders = off.cfg.folders
		st, err = openIndexExclusive(path, "reindex")
	}
	if err != nil {
		return err
	}
	defer st.Close()
	failed := 0
	for _, f := range off.folders {
		s, err := off.syncer(f, st)
		if err != nil {
			return err
		}
		rep, err := s.Reindex(ctx)
		if err != nil {
			return fmt.Errorf("reindex folder %s: %w", f.name, err)
		}
		fmt.Fprintf(c.stdout, "folder %s: %d files; %d found remotely and recorded, %d to upload; %d orphans\n",
			f.name, rep.Files, rep.Matched, rep.Files-rep.Matched, len(rep.Orphans))
		for _, o := range rep.Orphans {
			fmt.Fprintf(c.stdout, "orphan   %s (path %q)\n", o.ImageID, o.Path)
		}
		if len(rep.Orphans) > 0 {
			fmt.Fprintln(c.stdout, "orphans are images of ours that no file matches; `cfimgsync verify --prune` deletes them")
		}
		// A fresh syncer, as the daemon would start it, uploads what is missing.
		s, err = off.syncer(f, st)
		if err != nil {
			return err
		}
		sum, err := s.SyncOnce(ctx)
		printSummary(c.stdout, sum, err)
		failed += sum.Failed
		if err != nil {
			return fmt.Errorf("folder %s: %w", f.name, err)
		}
	}
	if failed > 0 {
		return filesFailedError{failed}
	}
	return nil
}

// moveAside renames a damaged index to <path>.corrupt-<UTC time>, keeping it for a
// post-mortem, and returns the new name.
func moveAside(path string) (string, error) {
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, nil
}
