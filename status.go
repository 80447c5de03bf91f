package main

// status.go: what the daemon is doing (the board, fed by syncer events), the owner-only
// unix socket that serves it, and `cfimgsync status`, which asks that socket or, with no
// daemon running, reads the index read-only.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// Daemon phases, as `status` shows them.
const (
	phaseStarting   = "starting"
	phaseWaitingAPI = "waiting for API"
	phaseRunning    = "running"
	phaseReloading  = "reloading"
	phaseStopped    = "stopped"
)

// Folder states, as `status` shows them.
const (
	folderStarting    = "starting"
	folderSyncing     = "syncing"
	folderIdle        = "idle"
	folderUnavailable = "unavailable"
	folderGuarded     = "delete guard"
	folderStopped     = "stopped"
	folderNotRunning  = "not running"
)

// maxParkedShown bounds the parked files a status lists; the count is always complete.
const maxParkedShown = 100

// rateWindow is the span the upload rate is averaged over.
const rateWindow = time.Minute

// board is the daemon's live state for status and metrics. Syncer events arrive on worker
// goroutines, so everything is under mu; the methods only count and copy.
type board struct {
	mu          sync.Mutex
	state       string // index file
	started     time.Time
	phase       string
	phaseErr    string
	metricsAddr string
	cl          *batchapi.Client
	// folders survive reloads by name, so counters keep counting.
	folders map[string]*folderBoard
	order   []string
	// retries counts API retries by operation and cause ("429", "503", "neterr").
	retries map[[2]string]int64
}

func newBoard(state string) *board {
	return &board{state: state, started: time.Now(), phase: phaseStarting,
		folders: map[string]*folderBoard{}, retries: map[[2]string]int64{}}
}

func (b *board) setPhase(p, errText string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase, b.phaseErr = p, errText
}

func (b *board) setMetricsAddr(a string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.metricsAddr = a
}

func (b *board) setClient(c *batchapi.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cl = c
}

func (b *board) client() *batchapi.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cl
}

// onRetry is the client's OnRetry hook: it must not block.
func (b *board) onRetry(op string, _ int, err error, _ time.Duration) {
	cause := "neterr"
	var ae *batchapi.APIError
	if errors.As(err, &ae) {
		cause = fmt.Sprint(ae.StatusCode)
	}
	b.mu.Lock()
	b.retries[[2]string{op, cause}]++
	b.mu.Unlock()
}

// setFolders makes the board list exactly these folders, keeping the counters of those
// that stay.
func (b *board) setFolders(fs []folderConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.order = b.order[:0]
	for _, f := range fs {
		fb := b.folders[f.name]
		if fb == nil {
			fb = &folderBoard{name: f.name}
			b.folders[f.name] = fb
		}
		fb.mu.Lock()
		fb.path, fb.state = f.path, folderStarting
		fb.mu.Unlock()
		b.order = append(b.order, f.name)
	}
}

func (b *board) folder(name string) *folderBoard {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.folders[name]
}

// folderBoard is one folder's live state.
type folderBoard struct {
	mu    sync.Mutex
	name  string
	path  string
	state string
	// read counts files read (hashed) in the current pass, finished those whose operation
	// ended; their difference is the queue.
	read, finished int
	lastErr        string
	lastErrAt      time.Time
	lastSync       time.Time
	ops            map[string]int64 // by event kind: upload, replace, update, delete, skip, fail
	bytes          int64
	passes         int64
	rescanHints    int64
	sy             *syncer.Syncer // for its retry queue; nil before the folder starts
	kick           func()         // asks the folder's syncer for a full pass; nil before it starts
	recent         []sample       // uploads within rateWindow, for the rate
}

type sample struct {
	at    time.Time
	bytes int64
}

