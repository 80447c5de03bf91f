package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
)

// chaosSeeds is how many seeds TestChaos runs per ID scheme unless CFIMGSYNC_SEEDS says
// otherwise: few enough that the package's tests stay well under 30 s under -race.
const chaosSeeds = 4

// chaosTotals counts what the randomized test did, for its log line and docs/reliability.md.
type chaosTotals struct {
	seeds, fileOps, passes, crashes, faults, listings, daemons atomic.Int64
	byFault                                                    sync.Map // kind → *atomic.Int64
}

func (c *chaosTotals) fault(kind string) {
	c.faults.Add(1)
	v, _ := c.byFault.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// TestChaos drives many seeds of random file operations, random API faults (5xx, 429,
// answers dropped after the change was made, expired batch tokens) and crashes at random
// points, for each ID scheme. A crash stops the remote side at a random call (that call
// reaches the API, its answer is lost, every later call fails) and cancels the pass; the
// Syncer is then abandoned without any cleanup and a new one is made on the same index,
// as a restarted daemon would. After the last round a clean pass must leave: our images ==
// the folder's files (by ID and hash), no two images of one path and content, the index
// naming exactly those images, and no intent left.
//
// CFIMGSYNC_SEEDS=500 go test -race -run TestChaos -v ./syncer/ runs 500 seeds per scheme.
func TestChaos(t *testing.T) {
	seeds := chaosSeeds
	if v := os.Getenv("CFIMGSYNC_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CFIMGSYNC_SEEDS=%q: want a positive number", v)
		}
		seeds = n
	}
	var tot chaosTotals
	t.Run("seeds", func(t *testing.T) {
		for _, scheme := range []string{"path", "versioned", "auto"} {
			for seed := range uint64(seeds) {
				t.Run(fmt.Sprintf("%s/%d", scheme, seed), func(t *testing.T) {
					t.Parallel()
					chaosSeed(t, scheme, seed, &tot)
				})
			}
		}
	})
	var kinds []string
	tot.byFault.Range(func(k, v any) bool {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("chaos: %d seeds (3 ID schemes), %d file operations, %d passes (%d by the daemon loop), %d faults answered (%v), %d crashes, %d listings",
		tot.seeds.Load(), tot.fileOps.Load(), tot.passes.Load(), tot.daemons.Load(), tot.faults.Load(), kinds, tot.crashes.Load(), tot.listings.Load())
}

func chaosSeed(t *testing.T, scheme string, seed uint64, tot *chaosTotals) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(seed, uint64(len(scheme))))
	m := &model{t: t, e: e, rng: rng, next: 1000}
	client := faultCountingClient(t, e, tot)
	// The syncers' log is kept and shown only if the seed fails.
	var logBuf syncBuffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the seed:\n%s", logBuf.String())
		}
	})
	mod := func(c *Config) {
		c.MaxDelete, c.IDScheme, c.Logger = 1000, scheme, logger
	}

	rounds := 3 + rng.IntN(4)
	for range rounds {
		for range 2 + rng.IntN(7) {
			m.step()
			tot.fileOps.Add(1)
		}
		injectFaults(e, rng)
		cr := &crashingRemote{Remote: client, at: -1}
		ctx, cancel := context.WithCancel(t.Context())
		if rng.IntN(3) > 0 {
			cr.at = int64(rng.IntN(12)) // a pass here makes a few to a few dozen calls
			cr.cancel = cancel
		}
		// Errors are expected; the state must stay recoverable. A crashed Syncer is
		// dropped as it is.
		daemon := rng.IntN(3) == 0
		logger.Info("chaos: pass", "crash_at", cr.at, "daemon", daemon)
		m.logFiles(logger)
		if daemon {
			// The daemon loop in-process: stopped after its first pass, or dead at the
			// crash, and then dropped like the one-shot Syncer.
			runUntilFirstPass(ctx, e.syncerWith(cr, mod), cancel)
			tot.daemons.Add(1)
		} else {
			e.syncerWith(cr, mod).SyncOnce(ctx)
		}
		cancel()
		tot.passes.Add(1)
		if cr.crashed.Load() {
			tot.crashes.Add(1)
		}
	}
	// Queued faults not used up yet still hit the last pass; it must converge regardless.
	e.em.SetFailRate("", 0)
	if _, err := e.syncerWith(client, mod).SyncOnce(t.Context()); err != nil {
		t.Fatalf("clean pass: %v", err)
	}
	tot.passes.Add(1)
	tot.listings.Add(int64(e.em.Calls()["list"]))
	if diff := mirrorMismatch(e, m, scheme); diff != "" {
		t.Fatal(diff)
	}
	tot.seeds.Add(1)
}

