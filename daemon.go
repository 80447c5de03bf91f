package main

// daemon.go: the long-running mirror behind `cfimgsync run` and a watching `sync`: one
// watcher and one syncer per configured folder over one shared index, the admin surfaces
// (status socket, metrics), SIGHUP reloads, and waiting for the API at start.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// daemon runs the configured folders until its context ends or a fatal error.
type daemon struct {
	// load reads the configuration: at start and on every reload.
	load func() (*config, error)
	// getenv supplies the token's fallbacks (os.Getenv outside tests).
	getenv func(string) string
	logger *slog.Logger
	// stdout, when not nil, gets a line per finished operation and "watching ..." per
	// folder (the interactive `sync`); the service logs instead.
	stdout io.Writer
	// reload delivers SIGHUP.
	reload <-chan os.Signal
	// apiRetry and apiRetryMax shape the wait between attempts to reach the API at start
	// (defaults 1s doubling to 30s).
	apiRetry, apiRetryMax time.Duration
	// folderRetry is the first wait before looking again for a folder that is not there
	// (default 1s, doubling to a minute).
	folderRetry time.Duration
	// newClient builds the API client; tests leave it nil for batchapi.New.
	newClient func(batchapi.Config) (*batchapi.Client, error)

	board *board
	// token is the one the current client was built with, to tell on reload whether the
	// token file or credential changed.
	token batchapi.Secret
}

// run is the daemon's life: open the index, serve the admin surfaces, run the folders,
// restart them on reload. It returns ctx.Err() after a requested stop, once the calls in
// flight have been recorded and the index closed; any other error is fatal.
func (d *daemon) run(ctx context.Context) error {
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	if d.getenv == nil {
		d.getenv = os.Getenv
	}
	if d.newClient == nil {
		d.newClient = batchapi.New
	}
	if d.apiRetry <= 0 {
		d.apiRetry = time.Second
	}
	if d.apiRetryMax <= 0 {
		d.apiRetryMax = 30 * time.Second
	}
	cfg, err := d.load()
	if err != nil {
		return err
	}
	d.board = newBoard(cfg.state)

	st, err := store.Open(cfg.state, store.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer st.Close()

	client, err := d.client(cfg)
	if err != nil {
		return err
	}

	// The admin surfaces live as long as the daemon, across reloads.
	admin, adminCtx := errgroup.WithContext(ctx)
	adminCtx, stopAdmin := context.WithCancel(adminCtx)
	// Without the socket, status reports that the daemon holds the index but does not
	// answer: worth a warning, not worth refusing to sync.
	if ss, err := listenStatus(socketPath(cfg.state), d.board, st, d.logger); err != nil {
		d.logger.Warn("no status socket; `cfimgsync status` will not reach this daemon", "err", err)
	} else {
		admin.Go(func() error { return ss.serve(adminCtx) })
	}
	if cfg.metricsListen != "" {
		ms, err := listenMetrics(cfg.metricsListen, d.board, st, func() batchapi.Stats { return d.board.client().Stats() })
		if err != nil {
			stopAdmin()
			_ = admin.Wait()
			return err
		}
		d.board.setMetricsAddr(ms.addr())
		if host, _, _ := net.SplitHostPort(ms.addr()); !isLoopback(host) {
			d.logger.Warn("metrics_listen is not a loopback address: /metrics and /healthz are open to the network", "addr", ms.addr())
		}
		admin.Go(func() error { return ms.serve(adminCtx) })
	}
	defer func() {
		stopAdmin()
		if err := admin.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			d.logger.Warn("admin listener", "err", err)
		}
	}()

	d.logger.Info("cfimgsync started", "version", version, "config", cfg.file, "state", cfg.state,
		"folders", len(cfg.folders), "pid", os.Getpid())
	for {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.runFolders(runCtx, cfg, client, st) }()
	wait:
		for {
			select {
			case err := <-done:
				stop()
				d.board.setPhase(phaseStopped, "")
				if ctx.Err() != nil {
					d.logger.Info("stopped: in-flight calls finished and recorded")
					return ctx.Err()
				}
				return err
			case <-d.reload:
				next, nextClient, err := d.reloadConfig(cfg, client)
				if err != nil {
					d.logger.Error("reload failed; the running configuration stays in effect", "err", err)
					continue
				}
				d.board.setPhase(phaseReloading, "")
				stop()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cfg, client = next, nextClient
				d.logger.Info("configuration reloaded", "folders", len(cfg.folders))
				break wait
			}
		}
	}
}