// event is the syncer's Progress hook for this folder.
func (f *folderBoard) event(ev syncer.Event) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops == nil {
		f.ops = map[string]int64{}
	}
	switch ev.Kind {
	case syncer.EventScan:
		f.read++
		if f.state != folderSyncing {
			f.state = folderSyncing
		}
	case syncer.EventUpload, syncer.EventReplace, syncer.EventUpdate, syncer.EventDelete, syncer.EventSkip:
		f.ops[ev.Kind]++
		f.finished++
		if ev.Kind == syncer.EventUpload || ev.Kind == syncer.EventReplace {
			f.bytes += ev.Bytes
			f.recent = append(f.recent, sample{now, ev.Bytes})
		}
	case syncer.EventFail:
		f.ops[ev.Kind]++
		f.finished++
		f.lastErr, f.lastErrAt = describeFailure(ev), now
	case syncer.EventDone:
		f.passes++
		f.read, f.finished = 0, 0
		switch {
		case ev.Err == nil:
			f.state, f.lastSync = folderIdle, now
		case errors.Is(ev.Err, syncer.ErrFolderUnavailable):
			f.state = folderUnavailable
			f.lastErr, f.lastErrAt = ev.Err.Error(), now
		case errors.Is(ev.Err, syncer.ErrDeleteGuard):
			f.state, f.lastSync = folderGuarded, now
			f.lastErr, f.lastErrAt = ev.Err.Error(), now
		case errors.Is(ev.Err, context.Canceled):
			f.state = folderStopped
		default:
			f.lastErr, f.lastErrAt = ev.Err.Error(), now
		}
	}
}

// describeFailure says which file failed and why, once: a FileError already names its path.
func describeFailure(ev syncer.Event) string {
	var fe syncer.FileError
	if errors.As(ev.Err, &fe) && fe.Reason != "" {
		return fe.Path + ": " + fe.Reason
	}
	if ev.Err == nil {
		return ev.Path
	}
	if ev.Path == "" || strings.HasPrefix(ev.Err.Error(), ev.Path) {
		return ev.Err.Error()
	}
	return ev.Path + ": " + ev.Err.Error()
}

// setKick sets how to ask the folder's syncer for a full pass (after approve-deletes).
func (f *folderBoard) setKick(kick func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kick = kick
}

// rescan asks the folder's syncer for a full pass, if it runs.
func (f *folderBoard) rescan() {
	f.mu.Lock()
	kick := f.kick
	f.mu.Unlock()
	if kick != nil {
		kick()
	}
}

func (f *folderBoard) setSyncer(s *syncer.Syncer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sy = s
}

// retries is the syncer's queue of files waiting for another attempt.
func (f *folderBoard) retries() []syncer.Retry {
	f.mu.Lock()
	s := f.sy
	f.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Status().Retries
}

func (f *folderBoard) setUnavailable(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = folderUnavailable
	f.lastErr, f.lastErrAt = err.Error(), time.Now()
}

func (f *folderBoard) setStopped(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = folderStopped
	f.lastErr, f.lastErrAt = err.Error(), time.Now()
}

// countHints passes watcher batches on, counting the Rescan ones (overflows, lost
// watches, a root that came back) for status and metrics.
func (f *folderBoard) countHints(ctx context.Context, in <-chan watcher.Batch, out chan<- watcher.Batch) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-in:
			if b.Rescan {
				f.mu.Lock()
				f.rescanHints++
				f.mu.Unlock()
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// rate is the upload rate in bytes/second over the last rateWindow.
func (f *folderBoard) rateLocked(now time.Time) float64 {
	i := 0
	for i < len(f.recent) && now.Sub(f.recent[i].at) > rateWindow {
		i++
	}
	f.recent = f.recent[i:]
	var sum int64
	for _, s := range f.recent {
		sum += s.bytes
	}
	return float64(sum) / rateWindow.Seconds()
}

// statusReport is `cfimgsync status --json`. Its field names are a stable interface.
type statusReport struct {
	// Daemon is true when a running daemon answered; false when the index was read offline.
	Daemon      bool           `json:"daemon"`
	PID         int            `json:"pid,omitempty"`
	Version     string         `json:"version,omitempty"`
	Started     *time.Time     `json:"started,omitempty"`
	Phase       string         `json:"phase"`
	PhaseError  string         `json:"phase_error,omitempty"`
	State       string         `json:"state_file"`
	MetricsAddr string         `json:"metrics_addr,omitempty"`
	Folders     []folderReport `json:"folders"`
}

type folderReport struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	State string `json:"state"`
	// Files counts the index records by state (synced, pending, failed).
	Files map[string]int `json:"files"`
	// Queue is the files read in the current pass whose operation has not finished.
	Queue int `json:"queue"`
	// Retrying are files waiting for another attempt after a transient failure (or a
	// change while they were read), soonest first; RetryingTotal counts them all.
	Retrying      []retryReport  `json:"retrying,omitempty"`
	RetryingTotal int            `json:"retrying_total"`
	UploadRate    float64        `json:"upload_bytes_per_second"`
	Parked        []parkedReport `json:"parked,omitempty"`
	ParkedTotal   int            `json:"parked_total"`
	LastError     string         `json:"last_error,omitempty"`
	LastErrorAt   *time.Time     `json:"last_error_at,omitempty"`
	// DeletesBlocked is how many deletes the delete guard holds back until
	// `cfimgsync approve-deletes`; DeletesDelayed how many removed files' images wait for
	// delete_delay (delete_mode "delay"), the oldest gone since DelayedSince.
	DeletesBlocked int        `json:"deletes_blocked"`
	DeletesDelayed int        `json:"deletes_delayed"`
	DelayedSince   *time.Time `json:"delayed_since,omitempty"`
	// LastSync is the end of the last pass that finished without a folder-wide error
	// (daemon), or the newest upload recorded in the index (offline).
	LastSync *time.Time `json:"last_sync,omitempty"`
}