// runUntilFirstPass runs s's daemon loop until its first pass ends or ctx ends (a crash
// cancels it), then stops it and waits for Run to return.
func runUntilFirstPass(ctx context.Context, s *Syncer, cancel context.CancelFunc) {
	passed := make(chan struct{}, 1)
	s.cfg.Progress = func(ev Event) {
		if ev.Kind == EventDone {
			select {
			case passed <- struct{}{}:
			default:
			}
		}
	}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, nil) }()
	select {
	case <-passed:
	case <-ctx.Done():
	case <-ran:
		return
	}
	cancel()
	<-ran
}

// injectFaults arms a random mix of the emulator's faults for the next pass.
func injectFaults(e *env, rng *rand.Rand) {
	routes := []string{"upload", "get", "update", "delete", "list", ""}
	e.em.SetFailRate("", []float64{0, 0, 0.05, 0.2}[rng.IntN(4)])
	if rng.IntN(2) == 0 {
		e.em.FailNext(routes[rng.IntN(len(routes))], 1+rng.IntN(4), http.StatusTooManyRequests)
	}
	if rng.IntN(2) == 0 {
		e.em.DropResponses(routes[rng.IntN(len(routes))], 1+rng.IntN(3))
	}
	if rng.IntN(3) == 0 {
		e.em.ExpireTokens()
	}
}

