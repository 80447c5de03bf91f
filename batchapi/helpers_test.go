package batchapi_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// Credentials distinctive enough to grep for in errors and logs.
const (
	testAccount  = "0123456789abcdef0123456789abcdef"
	testAPIToken = "api-token-Zq7xW3kP9vT2"
)

// env is one emulator on loopback and a client pointed at it.
type env struct {
	srv    *emulator.Server
	emu    *emulator.Emulator
	client *batchapi.Client
	logs   *syncBuffer
	seen   *tokenRecorder // every bearer token the client sent
}

// newEnv starts an emulator and a client. The client's waits are scaled down (the emulator
// sends Retry-After in whole seconds) so retry tests run in milliseconds.
func newEnv(t testing.TB, opts emulator.Options, cfg batchapi.Config) *env {
	t.Helper()
	if opts.AccountID == "" {
		opts.AccountID = testAccount
	}
	if opts.APIToken == "" {
		opts.APIToken = testAPIToken
	}
	srv := emulator.NewServer(opts)
	t.Cleanup(srv.Close)

	logs := &syncBuffer{}
	rec := &tokenRecorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	if cfg.AccountID == "" {
		cfg.AccountID = opts.AccountID
	}
	if cfg.APIToken == "" {
		cfg.APIToken = batchapi.Secret(opts.APIToken)
	}
	cfg.APIURL = srv.APIURL()
	cfg.BatchURL = srv.BatchURL()
	if cfg.RetryBaseDelay == 0 {
		cfg.RetryBaseDelay = time.Millisecond
	}
	if cfg.RetryMaxDelay == 0 {
		cfg.RetryMaxDelay = 20 * time.Millisecond
	}
	if cfg.MaxRetryWait == 0 {
		cfg.MaxRetryWait = 20 * time.Millisecond
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: rec}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := batchapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, emu: srv.Emulator, client: c, logs: logs, seen: rec}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tokenRecorder remembers every bearer token sent, so tests can check that none of them
// shows up anywhere it should not.
type tokenRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	toks map[string]bool
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		r.mu.Lock()
		if r.toks == nil {
			r.toks = map[string]bool{}
		}
		r.toks[tok] = true
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *tokenRecorder) tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for t := range r.toks {
		out = append(out, t)
	}
	return out
}

// pngBytes returns a small valid PNG whose pixels depend on seed, so every seed gives
// different content.
func pngBytes(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := range 64 {
		img.Set(i%8, i/8, color.NRGBA{R: byte(seed), G: byte(seed >> 8), B: byte(i), A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func uploadReq(t testing.TB, id string, seed int) batchapi.UploadRequest {
	b := pngBytes(t, seed)
	return batchapi.UploadRequest{
		ID:       id,
		Content:  bytes.NewReader(b),
		Size:     int64(len(b)),
		Metadata: map[string]any{"seed": seed},
		Creator:  "cfimgsync:test",
	}
}

// waitFor polls cond until it holds or the deadline passes. It reports with Errorf, so it
// may run on any goroutine.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Errorf("timed out waiting for %s", what)
			return
		case <-tick.C:
		}
	}
}

func mustNotContainSecrets(t testing.TB, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a token: %s", where, text)
		}
	}
}

func fmtStats(s batchapi.Stats) string { return fmt.Sprintf("%+v", s) }