// reloadConfig reads the configuration again and builds a new client if the API settings
// or the token changed. Settings that belong to the process (state, metrics_listen,
// log_format) need a restart; a change there is logged and otherwise ignored.
func (d *daemon) reloadConfig(cur *config, client *batchapi.Client) (*config, *batchapi.Client, error) {
	next, err := d.load()
	if err != nil {
		return nil, nil, err
	}
	if next.state != cur.state || next.metricsListen != cur.metricsListen || next.logFormat != cur.logFormat {
		d.logger.Warn("state, metrics_listen and log_format take effect at the next restart; keeping the running values",
			"state", cur.state, "metrics_listen", cur.metricsListen, "log_format", cur.logFormat)
		next.state, next.metricsListen, next.logFormat = cur.state, cur.metricsListen, cur.logFormat
	}
	tok, _, err := loadToken(next, d.getenv)
	if err != nil {
		return nil, nil, err
	}
	if next.sameClient(cur) && tok == d.token {
		return next, client, nil
	}
	c, err := d.client(next)
	if err != nil {
		return nil, nil, err
	}
	return next, c, nil
}

// client builds the API client for cfg, with the retry hook feeding the metrics.
func (d *daemon) client(cfg *config) (*batchapi.Client, error) {
	tok, src, err := loadToken(cfg, d.getenv)
	if err != nil {
		return nil, err
	}
	d.logger.Info("API token loaded", "from", string(src))
	d.token = tok
	cc := cfg.clientConfig(tok)
	cc.Logger = d.logger
	cc.OnRetry = d.board.onRetry
	c, err := d.newClient(cc)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	d.board.setClient(c)
	return c, nil
}

