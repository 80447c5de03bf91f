package main

// manifest.go: `cfimgsync manifest`, the map from local path to image ID to delivery URLs
// that a website build or a CMS reads, and the daemon's manifest_file.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
)

// manifestEntry is one published image. Its field names are a stable interface.
type manifestEntry struct {
	Folder  string `json:"folder"`
	Path    string `json:"path"`
	ImageID string `json:"image_id"`
	// URLs maps variant name to delivery URL.
	URLs map[string]string `json:"urls"`
}

// manifestEntries lists the synced images of one folder ("" = all), sorted by folder and
// path. Files not (yet) published are left out: a manifest only promises URLs that work.
func manifestEntries(st *store.Store, only string) ([]manifestEntry, error) {
	names, err := st.Folders()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	ents := []manifestEntry{}
	found := false
	for _, name := range names {
		if only != "" && name != only {
			continue
		}
		found = true
		f := st.Folder(name)
		meta, _, err := f.Meta()
		if err != nil {
			return nil, fmt.Errorf("read index of folder %s: %w", name, err)
		}
		err = f.ForEach(func(r store.Record) error {
			if r.State != store.StateSynced {
				return nil
			}
			e := manifestEntry{Folder: name, Path: r.Path, ImageID: r.ImageID, URLs: map[string]string{}}
			if meta.DeliveryBase != "" {
				for _, v := range meta.Variants {
					e.URLs[v] = syncer.DeliveryURL(meta.DeliveryBase, r.ImageID, v)
				}
			}
			ents = append(ents, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read index of folder %s: %w", name, err)
		}
	}
	if only != "" && !found {
		return nil, usageError{fmt.Sprintf("no folder %q in the index (folders: %s)", only, strings.Join(names, ", "))}
	}
	return ents, nil
}

// encodeManifest writes entries as JSON (an array) or CSV (one row per variant, with a
// header: folder,path,image_id,variant,url).
func encodeManifest(w io.Writer, ents []manifestEntry, format string) error {
	switch format {
	case "", "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ents)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"folder", "path", "image_id", "variant", "url"})
		for _, e := range ents {
			if len(e.URLs) == 0 {
				_ = cw.Write([]string{e.Folder, e.Path, e.ImageID, "", ""})
			}
			for _, v := range sortedKeys(e.URLs) {
				_ = cw.Write([]string{e.Folder, e.Path, e.ImageID, v, e.URLs[v]})
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return usageError{fmt.Sprintf("manifest: format %q is not json or csv", format)}
}

// manifestFormatFor picks the format of manifest_file from its extension.
func manifestFormatFor(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		return "csv"
	}
	return "json"
}

// writeAtomic writes a file through a temporary file in the same directory and a rename,
// so a reader (a web server, a build) sees the old manifest or the new one, never half.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	// The manifest holds nothing secret; readers such as a web server need to read it.
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeManifestFile writes the manifest of st to path atomically.
func writeManifestFile(path, folder string, st *store.Store, format string) error {
	ents, err := manifestEntries(st, folder)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, func(w io.Writer) error { return encodeManifest(w, ents, format) }); err != nil {
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	return nil
}

func (c cli) manifest(ctx context.Context, args []string) error {
	fs := newFlagSet("manifest", c.stderr)
	configPath := fs.String("config", "", "config file (its state setting names the index)")
	state := fs.String("state", "", "index file (default: from --config, else $CFIMGSYNC_STATE or the XDG state dir)")
	format := fs.String("format", "json", "json or csv")
	out := fs.String("out", "", "write to this file atomically instead of stdout")
	folder := fs.String("folder", "", "only this folder (default: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "json" && *format != "csv" {
		return usageError{fmt.Sprintf("manifest: --format %q is not json or csv", *format)}
	}
	path, err := statePathFor(*configPath, *state)
	if err != nil {
		return err
	}
	ents, err := manifestFromDaemonOrIndex(ctx, path, *folder)
	if err != nil {
		return err
	}
	if *out == "" {
		return encodeManifest(c.stdout, ents, *format)
	}
	if err := writeAtomic(*out, func(w io.Writer) error { return encodeManifest(w, ents, *format) }); err != nil {
		return fmt.Errorf("write manifest %s: %w", *out, err)
	}
	return nil
}

// manifestFromDaemonOrIndex asks a running daemon (which holds the index lock) and falls
// back to reading the index.
func manifestFromDaemonOrIndex(ctx context.Context, state, folder string) ([]manifestEntry, error) {
	resp, askErr := askDaemon(ctx, socketPath(state), "/manifest?format=json&folder="+url.QueryEscape(folder))
	var answered *daemonAnswerError
	if errors.As(askErr, &answered) {
		return nil, askErr
	}
	if askErr == nil {
		defer resp.Body.Close()
		var ents []manifestEntry
		if err := json.NewDecoder(resp.Body).Decode(&ents); err != nil {
			return nil, fmt.Errorf("read manifest from the daemon: %w", err)
		}
		return ents, nil
	}
	st, err := openIndexReadOnly(state, askErr)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return manifestEntries(st, folder)
}