type retryReport struct {
	Path    string    `json:"path"`
	Attempt int       `json:"attempt"`
	Due     time.Time `json:"due"`
}

type parkedReport struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Class  string `json:"class,omitempty"`
}

// report builds the daemon's status. The index is read for counts and parked files; bbolt
// serves that read beside the daemon's writes.
func (b *board) report(st *store.Store) statusReport {
	b.mu.Lock()
	started := b.started
	r := statusReport{Daemon: true, PID: os.Getpid(), Version: version, Started: &started,
		Phase: b.phase, PhaseError: b.phaseErr, State: b.state, MetricsAddr: b.metricsAddr}
	folders := make([]*folderBoard, 0, len(b.order))
	for _, n := range b.order {
		folders = append(folders, b.folders[n])
	}
	b.mu.Unlock()
	now := time.Now()
	for _, f := range folders {
		fr := indexReport(st, f.name)
		retries := f.retries()
		fr.RetryingTotal = len(retries)
		for _, r := range retries[:min(len(retries), maxParkedShown)] {
			fr.Retrying = append(fr.Retrying, retryReport{Path: r.Path, Attempt: r.Attempt, Due: r.Due})
		}
		f.mu.Lock()
		fr.Path, fr.State = f.path, f.state
		fr.Queue = max(f.read-f.finished, 0)
		fr.UploadRate = f.rateLocked(now)
		fr.LastError = f.lastErr
		if !f.lastErrAt.IsZero() {
			t := f.lastErrAt
			fr.LastErrorAt = &t
		}
		fr.LastSync = nil
		if !f.lastSync.IsZero() {
			t := f.lastSync
			fr.LastSync = &t
		}
		f.mu.Unlock()
		r.Folders = append(r.Folders, fr)
	}
	return r
}

// indexReport reads one folder's counts and parked files from the index.
func indexReport(st *store.Store, name string) folderReport {
	fr := folderReport{Name: name, Files: map[string]int{}}
	var newest time.Time
	err := st.Folder(name).ForEach(func(r store.Record) error {
		fr.Files[r.State.String()]++
		if r.State == store.StateFailed {
			fr.ParkedTotal++
			if len(fr.Parked) < maxParkedShown {
				fr.Parked = append(fr.Parked, parkedReport{Path: r.Path, Reason: r.LastError, Class: r.ErrorClass})
			}
		}
		if r.UploadedAt.After(newest) {
			newest = r.UploadedAt
		}
		return nil
	})
	if err != nil {
		fr.LastError = fmt.Sprintf("read index: %v", err)
	}
	if m, ok, err := st.Folder(name).Meta(); err == nil && ok {
		fr.Path = m.Root
		fr.DeletesBlocked = m.DeletesBlocked
	}
	if gone, err := st.Folder(name).Gone(); err == nil {
		fr.DeletesDelayed = len(gone)
		for _, t := range gone {
			if fr.DelayedSince == nil || t.Before(*fr.DelayedSince) {
				fr.DelayedSince = &t
			}
		}
	}
	if !newest.IsZero() {
		fr.LastSync = &newest
	}
	return fr
}

// socketPath is the status socket of the daemon using the index at state: next to it, so
// that whoever can read the index can ask the daemon, and nobody else.
func socketPath(state string) string { return state + ".sock" }