// waitForAPI mints a batch token until it works, waiting longer after each failure: a
// service started before the network is up must wait, not exit. An authentication error
// is not going to heal and is returned.
func (d *daemon) waitForAPI(ctx context.Context, cfg *config) error {
	tok, _, err := loadToken(cfg, d.getenv)
	if err != nil {
		return err
	}
	cc := cfg.clientConfig(tok)
	// One attempt per probe: this loop does its own, longer waiting and reports each miss.
	cc.MaxAttempts = 1
	probe, err := d.newClient(cc)
	if err != nil {
		return usageError{err.Error()}
	}
	delay := d.apiRetry
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := probe.BatchToken(pctx)
		cancel()
		if err == nil {
			if attempt > 1 {
				d.logger.Info("API reachable", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if batchapi.IsAuth(err) {
			return fmt.Errorf("check API token: %w", err)
		}
		d.board.setPhase(phaseWaitingAPI, err.Error())
		d.logger.Warn("API not reachable; waiting before the next attempt", "err", err, "attempt", attempt, "wait", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, d.apiRetryMax)
	}
}

// runFolders runs every folder's watcher and syncer until ctx ends or one fails fatally.
func (d *daemon) runFolders(ctx context.Context, cfg *config, client *batchapi.Client, st *store.Store) error {
	d.board.setFolders(cfg.folders)
	d.board.setPhase(phaseStarting, "")
	if err := d.waitForAPI(ctx, cfg); err != nil {
		return err
	}
	d.board.setPhase(phaseRunning, "")

	g, gctx := errgroup.WithContext(ctx)
	var kick chan struct{}
	if cfg.manifestFile != "" {
		kick = make(chan struct{}, 1)
		g.Go(func() error { return d.keepManifest(gctx, cfg.manifestFile, st, kick) })
	}
	for _, f := range cfg.folders {
		sc, err := f.syncerConfig(cfg)
		if err != nil {
			return usageError{err.Error()}
		}
		fb := d.board.folder(f.name)
		sc.Logger = d.logger // the syncer adds the folder's name itself
		var print func(syncer.Event)
		var syn *syncer.Syncer
		if d.stdout != nil {
			print = progressPrinter(d.stdout, func() *syncer.Syncer { return syn })
		}
		sc.Progress = func(ev syncer.Event) {
			fb.event(ev)
			if print != nil {
				print(ev)
			}
			if ev.Kind == syncer.EventDone && kick != nil {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
		s, err := syncer.New(sc, st.Folder(f.name), client)
		if err != nil {
			return usageError{fmt.Sprintf("folder %s: %v", f.name, err)}
		}
		fb.setSyncer(s)
		syn = s
		wopts := watcher.Options{Settle: f.settle, Ignore: sc.Ignore, Logger: d.logger.With("folder", f.name)}
		raw, hints := make(chan watcher.Batch, 16), make(chan watcher.Batch, 16)
		fb.setKick(func() {
			// A full buffer means passes are queued anyway; the rescan timer follows.
			select {
			case hints <- watcher.Batch{Rescan: true}:
			default:
			}
		})
		g.Go(func() error { return d.watch(gctx, f, wopts, raw) })
		g.Go(func() error { return fb.countHints(gctx, raw, hints) })
		g.Go(func() error {
			err := d.syncFolder(gctx, f, s, fb, hints)
			if err != nil && gctx.Err() == nil {
				fb.setStopped(err)
				return fmt.Errorf("folder %s: %w", f.name, err)
			}
			return err
		})
		if d.stdout != nil {
			fmt.Fprintf(d.stdout, "watching %s (Ctrl-C to stop)\n", f.path)
		}
	}
	return g.Wait()
}

// syncFolder runs the folder's syncer. A folder that is not there (a disk not mounted yet
// at boot) is not fatal: the other folders go on, and this one starts when it appears.
// The syncer itself retries a folder that goes missing later; this covers a folder never
// seen before, which it cannot start without.
func (d *daemon) syncFolder(ctx context.Context, f folderConfig, s *syncer.Syncer, fb *folderBoard, hints <-chan watcher.Batch) error {
	for {
		err := s.Run(ctx, hints)
		if !errors.Is(err, syncer.ErrFolderUnavailable) || ctx.Err() != nil {
			return err
		}
		fb.setUnavailable(err)
		d.logger.Error("folder unavailable; it is synced once it appears", "folder", f.name, "err", err)
		if err := d.waitForDir(ctx, f.path); err != nil {
			return err
		}
		d.logger.Info("folder available", "folder", f.name, "path", f.path)
	}
}

// watch runs the folder's watcher, first waiting for the folder to exist if it does not.
// Once a late folder is watched, a Rescan makes the syncer look at all of it.
func (d *daemon) watch(ctx context.Context, f folderConfig, opts watcher.Options, out chan<- watcher.Batch) error {
	w, err := watcher.New(f.path, opts)
	if err != nil {
		if err := d.waitForDir(ctx, f.path); err != nil {
			return err
		}
		if w, err = watcher.New(f.path, opts); err != nil {
			return fmt.Errorf("watch %s: %w", f.path, err)
		}
		select {
		case out <- watcher.Batch{Rescan: true}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.Run(ctx, out)
}

// waitForDir polls until dir is a directory, waiting longer each time up to a minute.
func (d *daemon) waitForDir(ctx context.Context, dir string) error {
	delay := d.folderRetry
	if delay <= 0 {
		delay = time.Second
	}
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, time.Minute)
	}
}

// manifestPause is the least time between two rewrites of manifest_file: a manifest of
// 100,000 files costs about a second of CPU (BenchmarkManifest), and a folder that gets a
// file a second would otherwise rewrite it after every pass.
const manifestPause = 5 * time.Second

// keepManifest rewrites the manifest file after passes. Kicks that arrive while it writes
// or pauses coalesce into one more write.
func (d *daemon) keepManifest(ctx context.Context, path string, st *store.Store, kick <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-kick:
		}
		if err := writeManifestFile(path, "", st, manifestFormatFor(path)); err != nil {
			d.logger.Warn("manifest_file not updated", "path", path, "err", err)
		}
		t := time.NewTimer(manifestPause)
		select {
		case <-ctx.Done():
			t.Stop()
			// A pass that ended during the pause is not left out of the manifest.
			select {
			case <-kick:
				if err := writeManifestFile(path, "", st, manifestFormatFor(path)); err != nil {
					d.logger.Warn("manifest_file not updated", "path", path, "err", err)
				}
			default:
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
