package batchapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

func TestImageLifecycle(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	const id = "shop/sub dir/boots?#%.png" // slash, space and URL metacharacters

	req := uploadReq(t, id, 1)
	req.Filename = "boots.png"
	img, err := e.client.Upload(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id || img.Filename != "boots.png" || img.Creator != "cfimgsync:test" || img.Meta["seed"] != float64(1) {
		t.Errorf("upload returned %+v", img)
	}
	if len(img.Variants) == 0 || img.Uploaded.IsZero() {
		t.Errorf("upload result lacks variants or upload time: %+v", img)
	}
	stored, ok := e.emu.Image(id)
	if !ok {
		t.Fatalf("emulator has no image %q; has %v", id, e.emu.Images())
	}
	sum := sha256.Sum256(pngBytes(t, 1))
	if stored.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stored content differs from what was uploaded")
	}

	got, err := e.client.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Meta["seed"] != float64(1) {
		t.Errorf("get returned %+v", got)
	}

	creator := "someone-else"
	upd, err := e.client.Update(ctx, id, batchapi.UpdateRequest{Metadata: map[string]any{"v": 2}, Creator: &creator})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Meta["v"] != float64(2) || upd.Meta["seed"] != nil || upd.Creator != creator {
		t.Errorf("update returned %+v (metadata must be replaced, not merged)", upd)
	}
	// A nil Metadata leaves it alone.
	if upd, err = e.client.Update(ctx, id, batchapi.UpdateRequest{}); err != nil || upd.Meta["v"] != float64(2) {
		t.Errorf("empty update: %+v, %v", upd, err)
	}

	if err := e.client.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.emu.Image(id); ok {
		t.Error("image still stored after delete")
	}
	_, err = e.client.Get(ctx, id)
	if !batchapi.IsNotFound(err) || !batchapi.IsPermanent(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if err := e.client.Delete(ctx, id); !batchapi.IsNotFound(err) {
		t.Errorf("second delete: %v, want not found", err)
	}
	if _, err := e.client.Update(ctx, id, batchapi.UpdateRequest{Creator: &creator}); !batchapi.IsNotFound(err) {
		t.Errorf("update of a missing image: %v, want not found", err)
	}

	s := e.client.Stats()
	if s.Requests[batchapi.OpUpload].Status2xx != 1 || s.Requests[batchapi.OpGet].Status4xx != 1 || s.TokensMinted != 1 {
		t.Errorf("stats: %s", fmtStats(s))
	}
	// Everything went to the batch host except the one mint.
	if c := e.emu.Calls(); c[emulator.CallsGlobal] != 1 {
		t.Errorf("global host calls = %d, want 1 (the token mint): %v", c[emulator.CallsGlobal], c)
	}
}

func TestIDOnTheWireIsOneSegment(t *testing.T) {
	var uris []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.Method+" "+r.RequestURI)
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/batch_token") {
			fmt.Fprintf(w, `{"success":true,"errors":[],"messages":[],"result":{"token":"t","expiresAt":%q}}`,
				time.Now().Add(time.Hour).Format(time.RFC3339Nano))
			return
		}
		fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}`)
	}))
	defer srv.Close()
	c, err := batchapi.New(batchapi.Config{AccountID: "acct", APIToken: "tok", APIURL: srv.URL + "/client/v4", BatchURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.Get(ctx, "a/b c/ü.png"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "x/../y"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".", ".."} {
		if err := c.Delete(ctx, bad); err == nil || !batchapi.IsPermanent(err) {
			t.Errorf("Delete(%q) = %v, want a permanent local error", bad, err)
		}
	}
	want := []string{
		"GET /client/v4/accounts/acct/images/v1/batch_token",
		"GET /images/v1/a%2Fb%20c%2F%C3%BC.png",
		"DELETE /images/v1/x%2F..%2Fy",
	}
	if !slices.Equal(uris, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(uris, "\n"), strings.Join(want, "\n"))
	}
}

func TestUploadDuplicateCustomID(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	if _, err := e.client.Upload(ctx, uploadReq(t, "dup.png", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Upload(ctx, uploadReq(t, "dup.png", 2))
	if !batchapi.IsAlreadyExists(err) || batchapi.IsTransient(err) {
		t.Fatalf("second upload: %v, want already exists", err)
	}
	if !strings.Contains(err.Error(), `batchapi: upload "dup.png": 409 Conflict: 5409 Resource already exists`) {
		t.Errorf("error reads %q", err)
	}
	if n := e.emu.Calls()[emulator.RouteUpload]; n != 2 {
		t.Errorf("upload calls = %d, want 2 (a 409 is not retried)", n)
	}
}

func TestUploadAutoID(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	img, err := e.client.Upload(t.Context(), uploadReq(t, "", 3))
	if err != nil {
		t.Fatal(err)
	}
	if img.ID == "" {
		t.Fatal("no generated ID")
	}
	if st, ok := e.emu.Image(img.ID); !ok || st.Custom {
		t.Errorf("emulator image %+v, %v", st, ok)
	}
}

func TestPermanentRefusals(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	text := []byte("this is not an image at all, just some text")
	tests := []struct {
		name   string
		req    batchapi.UploadRequest
		status int
	}{
		{"not an image", batchapi.UploadRequest{ID: "a.png", Content: bytes.NewReader(text), Size: int64(len(text))}, 415},
		{"invalid custom id", batchapi.UploadRequest{ID: "/leading.png", Content: bytes.NewReader(pngBytes(t, 1)), Size: int64(len(pngBytes(t, 1)))}, 400},
		{"signed with custom id", batchapi.UploadRequest{ID: "s.png", RequireSignedURLs: true, Content: bytes.NewReader(pngBytes(t, 1)), Size: int64(len(pngBytes(t, 1)))}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.emu.Calls()[emulator.RouteUpload]
			_, err := e.client.Upload(ctx, tt.req)
			var ae *batchapi.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.status {
				t.Fatalf("err = %v, want status %d", err, tt.status)
			}
			if !batchapi.IsPermanent(err) || batchapi.IsTransient(err) || batchapi.IsAuth(err) {
				t.Errorf("misclassified: %v", err)
			}
			if n := e.emu.Calls()[emulator.RouteUpload] - before; n != 1 {
				t.Errorf("sent %d times, want once", n)
			}
		})
	}
}

func TestOversizeUpload(t *testing.T) {
	e := newEnv(t, emulator.Options{MaxFileSize: 1 << 10}, batchapi.Config{})
	big := append(pngBytes(t, 1), make([]byte, 4<<10)...)
	_, err := e.client.Upload(t.Context(), batchapi.UploadRequest{ID: "big.png", Content: bytes.NewReader(big), Size: int64(len(big))})
	var ae *batchapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusRequestEntityTooLarge || !batchapi.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent 413", err)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	const n = 25
	for i := range n {
		req := uploadReq(t, fmt.Sprintf("list/%02d.png", i), i)
		if i%5 == 0 {
			req.Creator = "other"
		}
		if _, err := e.client.Upload(ctx, req); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[string]bool{}
	for img, err := range e.client.List(ctx, batchapi.ListOptions{PerPage: 10, SortOrder: "asc"}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[img.ID] {
			t.Errorf("%s listed twice", img.ID)
		}
		seen[img.ID] = true
	}
	if len(seen) != n {
		t.Errorf("listed %d images, want %d", len(seen), n)
	}
	if pages := e.emu.Calls()[emulator.RouteList]; pages != 3 {
		t.Errorf("list calls = %d, want 3 pages of 10", pages)
	}

	other := "other"
	count := 0
	for img, err := range e.client.List(ctx, batchapi.ListOptions{PerPage: 10, Creator: &other}) {
		if err != nil {
			t.Fatal(err)
		}
		if img.Creator != "other" {
			t.Errorf("creator filter let %q through (creator %q)", img.ID, img.Creator)
		}
		count++
	}
	if count != 5 {
		t.Errorf("creator filter gave %d images, want 5", count)
	}

	// Breaking out stops fetching further pages.
	e.emu.ResetCalls()
	for range e.client.List(ctx, batchapi.ListOptions{PerPage: 10}) {
		break
	}
	if pages := e.emu.Calls()[emulator.RouteList]; pages != 1 {
		t.Errorf("list calls after break = %d, want 1", pages)
	}

	// An error is yielded once and ends the iteration.
	e.emu.FailNext(emulator.RouteList, 100, http.StatusBadRequest)
	errs := 0
	for _, err := range e.client.List(ctx, batchapi.ListOptions{}) {
		if err == nil || !batchapi.IsPermanent(err) {
			t.Errorf("got %v, want a permanent error", err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("yielded %d errors, want 1", errs)
	}
}

func TestDirectUpload(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	du, err := e.client.DirectUpload(t.Context(), batchapi.DirectUploadRequest{
		ID: "drafts/one.png", Metadata: map[string]any{"k": "v"}, Expiry: time.Now().Add(time.Hour), Creator: "me",
	})
	if err != nil {
		t.Fatal(err)
	}
	if du.ID != "drafts/one.png" || !strings.HasPrefix(du.UploadURL, "http") {
		t.Errorf("direct upload = %+v", du)
	}
	img, err := e.client.Get(t.Context(), du.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Draft || img.Creator != "me" {
		t.Errorf("draft = %+v", img)
	}

	// The same ID again is taken; an expiry outside 2 min to 6 h is refused.
	_, err = e.client.DirectUpload(t.Context(), batchapi.DirectUploadRequest{ID: "drafts/one.png"})
	if !batchapi.IsAlreadyExists(err) {
		t.Errorf("repeated id: %v, want already exists", err)
	}
	_, err = e.client.DirectUpload(t.Context(), batchapi.DirectUploadRequest{Expiry: time.Now().Add(time.Minute)})
	var ae *batchapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !batchapi.IsPermanent(err) {
		t.Errorf("short expiry: %v, want a permanent 400", err)
	}
	// Without an ID it gets a generated one.
	du, err = e.client.DirectUpload(t.Context(), batchapi.DirectUploadRequest{})
	if err != nil || du.ID == "" || du.UploadURL == "" {
		t.Errorf("auto id direct upload: %+v, %v", du, err)
	}
}

func TestUpdateRefusals(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	if _, err := e.client.Upload(ctx, uploadReq(t, "custom.png", 1)); err != nil {
		t.Fatal(err)
	}
	signed := true
	_, err := e.client.Update(ctx, "custom.png", batchapi.UpdateRequest{RequireSignedURLs: &signed})
	var ae *batchapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !batchapi.IsPermanent(err) {
		t.Errorf("signed URLs on a custom id: %v, want a permanent 400", err)
	}
	if n := e.emu.Calls()[emulator.RouteUpdate]; n != 1 {
		t.Errorf("update sent %d times, want once", n)
	}
}

func TestBatchToken(t *testing.T) {
	e := newEnv(t, emulator.Options{TokenTTL: time.Hour}, batchapi.Config{})
	bt, err := e.client.BatchToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if bt.Token == "" || time.Until(bt.ExpiresAt) < 50*time.Minute || time.Until(bt.ExpiresAt) > 61*time.Minute {
		t.Errorf("token expires at %v", bt.ExpiresAt)
	}
	if s := fmt.Sprintf("%v %+v %s", bt, bt, bt.Token); strings.Contains(s, string(bt.Token)) {
		t.Errorf("token printed: %s", s)
	}
}

func TestBadAPIToken(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{APIToken: "wrong-token-Hh5Jk"})
	_, err := e.client.Get(t.Context(), "x.png")
	if !batchapi.IsAuth(err) || !batchapi.IsPermanent(err) {
		t.Fatalf("err = %v, want auth", err)
	}
	if !strings.Contains(err.Error(), `batchapi: get "x.png": get batch token: 403 Forbidden: 10000 Authentication error`) {
		t.Errorf("error does not say it failed minting: %v", err)
	}
	if n := e.emu.Calls()[emulator.RouteBatchToken] + e.emu.Calls()[emulator.CallsUnauthorized]; n != 1 {
		t.Errorf("tried %d times, want once: an auth failure on the global host is not retried", n)
	}
}

func TestTokenRefreshedAheadOfExpiry(t *testing.T) {
	// Tokens live 600 ms and are replaced 300 ms early; a run of 1.5 s needs several.
	e := newEnv(t, emulator.Options{TokenTTL: 600 * time.Millisecond}, batchapi.Config{BatchTokens: 2})
	ctx := t.Context()
	if _, err := e.client.Upload(ctx, uploadReq(t, "ttl.png", 1)); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	var calls, failures atomic.Int64
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(end) {
				calls.Add(1)
				if _, err := e.client.Get(ctx, "ttl.png"); err != nil {
					failures.Add(1)
					t.Errorf("get: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := e.client.Stats()
	if s.TokensMinted < 4 {
		t.Errorf("minted %d tokens over 1.5 s of 600 ms tokens on 2 slots, want at least 4", s.TokensMinted)
	}
	t.Logf("%d gets, %d tokens minted, %d refused by the server as unauthorized, %d auth refreshes",
		calls.Load(), s.TokensMinted, e.emu.Calls()[emulator.CallsUnauthorized], s.AuthRefreshes)
}

func TestExpiredTokensRefreshOnceUnderLoad(t *testing.T) {
	for _, bare := range []bool{false, true} {
		t.Run(fmt.Sprintf("bare=%v", bare), func(t *testing.T) {
			e := newEnv(t, emulator.Options{TokenTTL: time.Hour, BareBatchAuthErrors: bare}, batchapi.Config{})
			ctx := t.Context()
			if _, err := e.client.Upload(ctx, uploadReq(t, "a.png", 1)); err != nil {
				t.Fatal(err)
			}
			e.emu.ExpireTokens()
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					if _, err := e.client.Get(ctx, "a.png"); err != nil {
						t.Errorf("get %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			s := e.client.Stats()
			// 20 calls hit the dead token at once; their refreshes collapse into one mint.
			if s.TokensMinted != 2 || e.emu.Calls()[emulator.RouteBatchToken] != 2 {
				t.Errorf("minted %d (emulator saw %d), want 2: %s", s.TokensMinted, e.emu.Calls()[emulator.RouteBatchToken], fmtStats(s))
			}
			if s.AuthRefreshes != 1 {
				t.Errorf("auth refreshes = %d, want 1", s.AuthRefreshes)
			}
		})
	}
}

func TestRateLimitStormWithRetryAfter(t *testing.T) {
	var retries []time.Duration
	var mu sync.Mutex
	cfg := batchapi.Config{
		MaxRetryWait: 5 * time.Millisecond,
		OnRetry: func(op string, attempt int, err error, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, d)
			var ae *batchapi.APIError
			if op != batchapi.OpUpload || !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != time.Second {
				t.Errorf("OnRetry(%q, %d, %v)", op, attempt, err)
			}
		},
	}
	e := newEnv(t, emulator.Options{}, cfg)
	e.emu.FailNext(emulator.RouteUpload, 5, http.StatusTooManyRequests)
	if _, err := e.client.Upload(t.Context(), uploadReq(t, "storm.png", 1)); err != nil {
		t.Fatal(err)
	}
	if len(retries) != 5 {
		t.Errorf("%d retries, want 5", len(retries))
	}
	for _, d := range retries {
		if d != 5*time.Millisecond {
			t.Errorf("retry delay %v: Retry-After (1s) capped by MaxRetryWait should give 5ms", d)
		}
	}
	s := e.client.Stats()
	if s.Requests[batchapi.OpUpload].Status429 != 5 || s.Retries != 5 {
		t.Errorf("stats: %s", fmtStats(s))
	}

	// A storm longer than MaxAttempts ends in a transient error that says so.
	e.emu.FailNext(emulator.RouteUpload, 100, http.StatusTooManyRequests)
	_, err := e.client.Upload(t.Context(), uploadReq(t, "storm2.png", 2))
	if !batchapi.IsTransient(err) || !strings.Contains(err.Error(), "gave up after 8 attempts") {
		t.Errorf("err = %v", err)
	}
}

func TestServerErrorBursts(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 408} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t, emulator.Options{}, batchapi.Config{})
			e.emu.FailNext(emulator.RouteUpload, 3, status)
			if _, err := e.client.Upload(t.Context(), uploadReq(t, "burst.png", 1)); err != nil {
				t.Fatal(err)
			}
			if n := e.emu.Calls()[emulator.RouteUpload]; n != 4 {
				t.Errorf("upload calls = %d, want 4", n)
			}
		})
	}
}

func TestRandomFailuresUnderConcurrency(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{MaxAttempts: 12, BatchTokens: 2})
	e.emu.SetFailRate("", 0.2)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			id := fmt.Sprintf("rnd/%d.png", i)
			if _, err := e.client.Upload(ctx, uploadReq(t, id, i)); err != nil && !batchapi.IsAlreadyExists(err) {
				t.Errorf("upload %s: %v", id, err)
			}
			if _, err := e.client.Get(ctx, id); err != nil {
				t.Errorf("get %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if n := len(e.emu.Images()); n != 40 {
		t.Errorf("%d images stored, want 40", n)
	}
	if s := e.client.Stats(); s.Retries == 0 || s.Requests[batchapi.OpUpload].Status5xx == 0 {
		t.Errorf("a 20%% failure rate caused no retries: %s", fmtStats(s))
	}
}

func TestDroppedResponses(t *testing.T) {
	t.Run("custom id is retried and settles as already exists", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		ctx := t.Context()
		e.emu.DropResponses(emulator.RouteUpload, 1)
		req := uploadReq(t, "dropped.png", 7)
		_, err := e.client.Upload(ctx, req)
		if !batchapi.IsAlreadyExists(err) {
			t.Fatalf("err = %v, want already exists (the first attempt landed)", err)
		}
		// The caller settles it: GET and compare the hash it sent in the metadata.
		img, err := e.client.Get(ctx, "dropped.png")
		if err != nil || img.Meta["seed"] != float64(7) {
			t.Fatalf("settling get: %+v, %v", img, err)
		}
		if n := len(e.emu.Images()); n != 1 {
			t.Errorf("%d images, want 1", n)
		}
	})
	t.Run("auto id is not retried", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		e.emu.DropResponses(emulator.RouteUpload, 1)
		_, err := e.client.Upload(t.Context(), uploadReq(t, "", 8))
		if !errors.Is(err, batchapi.ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
		if batchapi.IsTransient(err) || batchapi.IsPermanent(err) {
			t.Errorf("an unknown outcome must be neither transient nor permanent")
		}
		if n := e.emu.Calls()[emulator.RouteUpload]; n != 1 {
			t.Errorf("upload sent %d times, want once", n)
		}
		if n := len(e.emu.Images()); n != 1 {
			t.Errorf("%d images, want exactly 1", n)
		}
		if s := e.client.Stats(); s.OutcomeUnknown != 1 {
			t.Errorf("stats: %s", fmtStats(s))
		}
	})
	t.Run("auto id after a 5xx is unknown too", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		e.emu.FailNext(emulator.RouteUpload, 1, http.StatusBadGateway)
		_, err := e.client.Upload(t.Context(), uploadReq(t, "", 9))
		var ae *batchapi.APIError
		if !errors.Is(err, batchapi.ErrOutcomeUnknown) || !errors.As(err, &ae) || ae.StatusCode != 502 {
			t.Fatalf("err = %v, want ErrOutcomeUnknown wrapping the 502", err)
		}
	})
	t.Run("auto id after a 429 is retried", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		e.emu.FailNext(emulator.RouteUpload, 2, http.StatusTooManyRequests)
		if _, err := e.client.Upload(t.Context(), uploadReq(t, "", 10)); err != nil {
			t.Fatalf("err = %v; a 429 is a refusal, safe to retry", err)
		}
		if n := len(e.emu.Images()); n != 1 {
			t.Errorf("%d images, want 1", n)
		}
	})
	t.Run("delete is retried and ends as not found", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		ctx := t.Context()
		if _, err := e.client.Upload(ctx, uploadReq(t, "del.png", 1)); err != nil {
			t.Fatal(err)
		}
		e.emu.DropResponses(emulator.RouteDelete, 1)
		if err := e.client.Delete(ctx, "del.png"); !batchapi.IsNotFound(err) {
			t.Fatalf("err = %v, want not found", err)
		}
		if _, ok := e.emu.Image("del.png"); ok {
			t.Error("image still there")
		}
	})
	t.Run("get is retried", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		ctx := t.Context()
		if _, err := e.client.Upload(ctx, uploadReq(t, "g.png", 1)); err != nil {
			t.Fatal(err)
		}
		e.emu.DropResponses(emulator.RouteGet, 2)
		if _, err := e.client.Get(ctx, "g.png"); err != nil {
			t.Fatal(err)
		}
		// net/http itself re-sends an idempotent GET once when a reused connection dies, so
		// the client sees fewer failures than the server dropped; the server saw them all.
		if n := e.emu.Calls()[emulator.RouteGet]; n != 3 {
			t.Errorf("get calls = %d, want 3", n)
		}
		if s := e.client.Stats(); s.Requests[batchapi.OpGet].NetErr == 0 {
			t.Errorf("stats: %s", fmtStats(s))
		}
	})
}

func TestBatchRouteFallback(t *testing.T) {
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	ctx := t.Context()
	if _, err := e.client.Upload(ctx, uploadReq(t, "fb.png", 1)); err != nil {
		t.Fatal(err)
	}
	e.emu.ForbidBatchRoute(emulator.RouteList)
	e.emu.ForbidBatchRoute(emulator.RouteUpload)
	for range 3 {
		n := 0
		for _, err := range e.client.List(ctx, batchapi.ListOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Errorf("listed %d, want 1", n)
		}
	}
	// An upload without custom ID may be re-sent after "forbidden endpoint": it was refused
	// before anything happened.
	if _, err := e.client.Upload(ctx, uploadReq(t, "", 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Get(ctx, "fb.png"); err != nil {
		t.Fatal(err)
	}
	s := e.client.Stats()
	if s.Fallbacks != 2 {
		t.Errorf("fallbacks = %d, want 2", s.Fallbacks)
	}
	c := e.emu.Calls()
	// Global: 1 mint + 3 lists + 1 upload. Batch: first upload + first get + ... the
	// forbidden answers are not counted as served calls.
	if c[emulator.CallsGlobal] != 5 {
		t.Errorf("global host served %d calls, want 5: %v", c[emulator.CallsGlobal], c)
	}
	if c[emulator.CallsBatch] != 2 {
		t.Errorf("batch host served %d calls, want 2 (upload, get): %v", c[emulator.CallsBatch], c)
	}
	if n := len(e.emu.Images()); n != 2 {
		t.Errorf("%d images, want 2", n)
	}
}

func TestGlobalBudgetRespected(t *testing.T) {
	// Every list goes to the global host. The client paces 6 per second with this config;
	// the emulator allows 10 per second, so nothing may be refused.
	e := newEnv(t,
		emulator.Options{GlobalBudget: 10, GlobalWindow: time.Second},
		batchapi.Config{GlobalRequests: 7, GlobalWindow: time.Second})
	e.emu.ForbidBatchRoute(emulator.RouteList)
	ctx := t.Context()
	start := time.Now()
	for range 12 {
		for _, err := range e.client.List(ctx, batchapi.ListOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := e.emu.Calls()[emulator.CallsThrottled]; n != 0 {
		t.Errorf("the global host refused %d calls", n)
	}
	// 13 global calls (12 lists and a mint) at 6/s after a burst of 1 take about 2 s.
	if el := time.Since(start); el < time.Second {
		t.Errorf("13 global calls took %v: the limiter did not pace", el)
	}
	if s := e.client.Stats(); s.LimiterWait < time.Second {
		t.Errorf("limiter wait %v", s.LimiterWait)
	}
}

func TestContextEnds(t *testing.T) {
	t.Run("during retry-after wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Cancel once the client has decided to wait: the 503 carries Retry-After: 1. The
		// retry hook runs just before the wait, so there is no race with the answer.
		e := newEnv(t, emulator.Options{}, batchapi.Config{MaxRetryWait: time.Hour, RetryBaseDelay: time.Millisecond,
			OnRetry: func(string, int, error, time.Duration) { cancel() }})
		e.emu.FailNext(emulator.RouteGet, 1, http.StatusServiceUnavailable)
		_, err := e.client.Get(ctx, "x.png")
		if !errors.Is(err, context.Canceled) || batchapi.IsTransient(err) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if !strings.Contains(err.Error(), "503") {
			t.Errorf("error does not mention the last failure: %v", err)
		}
	})
	t.Run("auto id upload in flight", func(t *testing.T) {
		e := newEnv(t, emulator.Options{}, batchapi.Config{})
		// Mint the pool's token first: the latency below applies to the mint too.
		if _, err := e.client.Get(t.Context(), "warm.png"); !batchapi.IsNotFound(err) {
			t.Fatal(err)
		}
		// The emulator stores the upload, then holds the answer back for the latency: the
		// client gives up in between, so the upload happened but its outcome is unknown.
		e.emu.SetLatency(time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			defer cancel()
			waitFor(t, "the upload to be stored", func() bool { return len(e.emu.Images()) == 1 })
		}()
		_, err := e.client.Upload(ctx, uploadReq(t, "", 1))
		if !errors.Is(err, batchapi.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown and context.Canceled", err)
		}
	})
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := batchapi.New(batchapi.Config{AccountID: "a", APIToken: "t", APIURL: srv.URL, BatchURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BatchToken(t.Context())
	var ae *batchapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTemporaryRedirect || !batchapi.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent 307", err)
	}
	if leaked.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []batchapi.Config{
		{APIToken: "t"},
		{AccountID: "a"},
		{AccountID: "a", APIToken: "t", APIURL: "http://api.cloudflare.com/client/v4"},
		{AccountID: "a", APIToken: "t", BatchURL: "http://batch.imagedelivery.net"},
	}
	for _, cfg := range tests {
		if _, err := batchapi.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestNoTokenInAnyOutput(t *testing.T) {
	var hookOut []string
	var mu sync.Mutex
	cfg := batchapi.Config{BatchTokens: 2, OnRetry: func(op string, attempt int, err error, d time.Duration) {
		mu.Lock()
		hookOut = append(hookOut, fmt.Sprintf("%s %d %v %+v %s", op, attempt, err, err, d))
		mu.Unlock()
	}}
	e := newEnv(t, emulator.Options{TokenTTL: time.Hour}, cfg)
	ctx := t.Context()
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := e.client.Upload(ctx, uploadReq(t, "s.png", 1))
	collect(err)
	_, err = e.client.Upload(ctx, uploadReq(t, "s.png", 1)) // 409
	collect(err)
	_, err = e.client.Get(ctx, "missing.png") // 404
	collect(err)
	e.emu.FailNext("", 10, http.StatusTooManyRequests)
	_, err = e.client.Get(ctx, "s.png") // 429s, gives up
	collect(err)
	e.emu.FailNext("", 10, http.StatusInternalServerError)
	collect(e.client.Delete(ctx, "s.png")) // 500s, gives up
	e.emu.DropResponses(emulator.RouteUpload, 1)
	_, err = e.client.Upload(ctx, uploadReq(t, "", 3)) // outcome unknown
	collect(err)
	e.emu.ExpireTokens()
	e.emu.FailNext(emulator.RouteBatchToken, 10, http.StatusForbidden)
	_, err = e.client.Get(ctx, "s.png") // token rejected, mint refused
	collect(err)
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err = e.client.Get(ctx2, "s.png")
	collect(err)
	bad := newEnv(t, emulator.Options{}, batchapi.Config{APIToken: "wrong-api-token-Pp0Oo9"})
	_, err = bad.client.Upload(ctx, uploadReq(t, "x.png", 1))
	collect(err)

	if len(errs) != 8 {
		t.Errorf("provoked %d errors, want 8: %v", len(errs), errs)
	}
	secrets := append(e.seen.tokens(), bad.seen.tokens()...)
	if len(secrets) < 3 { // the API token and at least two batch tokens
		t.Fatalf("recorded only %d tokens", len(secrets))
	}
	for _, err := range errs {
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			mustNotContainSecrets(t, "error", s, secrets)
		}
		j, _ := json.Marshal(err)
		mustNotContainSecrets(t, "error JSON", string(j), secrets)
	}
	mustNotContainSecrets(t, "log", e.logs.String()+bad.logs.String(), secrets)
	mustNotContainSecrets(t, "OnRetry", strings.Join(hookOut, "\n"), secrets)
	mustNotContainSecrets(t, "stats", fmtStats(e.client.Stats()), secrets)
	if e.logs.String() == "" {
		t.Error("no log output was produced, so the log check proved nothing")
	}
}

// TestStalledAnswerIsCutOff: a server (or proxy) that sends headers and then stops must not
// hold a call forever; the attempt ends after AttemptTimeout as a transient failure.
func TestStalledAnswerIsCutOff(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/batch_token") {
			io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":{"token":"tok","expiresAt":"2099-01-01T00:00:00Z"}}`)
			return
		}
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, `{"success":true,"result":{"id":`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var attempts atomic.Int64
	c, err := batchapi.New(batchapi.Config{AccountID: "a", APIToken: "t", APIURL: srv.URL, BatchURL: srv.URL,
		AttemptTimeout: 100 * time.Millisecond, MaxAttempts: 2, RetryBaseDelay: time.Millisecond,
		OnRetry: func(string, int, error, time.Duration) { attempts.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(t.Context(), "x.png")
	if err == nil || !batchapi.IsTransient(err) || !strings.Contains(err.Error(), "no complete answer") {
		t.Fatalf("err = %v, want a transient 'no complete answer' error", err)
	}
	if attempts.Load() != 1 {
		t.Errorf("%d retries, want 1 (MaxAttempts 2)", attempts.Load())
	}
}

// TestListStopsOnCursorCycle: a server whose continuation tokens cycle (A→B→A) must not
// keep a caller listing forever.
func TestListStopsOnCursorCycle(t *testing.T) {
	var pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/batch_token") {
			io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":{"token":"tok","expiresAt":"2099-01-01T00:00:00Z"}}`)
			return
		}
		pages.Add(1)
		next := map[string]string{"": "A", "A": "B", "B": "A"}[r.URL.Query().Get("continuation_token")]
		fmt.Fprintf(w, `{"success":true,"errors":[],"messages":[],"result":{"images":[],"continuation_token":%q}}`, next)
	}))
	defer srv.Close()
	c, err := batchapi.New(batchapi.Config{AccountID: "a", APIToken: "t", APIURL: srv.URL, BatchURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for _, err := range c.List(t.Context(), batchapi.ListOptions{}) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), "repeated a continuation token") {
		t.Fatalf("last = %v, want a repeated-token error", last)
	}
	if n := pages.Load(); n != 3 {
		t.Errorf("%d pages fetched, want 3", n)
	}
}