// statusServer answers `status` and `manifest` on the unix socket.
type statusServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenStatus creates the socket with owner-only permissions. A leftover socket from a
// daemon that died is removed: the caller holds the index lock, so no other daemon can be
// serving it.
func listenStatus(path string, b *board, st *store.Store, logger *slog.Logger) (*statusServer, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.report(st))
	})
	mux.HandleFunc("POST /approve-deletes", handleApprove(b, st))
	mux.HandleFunc("POST /verify", handleVerify(b))
	mux.HandleFunc("GET /ls", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := listFolders(w, st, r.URL.Query().Get("folder"), true); err != nil {
			logger.Warn("ls over the status socket", "err", err)
		}
	})
	mux.HandleFunc("GET /manifest", func(w http.ResponseWriter, r *http.Request) {
		format := r.URL.Query().Get("format")
		ents, err := manifestEntries(st, r.URL.Query().Get("folder"))
		var ue usageError
		if errors.As(err, &ue) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := encodeManifest(w, ents, format); err != nil {
			logger.Warn("manifest over the status socket", "err", err)
		}
	})
	return &statusServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}}, nil
}

func (s *statusServer) serve(ctx context.Context) error {
	return serveUntil(ctx, s.srv, s.ln)
}

// serveUntil serves until ctx ends, then shuts down; a requested stop is not an error.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

// socketClient is an HTTP client that dials the daemon's socket.
func socketClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
}

// askDaemon GETs path from the daemon on the socket; the error says why it did not answer.
func askDaemon(ctx context.Context, socket, path string) (*http.Response, error) {
	c := socketClient(socket, 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://cfimgsync"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &daemonAnswerError{status: resp.StatusCode, msg: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

// postDaemon asks the daemon on socket to act (POST path) and decodes its JSON answer
// into out. A refusal comes back as *daemonAnswerError.
func postDaemon(ctx context.Context, socket, path string, timeout time.Duration, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://cfimgsync"+path, nil)
	if err != nil {
		return err
	}
	resp, err := socketClient(socket, timeout).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &daemonAnswerError{status: resp.StatusCode, msg: strings.TrimSpace(string(b))}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the daemon's answer on %s: %w", socket, err)
	}
	return nil
}

// daemonAnswerError is a refusal from a daemon that did answer: falling back to the index
// would only meet its lock.
type daemonAnswerError struct {
	status int
	msg    string
}

func (e *daemonAnswerError) Error() string {
	if e.status == http.StatusNotFound {
		return e.msg
	}
	return fmt.Sprintf("the daemon answered %d: %s", e.status, e.msg)
}

// statusFromDaemonOrIndex asks the daemon and falls back to reading the index.
func statusFromDaemonOrIndex(ctx context.Context, state string) (statusReport, error) {
	socket := socketPath(state)
	resp, askErr := askDaemon(ctx, socket, "/status")
	if askErr == nil {
		defer resp.Body.Close()
		var r statusReport
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return r, fmt.Errorf("read status from %s: %w", socket, err)
		}
		return r, nil
	}
	st, err := openIndexReadOnly(state, askErr)
	if err != nil {
		return statusReport{}, err
	}
	defer st.Close()
	r := statusReport{Phase: folderNotRunning, State: state}
	names, err := st.Folders()
	if err != nil {
		return r, fmt.Errorf("read index: %w", err)
	}
	for _, n := range names {
		fr := indexReport(st, n)
		fr.State = folderNotRunning
		r.Folders = append(r.Folders, fr)
	}
	return r, nil
}

// openIndexReadOnly opens the index for offline reading without waiting on its lock: a
// daemon holds it for as long as it runs, and its socket (askErr) did not answer.
func openIndexReadOnly(state string, askErr error) (*store.Store, error) {
	if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no index at %s: nothing has been synced with this state file (and no daemon answered on %s)", state, socketPath(state))
	}
	st, err := store.Open(state, store.Options{Timeout: 200 * time.Millisecond, ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("a daemon holds the index %s but its socket %s did not answer (%v); is it stuck? see its log",
			state, socketPath(state), askErr)
	}
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	return st, nil
}

