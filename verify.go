package main

// verify.go: `cfimgsync verify`, which compares our images remotely with the index, and the
// setup it shares with `reindex` (reindex.go): both read the folder and the index directly,
// so they run while no daemon holds the index.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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

// offlineFlags are the flags shared by verify and reindex.
type offlineFlags struct {
	configPath, folder string
	o                  syncOptions
	set                map[string]bool
}

// parseOffline parses the flags shared by verify and reindex, plus those extra adds.
func (c cli) parseOffline(name string, args []string, extra func(*flag.FlagSet)) (offlineFlags, error) {
	fs := newFlagSet(name, c.stderr)
	var f offlineFlags
	fs.StringVar(&f.configPath, "config", "", "config file; the flags below override it")
	fs.StringVar(&f.o.dir, "dir", "", "the folder (without --config; its index name is \"default\")")
	fs.StringVar(&f.o.state, "state", "", "index file (default: the config's, else $CFIMGSYNC_STATE or the XDG state dir)")
	fs.StringVar(&f.o.prefix, "prefix", "", "prefix of every image ID, as synced")
	fs.StringVar(&f.folder, "folder", "", "only this folder of the config (default: all)")
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// offlineSetup builds the configuration and client, like `sync --once`.
func (c cli) offlineSetup(name string, f offlineFlags) (*offline, error) {
	if f.o.dir == "" && f.configPath == "" {
		return nil, usageError{name + ": --dir or --config is required"}
	}
	cfg, err := syncConfig(f.configPath, f.o, f.set, os.Getenv)
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
	for _, fc := range cfg.folders {
		names = append(names, fc.name)
		if f.folder == "" || fc.name == f.folder {
			off.folders = append(off.folders, fc)
		}
	}
	if len(off.folders) == 0 {
		return nil, usageError{fmt.Sprintf("%s: no folder %q in the configuration (folders: %s)", name, f.folder, strings.Join(names, ", "))}
	}
	return off, nil
}

// statePath is the index these flags name, for asking its daemon.
func (f offlineFlags) statePath() (string, error) {
	switch {
	case f.set["state"]:
		return f.o.state, nil
	case f.configPath != "":
		return statePathFor(f.configPath, "")
	case f.o.dir != "":
		return defaultStatePath(), nil
	}
	return statePathFor("", "")
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
	flags, err := c.parseOffline("verify", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&prune, "prune", false, "delete orphans: images of ours that no file maps to")
	})
	if err != nil {
		return err
	}
	state, err := flags.statePath()
	if err != nil {
		return err
	}
	results, askErr := verifyViaDaemon(ctx, socketPath(state), flags.folder, prune)
	var refused *daemonAnswerError
	switch {
	case askErr == nil:
		failed := false
		for _, r := range results {
			if r.Error != "" {
				fmt.Fprintf(c.stdout, "folder %s: %s\n", r.Folder, r.Error)
				failed = true
				continue
			}
			printVerify(c.stdout, r.Folder, r.report(), prune)
			if len(r.Missing)+len(r.Mismatched) > 0 {
				fmt.Fprintln(c.stdout, "the daemon uploads them again now")
			}
		}
		if failed {
			return errors.New("verify failed for some folders (see above)")
		}
		return nil
	case errors.As(askErr, &refused):
		return askErr
	case flags.o.dir == "" && flags.configPath == "":
		return usageError{fmt.Sprintf("verify: no daemon answered on %s (%v); without one, verify needs --config or --dir", socketPath(state), askErr)}
	}
	off, err := c.offlineSetup("verify", flags)
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
		printVerify(c.stdout, f.name, rep, prune)
		if len(rep.Missing)+len(rep.Mismatched) == 0 {
			continue
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

// printVerify writes one folder's verify report.
func printVerify(w io.Writer, folder string, rep syncer.VerifyReport, prune bool) {
	fmt.Fprintf(w, "folder %s: %d images of ours listed; %d missing remotely, %d changed remotely, %d orphans\n",
		folder, rep.Listed, len(rep.Missing), len(rep.Mismatched), len(rep.Orphans))
	for _, p := range rep.Missing {
		fmt.Fprintf(w, "missing  %s\n", p)
	}
	for _, p := range rep.Mismatched {
		fmt.Fprintf(w, "changed  %s\n", p)
	}
	for _, o := range rep.Orphans {
		verb := "orphan "
		if prune {
			verb = "pruned "
		}
		fmt.Fprintf(w, "%s  %s (path %q)\n", verb, o.ImageID, o.Path)
	}
	if len(rep.Orphans) > 0 && !prune {
		fmt.Fprintln(w, "orphans are images of ours that no file maps to; `cfimgsync verify --prune` deletes them")
	}
}

// verifyResult is one folder's verify over the socket.
type verifyResult struct {
	Folder     string          `json:"folder"`
	Error      string          `json:"error,omitempty"`
	Listed     int             `json:"listed"`
	Missing    []string        `json:"missing,omitempty"`
	Mismatched []string        `json:"mismatched,omitempty"`
	Orphans    []syncer.Orphan `json:"orphans,omitempty"`
	Pruned     int             `json:"pruned"`
}

func (r verifyResult) report() syncer.VerifyReport {
	return syncer.VerifyReport{Listed: r.Listed, Missing: r.Missing, Mismatched: r.Mismatched, Orphans: r.Orphans, Pruned: r.Pruned}
}

// verifyTimeout bounds a verify through the daemon: listing a large account takes a while.
const verifyTimeout = 30 * time.Minute

// verifyViaDaemon asks the daemon on socket to verify.
func verifyViaDaemon(ctx context.Context, socket, folder string, prune bool) ([]verifyResult, error) {
	q := url.Values{"folder": {folder}}
	if prune {
		q.Set("prune", "1")
	}
	var out []verifyResult
	err := postDaemon(ctx, socket, "/verify?"+q.Encode(), verifyTimeout, &out)
	return out, err
}

// handleVerify serves POST /verify on the status socket: each running folder's syncer
// verifies between two passes.
func handleVerify(b *board) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		folder, prune := r.URL.Query().Get("folder"), r.URL.Query().Get("prune") == "1"
		b.mu.Lock()
		var names []string
		boards := map[string]*folderBoard{}
		for _, n := range b.order {
			if folder == "" || n == folder {
				names = append(names, n)
				boards[n] = b.folders[n]
			}
		}
		b.mu.Unlock()
		if len(names) == 0 {
			http.Error(w, fmt.Sprintf("verify: the daemon has no folder %q", folder), http.StatusNotFound)
			return
		}
		var out []verifyResult
		for _, n := range names {
			res := verifyResult{Folder: n}
			fb := boards[n]
			fb.mu.Lock()
			s := fb.sy
			fb.mu.Unlock()
			var rep syncer.VerifyReport
			err := syncer.ErrNotRunning
			if s != nil {
				rep, err = s.VerifyNow(r.Context(), prune)
			}
			if err != nil {
				res.Error = err.Error()
			} else {
				res.Listed, res.Missing, res.Mismatched, res.Orphans, res.Pruned = rep.Listed, rep.Missing, rep.Mismatched, rep.Orphans, rep.Pruned
			}
			out = append(out, res)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
}
