package main

// main.go: the command switch and exit codes, and the sync, ls, emulator and demo commands.

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// sampleImages is the demo's folder content: small, freely licensed images (testdata/README.md).
//
//go:embed testdata/sample
var sampleImages embed.FS

// The emulator's defaults, as the README's curl example uses them.
const (
	emulatorAccountID = "023e105f4ecef8ad9ca31a8372d0c353"
	emulatorAPIToken  = "emulator-api-token"
)

// Exit codes (DESIGN §11). Scripts rely on them.
const (
	exitOK          = 0
	exitFilesFailed = 1
	exitUsage       = 2
	exitAuth        = 3
	exitFolder      = 4
	exitInterrupted = 130
)

const usage = `cfimgsync keeps folders mirrored to Cloudflare Images.

Usage:
  cfimgsync demo [--once] [--dir DIR]        try it: local emulator + sample images
  cfimgsync sync [--config FILE] [--dir DIR] [--once] [--dry-run] [--state FILE] [--prefix P] [--settle DUR]
  cfimgsync run [--config FILE]              the service: watch every configured folder (SIGHUP reloads)
  cfimgsync service install|uninstall|start|stop|restart|status [--config FILE] [--user NAME]
  cfimgsync status [--json] [--config FILE | --state FILE]
                                             what the daemon is doing, or what the index says
  cfimgsync manifest [--format json|csv] [--out FILE] [--folder NAME] [--config FILE | --state FILE]
  cfimgsync config check [--config FILE]     validate the config, and the token if the API answers
  cfimgsync approve-deletes [--folder NAME] [--config FILE | --state FILE]
                                             let the deletes a delete guard held back happen, once
  cfimgsync verify [--prune] [--folder NAME] [--config FILE | --dir DIR | --state FILE]
                                             compare our images remotely with the index; re-upload what is missing
  cfimgsync reindex [--folder NAME] [--config FILE | --dir DIR] [--state FILE]
                                             rebuild a lost or damaged index from the remote listing and the folder
  cfimgsync ls [--json] [--folder NAME] [--config FILE | --state FILE]
                                             what the index knows: path, image ID, state, URL
  cfimgsync emulator [--listen ADDR] ...     serve a local emulator of the Images API
  cfimgsync version

The API token is never a flag: api_token_file in the config, the systemd credential
cloudflare-api-token, or CLOUDFLARE_API_TOKEN. Without a config file, settings come from
CLOUDFLARE_ACCOUNT_ID, CFIMGSYNC_API_URL, CFIMGSYNC_BATCH_URL and CFIMGSYNC_STATE.

Run "cfimgsync COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli carries the process's output streams and logger to the commands.
type cli struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
}

// usageError marks mistakes in the command line or configuration (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := cli{stdout: stdout, stderr: stderr,
		logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "demo":
		err = c.demo(ctx, rest)
	case "sync":
		err = c.sync(ctx, rest)
	case "ls":
		err = c.ls(ctx, rest)
	case "run":
		err = c.runCmd(ctx, rest)
	case "service":
		err = c.serviceCmd(rest)
	case "status":
		err = c.status(ctx, rest)
	case "manifest":
		err = c.manifest(ctx, rest)
	case "approve-deletes":
		err = c.approveDeletes(ctx, rest)
	case "verify":
		err = c.verify(ctx, rest)
	case "reindex":
		err = c.reindex(ctx, rest)
	case "config":
		err = c.configCmd(ctx, rest)
	case "emulator":
		err = c.emulator(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "cfimgsync", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cfimgsync: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err)
	if code != exitInterrupted && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "cfimgsync:", err)
	}
	return code
}

// exitCode maps an error kind to the documented exit code, in one place.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	var ff filesFailedError
	var ce *configError
	var ces configErrors
	var insecure *insecureTokenError
	var refused *daemonAnswerError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.As(err, &ce), errors.As(err, &ces), errors.As(err, &insecure):
		return exitUsage
	case errors.As(err, &refused) && refused.status == http.StatusNotFound:
		// The daemon knows no such folder: a mistake on the command line.
		return exitUsage
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrSchema), errors.Is(err, syncer.ErrIdentityChanged):
		// Only the operator can fix these (reindex, upgrade, restore the setting): exit 2,
		// which the unit's RestartPreventExitStatus keeps from becoming a restart loop.
		return exitUsage
	case batchapi.IsAuth(err):
		return exitAuth
	case errors.Is(err, syncer.ErrFolderUnavailable), errors.Is(err, syncer.ErrDeleteGuard):
		return exitFolder
	case errors.As(err, &ff):
		return exitFilesFailed
	default:
		return exitFilesFailed
	}
}

// filesFailedError reports that a pass finished but some files could not be synced.
type filesFailedError struct{ n int }

func (e filesFailedError) Error() string {
	return fmt.Sprintf("%d file(s) could not be synced (see above, or run \"cfimgsync ls\")", e.n)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// syncOptions are the flags of `sync` and `demo`.
type syncOptions struct {
	dir, state, prefix string
	idScheme           string
	settle             time.Duration
	once, dryRun       bool
}

func (c cli) sync(ctx context.Context, args []string) error {
	fs := newFlagSet("sync", c.stderr)
	var o syncOptions
	configPath := fs.String("config", "", "config file; the flags below override it")
	fs.StringVar(&o.dir, "dir", "", "folder to mirror (required without --config; replaces the config's folders)")
	fs.StringVar(&o.state, "state", "", "index file (default: the config's, else $CFIMGSYNC_STATE or the XDG state dir)")
	fs.StringVar(&o.prefix, "prefix", "", "prefix for every image ID, e.g. \"site/\"")
	fs.StringVar(&o.idScheme, "id-scheme", "", "how files map to image IDs: path, versioned or auto (default: the config's, else path)")
	fs.DurationVar(&o.settle, "settle", defaultSettle, "quiet time before a changed file is synced")
	fs.BoolVar(&o.once, "once", false, "one full reconcile, then exit")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.dir == "" && *configPath == "" {
		return usageError{"sync: --dir or --config is required"}
	}
	load := func() (*config, error) { return syncConfig(*configPath, o, set, os.Getenv) }
	cfg, err := load()
	if err != nil {
		return err
	}
	logger := c.logger
	if cfg.file != "" {
		logger = newLogger(cfg.logFormat, c.stderr)
	}
	if !o.once && !o.dryRun {
		if set["dir"] {
			// A folder named on the command line that is not there is a typo, not a disk
			// about to be mounted (the service, run from a config file, waits for that).
			if err := checkFolder(o.dir); err != nil {
				return err
			}
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		d := &daemon{load: load, logger: logger, stdout: c.stdout, reload: hup}
		err := d.run(ctx)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// A signal is how a daemon is asked to stop: that is a clean exit, not an
			// interruption, so the service manager does not count it as a failure.
			return nil
		}
		return err
	}
	tok, _, err := loadToken(cfg, os.Getenv)
	if err != nil {
		return err
	}
	cc := cfg.clientConfig(tok)
	cc.Logger = logger
	client, err := batchapi.New(cc)
	if err != nil {
		return usageError{err.Error()}
	}
	return c.syncFolders(ctx, cfg, client, logger, o.dryRun)
}

// checkFolder refuses a folder that does not exist or is not a directory (exit code 4).
func checkFolder(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", syncer.ErrFolderUnavailable, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", syncer.ErrFolderUnavailable, dir)
	}
	return nil
}

// syncConfig builds sync's configuration: the file if given, else the flags and the
// environment; flags given on the command line override the file.
func syncConfig(configPath string, o syncOptions, set map[string]bool, getenv func(string) string) (*config, error) {
	var cfg *config
	var err error
	if configPath != "" {
		if cfg, err = loadConfig(configPath, getenv); err != nil {
			return nil, err
		}
	} else {
		off := "off"
		fc := fileConfig{MetricsListen: &off, Folders: []fileFolder{{Path: "/", Name: "default"}}}
		if cfg, err = fc.resolve("command line", keyLines{}, getenv); err != nil {
			return nil, err
		}
		cfg.file = ""
	}
	if set["dir"] {
		root, err := filepath.Abs(o.dir)
		if err != nil {
			return nil, usageError{fmt.Sprintf("sync: --dir: %v", err)}
		}
		// The same name a config file's [[folder]] with this path gets, so moving from
		// flags to a config file keeps the index and the owner tag.
		cfg.folders = []folderConfig{{name: deriveFolderName(root), path: root, idScheme: "path",
			deleteMode: syncer.DeleteMirror, settle: defaultSettle, rescanInterval: defaultRescan}}
	}
	for i := range cfg.folders {
		if set["prefix"] {
			if strings.HasPrefix(o.prefix, "/") {
				return nil, usageError{"sync: --prefix must not start with \"/\""}
			}
			cfg.folders[i].prefix = o.prefix
		}
		if set["settle"] {
			cfg.folders[i].settle = o.settle
		}
		if set["id-scheme"] {
			cfg.folders[i].idScheme = o.idScheme
		}
		if set["id-scheme"] || set["prefix"] {
			if _, err := syncer.NewIDScheme(cfg.folders[i].idScheme, cfg.folders[i].prefix); err != nil {
				return nil, usageError{"sync: " + err.Error()}
			}
		}
	}
	if set["state"] {
		cfg.state = o.state
	}
	return cfg, nil
}

// syncFolders is `sync --once` and `sync --dry-run`: one pass over each folder in turn.
func (c cli) syncFolders(ctx context.Context, cfg *config, client *batchapi.Client, logger *slog.Logger, dryRun bool) error {
	st, err := store.Open(cfg.state, store.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer st.Close()
	var firstErr error
	failed := 0
	var cur *syncer.Syncer // the folder being synced, for the progress lines' URLs
	for _, f := range cfg.folders {
		sc, err := f.syncerConfig(cfg)
		if err != nil {
			return usageError{err.Error()}
		}
		sc.Logger = logger
		switch {
		case dryRun:
		case isTerminal(c.stdout):
			sc.Progress = newProgressBar(c.stdout).event
		default:
			sc.Progress = progressPrinter(c.stdout, func() *syncer.Syncer { return cur })
		}
		s, err := syncer.New(sc, st.Folder(f.name), client)
		cur = s
		if err != nil {
			return usageError{err.Error()}
		}
		if len(cfg.folders) > 1 {
			fmt.Fprintf(c.stdout, "== folder %s (%s)\n", f.name, f.path)
		}
		if dryRun {
			plan, err := s.Plan(ctx)
			if err != nil {
				return err
			}
			if err := printPlan(c.stdout, plan); err != nil {
				return err
			}
			continue
		}
		sum, err := s.SyncOnce(ctx)
		printSummary(c.stdout, sum, err)
		failed += sum.Failed
		if err != nil {
			if ctx.Err() != nil || batchapi.IsAuth(err) {
				// A refused token fails every folder the same way.
				return err
			}
			if len(cfg.folders) > 1 {
				err = fmt.Errorf("folder %s: %w", f.name, err)
			}
			// Another folder's trouble is no reason to leave this one unsynced.
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if failed > 0 {
		return filesFailedError{failed}
	}
	return nil
}

// defaultStatePath is $CFIMGSYNC_STATE (the systemd unit sets it), else the XDG base
// directory spec's place for state files.
func defaultStatePath() string {
	if p := os.Getenv("CFIMGSYNC_STATE"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cfimgsync", "state.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "cfimgsync", "state.db")
	}
	return "cfimgsync-state.db"
}

// mirror runs one folder: a single pass (--once, --dry-run) or the watching daemon.
func (c cli) mirror(ctx context.Context, client *batchapi.Client, account string, o syncOptions) error {
	stdout, logger := c.stdout, c.logger
	root, err := filepath.Abs(o.dir)
	if err != nil {
		return usageError{fmt.Sprintf("sync: --dir: %v", err)}
	}
	st, err := store.Open(o.state, store.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer st.Close()

	matcher, err := watcher.NewMatcher(nil)
	if err != nil {
		return usageError{err.Error()}
	}
	var s *syncer.Syncer
	s, err = syncer.New(syncer.Config{
		FolderName: deriveFolderName(root),
		Root:       root,
		Prefix:     o.prefix,
		AccountID:  account,
		Ignore:     matcher,
		Logger:     logger,
		Progress:   progressPrinter(stdout, func() *syncer.Syncer { return s }),
	}, st.Folder(deriveFolderName(root)), client)
	if err != nil {
		return usageError{err.Error()}
	}

	if o.dryRun {
		plan, err := s.Plan(ctx)
		if err != nil {
			return err
		}
		return printPlan(stdout, plan)
	}
	if o.once {
		sum, err := s.SyncOnce(ctx)
		printSummary(stdout, sum, err)
		if err != nil {
			return err
		}
		if sum.Failed > 0 {
			return filesFailedError{sum.Failed}
		}
		return nil
	}

	w, err := watcher.New(root, watcher.Options{Settle: o.settle, Ignore: matcher, Logger: logger})
	if err != nil {
		return err
	}
	hints := make(chan watcher.Batch, 16)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx, hints) })
	g.Go(func() error { return s.Run(gctx, hints) })
	fmt.Fprintf(stdout, "watching %s (Ctrl-C to stop)\n", root)
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// A signal is how a daemon is asked to stop: that is a clean exit, not an
		// interruption, so the service manager does not count it as a failure.
		return nil
	}
	return err
}

// progressPrinter writes one plain line per finished operation; an upload names the URL
// the image is served at, once the syncer knows the account's delivery base.
func progressPrinter(w io.Writer, syn func() *syncer.Syncer) func(syncer.Event) {
	return func(ev syncer.Event) {
		switch ev.Kind {
		case syncer.EventUpload, syncer.EventReplace:
			if s := syn(); s != nil && s.DeliveryBase() != "" {
				fmt.Fprintf(w, "%-8s %s  %s\n", ev.Kind, shown(ev.Path), syncer.DeliveryURL(s.DeliveryBase(), ev.ImageID, "public"))
				return
			}
			fmt.Fprintf(w, "%-8s %s\n", ev.Kind, shown(ev.Path))
		case syncer.EventUpdate, syncer.EventDelete:
			fmt.Fprintf(w, "%-8s %s\n", ev.Kind, shown(ev.Path))
		case syncer.EventSkip, syncer.EventFail:
			fmt.Fprintf(w, "%-8s %s: %s\n", ev.Kind, shown(ev.Path), shown(reasonOf(ev)))
		}
	}
}

// reasonOf is an event's error without the path it starts with: the line names it already.
func reasonOf(ev syncer.Event) string {
	if ev.Err == nil {
		return ""
	}
	return strings.TrimPrefix(ev.Err.Error(), ev.Path+": ")
}

// printSummary ends a pass. A pass that stopped early (err) says so instead of "done", so
// the counts are not read as a finished mirror.
func printSummary(w io.Writer, s syncer.Summary, err error) {
	head := "done"
	if err != nil {
		head = "stopped early"
	}
	fmt.Fprintf(w, "%s: %d uploaded, %d replaced, %d updated, %d deleted, %d unchanged, %d skipped, %d failed\n",
		head, s.Uploaded, s.Replaced, s.Updated, s.Deleted, s.Unchanged, s.Skipped, s.Failed)
}

// printPlan writes the dry run: one line per operation, then what is left alone and why.
func printPlan(w io.Writer, p syncer.Plan) error {
	for _, op := range p.Ops {
		line := fmt.Sprintf("%-8s %s", op.Kind, shown(op.Path))
		if op.OldPath != "" {
			line += " (from " + op.OldPath + ")"
		}
		if op.Reason != "" {
			line += ": " + op.Reason
		}
		fmt.Fprintln(w, line)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "%-8s %s: %s\n", "skip", shown(s.Path), shown(s.Reason))
	}
	for _, f := range p.Failed {
		fmt.Fprintf(w, "%-8s %s: %s\n", "refuse", shown(f.Path), shown(f.Reason))
	}
	for _, f := range p.Parked {
		fmt.Fprintf(w, "%-8s %s: %s\n", "parked", shown(f.Path), shown(f.Reason))
	}
	for _, f := range p.ScanErrors {
		fmt.Fprintf(w, "%-8s %s: %s\n", "unread", shown(f.Path), shown(f.Reason))
	}
	for _, d := range p.Delayed {
		fmt.Fprintf(w, "%-8s %s: file removed; image kept until %s (delete_delay)\n", "delayed", shown(d.Path), d.Due.Local().Format(time.RFC3339))
	}
	if p.HeldDeletes > 0 {
		fmt.Fprintf(w, "deletes would not run: %d held back because some directories could not be read\n", p.HeldDeletes)
	}
	fmt.Fprintf(w, "plan: %d operation(s), %d unchanged, %d skipped, %d refused, %d parked (dry run: nothing changed)\n",
		len(p.Ops), p.Unchanged, len(p.Skipped), len(p.Failed), len(p.Parked))
	if p.Guard != nil {
		fmt.Fprintf(w, "deletes would not run: %v\n", p.Guard)
	}
	return nil
}

func (c cli) ls(ctx context.Context, args []string) error {
	fs := newFlagSet("ls", c.stderr)
	configPath := fs.String("config", "", "config file (its state setting names the index)")
	state := fs.String("state", "", "index file (default: as for status)")
	folder := fs.String("folder", "", "only this folder (default: all)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := statePathFor(*configPath, *state)
	if err != nil {
		return err
	}
	// A running daemon holds the index's lock: ask it over its socket first.
	resp, askErr := askDaemon(ctx, socketPath(path), "/ls?folder="+url.QueryEscape(*folder))
	if askErr == nil {
		defer resp.Body.Close()
		return printLsLines(c.stdout, resp.Body, *asJSON)
	}
	st, err := openIndexReadOnly(path, askErr)
	if err != nil {
		return err
	}
	defer st.Close()
	return listFolders(c.stdout, st, *folder, *asJSON)
}

// listFolders lists every folder of the index, or only the one named.
func listFolders(w io.Writer, st *store.Store, only string, asJSON bool) error {
	names, err := st.Folders()
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	for _, n := range names {
		if only != "" && n != only {
			continue
		}
		if err := listIndex(w, st.Folder(n), asJSON); err != nil {
			return err
		}
	}
	return nil
}

// printLsLines prints the daemon's JSON lines as they are, or as ls's text lines.
func printLsLines(w io.Writer, r io.Reader, asJSON bool) error {
	if asJSON {
		_, err := io.Copy(w, r)
		return err
	}
	dec := json.NewDecoder(r)
	for {
		var e lsEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the daemon's answer: %w", err)
		}
		if err := printLsEntry(w, e); err != nil {
			return err
		}
	}
}

// lsEntry is one line of `cfimgsync ls --json`; its field names are a stable interface.
type lsEntry struct {
	Folder  string   `json:"folder"`
	Path    string   `json:"path"`
	ImageID string   `json:"image_id"`
	State   string   `json:"state"`
	Error   string   `json:"error,omitempty"`
	URLs    []string `json:"urls,omitempty"`
}

func listIndex(w io.Writer, f *store.Folder, asJSON bool) error {
	meta, _, err := f.Meta()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	return f.ForEach(func(r store.Record) error {
		e := lsEntry{Folder: f.Name(), Path: r.Path, ImageID: r.ImageID, State: r.State.String(), Error: r.LastError}
		if r.State == store.StateSynced && meta.DeliveryBase != "" {
			for _, v := range meta.Variants {
				e.URLs = append(e.URLs, syncer.DeliveryURL(meta.DeliveryBase, r.ImageID, v))
			}
		}
		if asJSON {
			return enc.Encode(e)
		}
		return printLsEntry(w, e)
	})
}

// printLsEntry is one line of ls's text output: state, path, and the URL or the reason.
func printLsEntry(w io.Writer, e lsEntry) error {
	detail := ""
	if len(e.URLs) > 0 {
		detail = e.URLs[0]
	}
	if e.Error != "" {
		detail = e.Error
	}
	_, err := fmt.Fprintf(w, "%-7s %s\t%s\n", e.State, shown(e.Path), shown(detail))
	return err
}

func (c cli) emulator(ctx context.Context, args []string) error {
	fs := newFlagSet("emulator", c.stderr)
	listen := fs.String("listen", "127.0.0.1:8787", "address to listen on")
	var o emulator.Options
	fs.StringVar(&o.AccountID, "account-id", emulatorAccountID, "account ID the global routes accept")
	fs.StringVar(&o.APIToken, "api-token", emulatorAPIToken, "API token the global routes accept")
	fs.DurationVar(&o.TokenTTL, "token-ttl", 0, "batch token lifetime (default 15m)")
	fs.DurationVar(&o.Latency, "latency", 0, "latency added to every API call")
	fs.Float64Var(&o.FailRate, "fail-rate", 0, "fraction of image calls answered with a 5xx")
	fs.Float64Var(&o.TokenRate, "rate", 0, "requests/second allowed per batch token (default 200)")
	fs.IntVar(&o.GlobalBudget, "global-budget", 0, "global API requests per 5 minutes (default 1200)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.Logger = c.logger
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageError{fmt.Sprintf("emulator: %v", err)}
	}
	e := emulator.New(o)
	base := "http://" + ln.Addr().String()
	// The emulator's token is not a secret (it guards nothing), but it is still not
	// printed, so that copying this output never teaches anyone to paste tokens around.
	fmt.Fprintf(c.stdout, "Cloudflare Images emulator listening on %s\n  export CFIMGSYNC_API_URL=%s/client/v4\n  export CFIMGSYNC_BATCH_URL=%s\n  export CLOUDFLARE_ACCOUNT_ID=%s\n  export CLOUDFLARE_API_TOKEN=...   # the --api-token value\n",
		base, base, base, o.AccountID)
	return emulator.Serve(ctx, ln, e)
}

func (c cli) demo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", c.stderr)
	stdout, logger := c.stdout, c.logger
	var o syncOptions
	fs.StringVar(&o.dir, "dir", "cfimgsync-demo", "folder to mirror; filled with sample images if it does not exist")
	fs.BoolVar(&o.once, "once", false, "finish after the first pass")
	fs.DurationVar(&o.settle, "settle", time.Second, "quiet time before a changed file is synced")
	listen := fs.String("listen", "127.0.0.1:0", "address for the emulator")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := seedSamples(o.dir); err != nil {
		return err
	}
	// The emulator starts empty on every run, so the demo's index must too.
	tmp, err := os.MkdirTemp("", "cfimgsync-demo-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.state = filepath.Join(tmp, "state.db")

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageError{fmt.Sprintf("demo: %v", err)}
	}
	e := emulator.New(emulator.Options{AccountID: emulatorAccountID, APIToken: emulatorAPIToken, Logger: logger})
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- emulator.Serve(srvCtx, ln, e) }()
	defer func() { stopSrv(); <-srvDone }()

	base := "http://" + ln.Addr().String()
	client, err := batchapi.New(batchapi.Config{
		AccountID: emulatorAccountID,
		APIToken:  batchapi.Secret(emulatorAPIToken),
		APIURL:    base + "/client/v4",
		BatchURL:  base,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "emulator listening on %s\nmirroring %s\n", base, o.dir)
	return c.mirror(ctx, client, emulatorAccountID, o)
}

// seedSamples creates dir with the embedded sample images if it does not exist yet, so a
// user's own additions to a demo folder survive the next run.
func seedSamples(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	sub, err := fs.Sub(sampleImages, "testdata/sample")
	if err != nil {
		return err
	}
	return fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