func (c cli) status(ctx context.Context, args []string) error {
	fs := newFlagSet("status", c.stderr)
	configPath := fs.String("config", "", "config file (its state setting names the index)")
	state := fs.String("state", "", "index file (default: from --config, else $CFIMGSYNC_STATE, else from "+defaultConfigPath+" if readable, else the XDG state dir)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := statePathFor(*configPath, *state)
	if err != nil {
		return err
	}
	r, err := statusFromDaemonOrIndex(ctx, path)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printStatus(c.stdout, r)
	return nil
}

// statePathFor picks the index: --state, else the config's, else $CFIMGSYNC_STATE, else
// the service's config if this user may read it (so `sudo cfimgsync status` finds the
// service's index), else the user's default.
func statePathFor(configPath, state string) (string, error) {
	if state != "" {
		return state, nil
	}
	if configPath == "" && os.Getenv("CFIMGSYNC_STATE") == "" {
		if f, err := os.Open(defaultConfigPath); err == nil {
			f.Close()
			configPath = defaultConfigPath
		}
	}
	if configPath != "" {
		cfg, err := loadConfig(configPath, os.Getenv)
		if err != nil {
			return "", err
		}
		return cfg.state, nil
	}
	return defaultStatePath(), nil
}

func printStatus(w io.Writer, r statusReport) {
	if r.Daemon {
		fmt.Fprintf(w, "daemon: %s (pid %d, version %s", r.Phase, r.PID, r.Version)
		if r.Started != nil {
			fmt.Fprintf(w, ", up %s", time.Since(*r.Started).Round(time.Second))
		}
		fmt.Fprintln(w, ")")
		if r.PhaseError != "" {
			fmt.Fprintf(w, "  %s\n", r.PhaseError)
		}
	} else {
		fmt.Fprintln(w, "daemon: not running (read from the index)")
	}
	fmt.Fprintf(w, "index:  %s\n", r.State)
	if r.MetricsAddr != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", r.MetricsAddr)
	}
	for _, f := range r.Folders {
		fmt.Fprintf(w, "\nfolder %s: %s\n  path:    %s\n", f.Name, f.State, f.Path)
		states := make([]string, 0, len(f.Files))
		for s := range f.Files {
			states = append(states, s)
		}
		sort.Strings(states)
		var counts []string
		for _, s := range states {
			counts = append(counts, fmt.Sprintf("%d %s", f.Files[s], s))
		}
		if len(counts) == 0 {
			counts = []string{"none"}
		}
		fmt.Fprintf(w, "  files:   %s\n", strings.Join(counts, ", "))
		if r.Daemon {
			fmt.Fprintf(w, "  queue:   %d\n  rate:    %s/s\n", f.Queue, humanBytes(int64(f.UploadRate)))
			if f.RetryingTotal > 0 {
				fmt.Fprintf(w, "  retrying (%d):\n", f.RetryingTotal)
				for _, rt := range f.Retrying {
					fmt.Fprintf(w, "    %s: attempt %d, next in %s\n", shown(rt.Path), rt.Attempt+1, max(time.Until(rt.Due), 0).Round(time.Second))
				}
			}
		}
		if f.LastSync != nil {
			label := "last sync"
			if !r.Daemon {
				label = "last upload"
			}
			fmt.Fprintf(w, "  %s: %s (%s ago)\n", label, f.LastSync.Local().Format(time.RFC3339), time.Since(*f.LastSync).Round(time.Second))
		}
		if f.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", f.LastError)
		}
		if f.DeletesBlocked > 0 {
			fmt.Fprintf(w, "  deletes held back: %d, over the delete guard's limit; if the files were removed on purpose, run `cfimgsync approve-deletes --folder %s`\n",
				f.DeletesBlocked, f.Name)
		}
		if f.DeletesDelayed > 0 {
			fmt.Fprintf(w, "  deletes delayed: %d removed files keep their images until delete_delay has passed", f.DeletesDelayed)
			if f.DelayedSince != nil {
				fmt.Fprintf(w, " (the first was removed %s)", f.DelayedSince.Local().Format(time.RFC3339))
			}
			fmt.Fprintln(w)
		}
		if f.ParkedTotal > 0 {
			fmt.Fprintf(w, "  parked (%d, retried when the file changes):\n", f.ParkedTotal)
			for _, p := range f.Parked {
				fmt.Fprintf(w, "    %s: %s\n", shown(p.Path), shown(p.Reason))
			}
			if f.ParkedTotal > len(f.Parked) {
				fmt.Fprintf(w, "    ... and %d more (cfimgsync ls)\n", f.ParkedTotal-len(f.Parked))
			}
		}
	}
}
