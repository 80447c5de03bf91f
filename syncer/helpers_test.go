package syncer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
)

var _ Remote = (*batchapi.Client)(nil)

// testOwner is the owner tag of the test syncers.
const testOwner = "cfimgsync:test:default"

// env is one test's world: an emulator on loopback, a client, an index file and a folder.
type env struct {
	t      testing.TB
	srv    *emulator.Server
	em     *emulator.Emulator
	client *batchapi.Client
	st     *store.Store
	root   string
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	srv := emulator.NewServer(emulator.Options{TokenRate: -1, GlobalBudget: -1})
	t.Cleanup(srv.Close)
	// Our own transport, so its idle connections can be closed before the server: a
	// connection dialed but never used would hold the server's graceful Close for 5 s.
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := batchapi.New(batchapi.Config{
		HTTPClient:     &http.Client{Transport: tr},
		AccountID:      "023e105f4ecef8ad9ca31a8372d0c353",
		APIToken:       "emulator-api-token",
		APIURL:         srv.APIURL(),
		BatchURL:       srv.BatchURL(),
		TokenRate:      100000,
		TokenBurst:     100,
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  5 * time.Millisecond,
		MaxRetryWait:   5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "folder")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil {
			t.Errorf("index check: %v", err)
		}
		st.Close()
	})
	return &env{t: t, srv: srv, em: srv.Emulator, client: client, st: st, root: root}
}

// config is the tests' base configuration; mod adjusts it.
func (e *env) config(mod ...func(*Config)) Config {
	cfg := Config{
		Root:         e.root,
		OwnerTag:     testOwner,
		AccountID:    "023e105f4ecef8ad9ca31a8372d0c353",
		Concurrency:  4,
		RetryBackoff: 20 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// syncer returns a fresh Syncer on the env's index, as a restarted daemon would have.
func (e *env) syncer(mod ...func(*Config)) *Syncer {
	e.t.Helper()
	return e.syncerWith(e.client, mod...)
}

func (e *env) syncerWith(r Remote, mod ...func(*Config)) *Syncer {
	e.t.Helper()
	s, err := New(e.config(mod...), e.st.Folder("default"), r)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// syncOnce runs a full pass with a fresh Syncer and fails the test on a pass error.
func (e *env) syncOnce(mod ...func(*Config)) Summary {
	e.t.Helper()
	sum, err := e.syncer(mod...).SyncOnce(context.Background())
	if err != nil {
		e.t.Fatalf("SyncOnce: %v", err)
	}
	return sum
}

func (e *env) abs(rel string) string { return filepath.Join(e.root, filepath.FromSlash(rel)) }

func (e *env) write(rel string, data []byte) {
	e.t.Helper()
	p := e.abs(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) remove(rel string) {
	e.t.Helper()
	if err := os.RemoveAll(e.abs(rel)); err != nil {
		e.t.Fatal(err)
	}
}

// wantImage checks that id holds content uploaded from path by us.
func (e *env) wantImage(id, path string, content []byte) {
	e.t.Helper()
	img, ok := e.em.Image(id)
	if !ok {
		e.t.Fatalf("image %q missing", id)
	}
	got, _ := e.em.Content(id)
	if !bytes.Equal(got, content) {
		e.t.Fatalf("image %q: content differs (%d bytes, want %d)", id, len(got), len(content))
	}
	if img.Creator != testOwner {
		e.t.Fatalf("image %q: creator %q", id, img.Creator)
	}
	var meta map[string]any
	if err := json.Unmarshal(img.Meta, &meta); err != nil {
		e.t.Fatalf("image %q: meta %s: %v", id, img.Meta, err)
	}
	if meta["path"] != path || meta["sha256"] != sha(content) || meta["size"] != float64(len(content)) {
		e.t.Fatalf("image %q: meta %s; want path %q, sha256 %s, size %d", id, img.Meta, path, sha(content), len(content))
	}
}

func (e *env) wantNoImage(id string) {
	e.t.Helper()
	if _, ok := e.em.Image(id); ok {
		e.t.Fatalf("image %q exists", id)
	}
}

func (e *env) imageCount() int { return len(e.em.Images()) }

func (e *env) record(rel string) (store.Record, bool) {
	e.t.Helper()
	r, ok, err := e.st.Folder("default").Get(rel)
	if err != nil {
		e.t.Fatal(err)
	}
	return r, ok
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pngBytes makes a small valid PNG whose content depends on seed.
func pngBytes(seed int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + i*7)
	}
	img.Set(0, 0, color.NRGBA{R: byte(seed), G: byte(seed >> 8), B: byte(seed >> 16), A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// corpus returns the shared test corpus directory, or skips the test.
func corpus(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "corpus", sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("corpus %s not available: %v", dir, err)
	}
	return dir
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// settled polls diff until it returns "" or the deadline passes, then fails with the last
// difference.
func settled(t *testing.T, what string, diff func() string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for last = diff(); last != ""; last = diff() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not settle: %s", what, last)
		}
		<-tick.C
	}
}