// faultCountingClient is a client on e's emulator whose transport counts the faults the
// API answered with: 5xx, 429, 401 (an expired batch token) and connections closed
// without an answer.
func faultCountingClient(t *testing.T, e *env, tot *chaosTotals) *batchapi.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := batchapi.New(batchapi.Config{
		HTTPClient:     &http.Client{Transport: countingTransport{tr, tot}},
		AccountID:      "023e105f4ecef8ad9ca31a8372d0c353",
		APIToken:       "emulator-api-token",
		APIURL:         e.srv.APIURL(),
		BatchURL:       e.srv.BatchURL(),
		TokenRate:      100000,
		TokenBurst:     100,
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  5 * time.Millisecond,
		MaxRetryWait:   5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

type countingTransport struct {
	rt  http.RoundTripper
	tot *chaosTotals
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	switch {
	case err != nil && r.Context().Err() == nil:
		c.tot.fault("dropped")
	case err != nil:
	case resp.StatusCode >= 500:
		c.tot.fault("5xx")
	case resp.StatusCode == http.StatusTooManyRequests:
		c.tot.fault("429")
	case resp.StatusCode == http.StatusUnauthorized:
		c.tot.fault("expired-token")
	}
	return resp, err
}

// errCrashed is what every call after a simulated crash gets.
var errCrashed = fmt.Errorf("simulated crash: %w", context.Canceled)

// crashingRemote forwards calls until call number at (counting from 0): that one reaches
// the API but its answer is lost, the pass's context is cancelled, and every later call
// fails without reaching the API, as if the process had died at that instant. at < 0
// never crashes.
type crashingRemote struct {
	Remote
	at      int64
	cancel  context.CancelFunc
	n       atomic.Int64
	crashed atomic.Bool
}

// enter reports whether the call may reach the API, and whether its answer is then lost.
func (c *crashingRemote) enter() (forward, lost bool) {
	if c.at < 0 {
		return true, false
	}
	n := c.n.Add(1) - 1
	switch {
	case n < c.at:
		return true, false
	case n == c.at:
		return true, true
	}
	return false, true
}

func (c *crashingRemote) die() {
	c.crashed.Store(true)
	c.cancel()
}

func (c *crashingRemote) Upload(ctx context.Context, req batchapi.UploadRequest) (batchapi.Image, error) {
	fwd, lost := c.enter()
	if !fwd {
		return batchapi.Image{}, errCrashed
	}
	img, err := c.Remote.Upload(ctx, req)
	if lost {
		c.die()
		return batchapi.Image{}, errCrashed
	}
	return img, err
}

func (c *crashingRemote) Get(ctx context.Context, id string) (batchapi.Image, error) {
	fwd, lost := c.enter()
	if !fwd {
		return batchapi.Image{}, errCrashed
	}
	img, err := c.Remote.Get(ctx, id)
	if lost {
		c.die()
		return batchapi.Image{}, errCrashed
	}
	return img, err
}

func (c *crashingRemote) Update(ctx context.Context, id string, req batchapi.UpdateRequest) (batchapi.Image, error) {
	fwd, lost := c.enter()
	if !fwd {
		return batchapi.Image{}, errCrashed
	}
	img, err := c.Remote.Update(ctx, id, req)
	if lost {
		c.die()
		return batchapi.Image{}, errCrashed
	}
	return img, err
}

func (c *crashingRemote) Delete(ctx context.Context, id string) error {
	fwd, lost := c.enter()
	if !fwd {
		return errCrashed
	}
	err := c.Remote.Delete(ctx, id)
	if lost {
		c.die()
		return errCrashed
	}
	return err
}

func (c *crashingRemote) List(ctx context.Context, opts batchapi.ListOptions) iter.Seq2[batchapi.Image, error] {
	return func(yield func(batchapi.Image, error) bool) {
		fwd, lost := c.enter()
		if !fwd {
			yield(batchapi.Image{}, errCrashed)
			return
		}
		if lost {
			// The listing was read and thrown away.
			for range c.Remote.List(ctx, opts) {
			}
			c.die()
			yield(batchapi.Image{}, errCrashed)
			return
		}
		for img, err := range c.Remote.List(ctx, opts) {
			if !yield(img, err) {
				return
			}
		}
	}
}

// mirrorMismatch says how the remote side and the index differ from the folder under the
// ID scheme ("" if they match exactly).
func mirrorMismatch(e *env, m *model, schemeName string) string {
	scheme, err := NewIDScheme(schemeName, "")
	if err != nil {
		return err.Error()
	}
	files := m.files()
	idx := e.st.Folder("default")
	recs := make(map[string]store.Record)
	if err := idx.ForEach(func(r store.Record) error { recs[r.Path] = r; return nil }); err != nil {
		return err.Error()
	}
	if ins, err := idx.Intents(); err != nil || len(ins) != 0 {
		return fmt.Sprintf("intents left: %+v %v", ins, err)
	}
	images := e.em.Images()
	byID := make(map[string]int, len(images))
	seen := make(map[string]string) // path + hash → ID
	for i, img := range images {
		byID[img.ID] = i
		if img.Creator != testOwner {
			return fmt.Sprintf("image %s has creator %q", img.ID, img.Creator)
		}
		var meta map[string]any
		if err := json.Unmarshal(img.Meta, &meta); err != nil {
			return fmt.Sprintf("image %s: meta %s", img.ID, img.Meta)
		}
		k := pathKey(metaString(meta, metaPath), img.SHA256)
		if other, dup := seen[k]; dup {
			return fmt.Sprintf("duplicate: images %s and %s both hold %s", other, img.ID, metaString(meta, metaPath))
		}
		seen[k] = img.ID
		if metaString(meta, metaSHA256) != img.SHA256 {
			return fmt.Sprintf("image %s: meta sha256 %s, content %s", img.ID, metaString(meta, metaSHA256), img.SHA256)
		}
	}
	if len(images) != len(files) || len(recs) != len(files) {
		var ids []string
		for _, img := range images {
			ids = append(ids, img.ID)
		}
		return fmt.Sprintf("%d images, %d records, %d files\n  images %v\n  files  %v", len(images), len(recs), len(files), ids, files)
	}
	for _, rel := range files {
		b, err := os.ReadFile(e.abs(rel))
		if err != nil {
			return err.Error()
		}
		sum := sha(b)
		rec, ok := recs[rel]
		switch {
		case !ok:
			return rel + ": no record"
		case rec.State != store.StateSynced || rec.SHA256 != sum:
			return fmt.Sprintf("%s: record %s (%s: %s) sha %s; file sha %s", rel, rec.State, rec.ErrorClass, rec.LastError, rec.SHA256, sum)
		}
		i, ok := byID[rec.ImageID]
		if !ok {
			return fmt.Sprintf("%s: image %q of the record is missing", rel, rec.ImageID)
		}
		img := images[i]
		var meta map[string]any
		json.Unmarshal(img.Meta, &meta)
		if img.SHA256 != sum || metaString(meta, metaPath) != rel {
			return fmt.Sprintf("%s: image %s holds %s of %q", rel, img.ID, img.SHA256, metaString(meta, metaPath))
		}
		want, err := scheme.ID(rel, sum)
		if err != nil {
			return err.Error()
		}
		if want != "" && want != img.ID || want == "" && img.Custom {
			return fmt.Sprintf("%s: image ID %s, scheme %s wants %q", rel, img.ID, schemeName, want)
		}
	}
	return ""
}

// logFiles logs the folder's files and their hashes, so a failing seed's log shows what
// each pass saw.
func (m *model) logFiles(l *slog.Logger) {
	for _, rel := range m.files() {
		b, _ := os.ReadFile(m.e.abs(rel))
		l.Info("chaos: file", "path", rel, "sha", sha(b)[:8])
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
