package main

// verify.go: `cfimgsync verify`, which compares our images remotely with the index, and the
// setup it shares with `reindex` (reindex.go): both read the folder and the index directly,
// so they run while no daemon holds the index.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
)

// offline is what verify and reindex work with: the configuration, an API client, and the
// folders selected by --folder.
type offline struct {
	cfg     *config
	client  *batchapi.Client
	logger  *slog.Logger
	folders []folderConfig
}

// offlineSetup parses the flags shared by verify and reindex (plus those extra adds) and
// builds the configuration and client, like `sync --once`.
func (c cli) offlineSetup(name string, args []string, extra func(*flag.FlagSet)) (*offline, error) {
	fs := newFlagSet(name, c.stderr)
	configPath := fs.String("config", "", "config file; the flags below override it")
	var o syncOptions
	fs.StringVar(&o.dir, "dir", "", "the folder (without --config; its index name is \"default\")")
	fs.StringVar(&o.state, "state", "", "index file (default: the config's, else $CFIMGSYNC_STATE or the XDG state dir)")
	fs.StringVar(&o.prefix, "prefix", "", "prefix of every image ID, as synced")
	folder := fs.String("folder", "", "only this folder of the config (default: all)")
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.dir == "" && *configPath == "" {
		return nil, usageError{name + ": --dir or --config is required"}
	}
	cfg, err := syncConfig(*configPath, o, set, os.Getenv)
	if err != nil {
		return nil, err
	}
	logger := c.logger
	if cfg.file != "" {
		logger = newLogger(cfg.logFormat, c.stderr)
	}
	tok, _, err := loadToken(cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	cc := cfg.clientConfig(tok)
	cc.Logger = logger
	client, err := batchapi.New(cc)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	off := &offline{cfg: cfg, client: client, logger: logger}
	var names []string
	for _, f := range cfg.folders {
		names = append(names, f.name)
		if *folder == "" || f.name == *folder {
			off.folders = append(off.folders, f)
		}
	}
	if len(off.folders) == 0 {
		return nil, usageError{fmt.Sprintf("%s: no folder %q in the configuration (folders: %s)", name, *folder, strings.Join(names, ", "))}
	}
	return off, nil
}

// syncer builds the syncer of folder f over st.
func (o *offline) syncer(f folderConfig, st *store.Store) (*syncer.Syncer, error) {
	sc, err := f.syncerConfig(o.cfg)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	sc.Logger = o.logger
	s, err := syncer.New(sc, st.Folder(f.name), o.client)
	if err != nil {
		return nil, usageError{fmt.Sprintf("folder %s: %v", f.name, err)}
	}
	return s, nil
}

// openIndexExclusive opens the index for a command that writes it; a running daemon holds
// the lock, and the error says what to do.
func openIndexExclusive(path, cmd string) (*store.Store, error) {
	st, err := store.Open(path, store.Options{Timeout: time.Second})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%s needs the index %s, which a running cfimgsync holds; stop it first "+
			"(sudo systemctl stop cfimgsync), run %s, then start it again", cmd, path, cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	return st, nil
}

func (c cli) verify(ctx context.Context, args []string) error {
	var prune bool
	off, err := c.offlineSetup("verify", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&prune, "prune", false, "delete orphans: images of ours that no file maps to")
	})
	if err != nil {
		return err
	}
	st, err := openIndexExclusive(off.cfg.state, "verify")
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
		rep, err := s.Verify(ctx, prune)
		if err != nil {
			return fmt.Errorf("verify folder %s: %w", f.name, err)
		}
		fmt.Fprintf(c.stdout, "folder %s: %d images of ours listed; %d missing remotely, %d changed remotely, %d orphans\n",
			f.name, rep.Listed, len(rep.Missing), len(rep.Mismatched), len(rep.Orphans))
		for _, p := range rep.Missing {
			fmt.Fprintf(c.stdout, "missing  %s\n", p)
		}
		for _, p := range rep.Mismatched {
			fmt.Fprintf(c.stdout, "changed  %s\n", p)
		}
		for _, o := range rep.Orphans {
			verb := "orphan "
			if prune {
				verb = "pruned "
			}
			fmt.Fprintf(c.stdout, "%s  %s (path %q)\n", verb, o.ImageID, o.Path)
		}
		if len(rep.Orphans) > 0 && !prune {
			fmt.Fprintln(c.stdout, "orphans are images of ours that no file maps to; `cfimgsync verify --prune` deletes them")
		}
		if len(rep.Missing)+len(rep.Mismatched) == 0 {
			continue
		}
		sum, err := s.SyncOnce(ctx)
		printSummary(c.stdout, sum)
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
