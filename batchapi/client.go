package batchapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// maxResponseBody bounds what is read of one answer; a list page of 10,000 images stays well
// under it.
const maxResponseBody = 64 << 20

// Client talks to the Images API. It is safe for concurrent use; throughput comes from calling
// it from many goroutines (at 200 requests/s per token and 50 ms per request, about 10 calls
// in flight per token keep the pool busy).
type Client struct {
	cfg       Config
	apiBase   string // global host, ".../client/v4/accounts/{account_id}"
	batchBase string // batch host
	hc        *http.Client
	log       *slog.Logger
	policy    retryPolicy

	pool          *pool
	global        *rate.Limiter
	globalPausedT atomic.Int64 // unix nanos until which the global host asked us to hold off

	// forceGlobal remembers operations the batch host refused as "forbidden endpoint".
	forceGlobal [numOps]atomic.Bool

	stats counters
}

// New checks cfg and returns a client. It starts no goroutines and sends nothing: the first
// batch token is minted by the first call that needs one.
func New(cfg Config) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	api, err := baseURL("APIURL", cfg.APIURL)
	if err != nil {
		return nil, err
	}
	batch, err := baseURL("BatchURL", cfg.BatchURL)
	if err != nil {
		return nil, err
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		hc = *defaultHTTPClient()
	}
	hc.CheckRedirect = noRedirect

	// The global limit is a window of n requests that, once exceeded, blocks everything for
	// five minutes. A token bucket with burst b lets through at most b + rate·window in any
	// window, so the rate is (n-b)/window to stay under n even in the worst case.
	n := cfg.GlobalRequests
	burst := max(1, min(n/20, 60))
	globalRate := rate.Limit(float64(max(n-burst, 1)) / cfg.GlobalWindow.Seconds())

	c := &Client{
		cfg:       cfg,
		apiBase:   api + "/accounts/" + url.PathEscape(cfg.AccountID),
		batchBase: batch,
		hc:        &hc,
		log:       cfg.Logger,
		policy: retryPolicy{
			base:    cfg.RetryBaseDelay,
			max:     cfg.RetryMaxDelay,
			maxWait: cfg.MaxRetryWait,
		},
		pool:   newPool(cfg.BatchTokens, cfg.TokenRate, cfg.TokenBurst),
		global: rate.NewLimiter(globalRate, burst),
	}
	return c, nil
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// BatchToken mints a batch token on the global host. The client mints its own pool tokens;
// this is for callers that want one for another purpose.
func (c *Client) BatchToken(ctx context.Context) (BatchToken, error) {
	var w wireBatchToken
	err := c.do(ctx, &request{op: opBatchToken, method: http.MethodGet, path: "/images/v1/batch_token", replayable: true, out: &w})
	if err != nil {
		return BatchToken{}, err
	}
	if w.Token == "" {
		return BatchToken{}, errors.New("batchapi: batch_token: answer has no token")
	}
	c.stats.tokensMinted.Add(1)
	exp, err := time.Parse(time.RFC3339Nano, w.ExpiresAt)
	if err != nil {
		// The lifetime is undocumented; without an expiry, assume a short one and rely on
		// the refresh after a 401 if it is shorter still.
		c.log.Warn("batch token has no readable expiresAt; assuming 5 minutes", "expiresAt", w.ExpiresAt)
		exp = time.Now().Add(5 * time.Minute)
	}
	return BatchToken{Token: Secret(w.Token), ExpiresAt: exp}, nil
}

func (c *Client) mintForPool(ctx context.Context) (BatchToken, error) {
	bt, err := c.BatchToken(ctx)
	if err == nil {
		c.log.Debug("minted batch token", "expires", bt.ExpiresAt)
	}
	return bt, err
}

// Upload sends one image. With a custom ID the call is retried on transient errors; a 409 on
// a retry may mean an earlier attempt landed, and is returned as is for the caller to settle
// (GET and compare the hash). Without a custom ID nothing is re-sent once the body may have
// reached the server: such failures wrap ErrOutcomeUnknown.
func (c *Client) Upload(ctx context.Context, req UploadRequest) (Image, error) {
	form, err := uploadForm(req)
	if err != nil {
		return Image{}, fmt.Errorf("batchapi: upload %q: %w", req.ID, &localError{err})
	}
	var w wireImage
	err = c.do(ctx, &request{
		op: opUpload, id: req.ID, method: http.MethodPost, path: "/images/v1",
		form: form, replayable: req.ID != "", out: &w,
	})
	if err != nil {
		return Image{}, err
	}
	return w.image(), nil
}

// Get returns one image's record. A missing image gives an error for which IsNotFound holds.
func (c *Client) Get(ctx context.Context, id string) (Image, error) {
	if err := checkID(id); err != nil {
		return Image{}, fmt.Errorf("batchapi: get: %w", err)
	}
	var w wireImage
	err := c.do(ctx, &request{op: opGet, id: id, method: http.MethodGet, path: imagePath(id), replayable: true, out: &w})
	if err != nil {
		return Image{}, err
	}
	return w.image(), nil
}

// Update changes an image's metadata, signed-URL requirement or creator. Content cannot be
// changed: delete and upload again.
func (c *Client) Update(ctx context.Context, id string, req UpdateRequest) (Image, error) {
	if err := checkID(id); err != nil {
		return Image{}, fmt.Errorf("batchapi: update: %w", err)
	}
	p := wirePatch{RequireSignedURLs: req.RequireSignedURLs, Creator: req.Creator}
	if req.Metadata != nil {
		m, err := json.Marshal(req.Metadata)
		if err != nil {
			return Image{}, fmt.Errorf("batchapi: update %q: encode metadata: %w", id, &localError{err})
		}
		p.Metadata = m
	}
	body, err := json.Marshal(p)
	if err != nil {
		return Image{}, fmt.Errorf("batchapi: update %q: %w", id, &localError{err})
	}
	var w wireImage
	err = c.do(ctx, &request{op: opUpdate, id: id, method: http.MethodPatch, path: imagePath(id), json: body, replayable: true, out: &w})
	if err != nil {
		return Image{}, err
	}
	return w.image(), nil
}

// Delete removes an image. A missing image gives an error for which IsNotFound holds, which
// callers normally count as done (a retried delete whose first answer was lost ends that way).
func (c *Client) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("batchapi: delete: %w", err)
	}
	return c.do(ctx, &request{op: opDelete, id: id, method: http.MethodDelete, path: imagePath(id), replayable: true})
}

// List iterates over the account's images (list v2), following continuation tokens. After an
// error it yields that error once and stops. Breaking out of the loop stops fetching.
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[Image, error] {
	return func(yield func(Image, error) bool) {
		cursor := ""
		seen := map[string]bool{} // a server cycling A→B→A would otherwise loop forever
		for {
			q := url.Values{}
			if opts.PerPage > 0 {
				q.Set("per_page", strconv.Itoa(opts.PerPage))
			}
			if opts.SortOrder != "" {
				q.Set("sort_order", opts.SortOrder)
			}
			if opts.Creator != nil {
				q.Set("creator", *opts.Creator)
			}
			if cursor != "" {
				q.Set("continuation_token", cursor)
			}
			var page wireListResult
			if err := c.do(ctx, &request{op: opList, method: http.MethodGet, path: "/images/v2", query: q, replayable: true, out: &page}); err != nil {
				yield(Image{}, err)
				return
			}
			for _, w := range page.Images {
				if !yield(w.image(), nil) {
					return
				}
			}
			if page.ContinuationToken == nil || *page.ContinuationToken == "" {
				return
			}
			if seen[*page.ContinuationToken] {
				yield(Image{}, errors.New("batchapi: list: server repeated a continuation token"))
				return
			}
			cursor = *page.ContinuationToken
			seen[cursor] = true
		}
	}
}

// DirectUpload creates a draft image and returns the one-time URL a browser can POST the file
// to without credentials.
func (c *Client) DirectUpload(ctx context.Context, req DirectUploadRequest) (DirectUpload, error) {
	form, err := directUploadForm(req)
	if err != nil {
		return DirectUpload{}, fmt.Errorf("batchapi: direct_upload %q: %w", req.ID, &localError{err})
	}
	var w wireDirectUpload
	// A repeated request without ID leaves at most an extra draft, which expires unused.
	err = c.do(ctx, &request{op: opDirectUpload, id: req.ID, method: http.MethodPost, path: "/images/v2/direct_upload", form: form, replayable: true, out: &w})
	if err != nil {
		return DirectUpload{}, err
	}
	return DirectUpload{ID: w.ID, UploadURL: w.UploadURL}, nil
}

// imagePath puts the ID in the path as ONE segment: "a/b.png" becomes "a%2Fb.png".
func imagePath(id string) string { return "/images/v1/" + url.PathEscape(id) }

// checkID refuses IDs that cannot be a path segment: "" would address the collection, and
// "." or ".." would be resolved away by any server or proxy that normalises paths.
func checkID(id string) error {
	switch id {
	case "":
		return &localError{errors.New("empty image ID")}
	case ".", "..":
		return &localError{fmt.Errorf("image ID %q cannot be sent as a path segment", id)}
	}
	return nil
}

type request struct {
	op     op
	id     string // the image ID, for error messages
	method string
	path   string // escaped, below the host prefix
	query  url.Values
	json   []byte
	form   *formBody
	// replayable is false for an upload without custom ID: sending it twice could store two
	// images.
	replayable bool
	out        any
}

func (r *request) prefix() string {
	if r.id == "" {
		return "batchapi: " + r.op.String()
	}
	return "batchapi: " + r.op.String() + " " + strconv.Quote(r.id)
}

// do runs one call: pick a host and token, pace, send, classify, and retry what may be retried.
func (c *Client) do(ctx context.Context, r *request) error {
	authRefreshed := false
	for attempt := 1; ; {
		useBatch := r.op != opBatchToken && !c.forceGlobal[r.op].Load()
		var (
			s   *slot
			gen uint64
			tok Secret
		)
		if useBatch {
			s = c.pool.pick(time.Now())
			var err error
			if tok, gen, err = s.token(ctx, c.mintForPool); err != nil {
				if isContextErr(err) {
					return fmt.Errorf("%s: %w", r.prefix(), err)
				}
				// Say it once: "batchapi: get "x": get batch token: 403 Forbidden: ...".
				msg := strings.TrimPrefix(err.Error(), "batchapi: "+OpBatchToken+": ")
				return &wrapError{msg: r.prefix() + ": get batch token: " + msg, err: err}
			}
			if err := c.waitSlot(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", r.prefix(), err)
			}
		} else {
			tok = c.cfg.APIToken
			if err := c.waitGlobal(ctx); err != nil {
				return fmt.Errorf("%s: %w", r.prefix(), err)
			}
		}

		wrote, err := c.send(ctx, r, useBatch, tok)
		if err == nil {
			return nil
		}
		ae, isAPI := asAPIError(err)
		if !isAPI {
			err = fmt.Errorf("%s: %w", r.prefix(), err)
		}

		if ctx.Err() != nil {
			// Say why it stopped even when the last answer was an API error: callers test
			// for context.Canceled to tell a shutdown from a failure.
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%w)", err, ctx.Err())
			}
			if !r.replayable && wrote {
				c.stats.outcomeUnknown.Add(1)
				return fmt.Errorf("%w: %w", err, ErrOutcomeUnknown)
			}
			return err
		}

		if isAPI && useBatch {
			if ae.forbiddenEndpoint() {
				// The server refused the route before looking at the request, so even a
				// non-replayable upload may be re-sent.
				if !c.forceGlobal[r.op].Swap(true) {
					c.stats.fallbacks.Add(1)
					c.log.Warn("batch host refuses this operation; using the global host for it", "op", r.op.String())
				}
				continue
			}
			if IsAuth(err) && !authRefreshed {
				authRefreshed = true
				if s.invalidate(gen) {
					c.stats.authRefreshes.Add(1)
					c.log.Info("batch token rejected; minting a new one", "op", r.op.String(), "status", ae.StatusCode)
				}
				continue
			}
		}
		if isAPI && ae.StatusCode == http.StatusTooManyRequests && ae.RetryAfter > 0 {
			// Hold everyone off this token (or the global host), not just this call.
			until := time.Now().Add(c.capWait(ae.RetryAfter))
			if useBatch {
				s.pause(until)
			} else {
				c.pauseGlobal(until)
			}
		}

		if !r.replayable && mayHaveLanded(ae, isAPI, wrote) {
			c.stats.outcomeUnknown.Add(1)
			return fmt.Errorf("%w: %w", err, ErrOutcomeUnknown)
		}
		if !IsTransient(err) {
			return err
		}
		if attempt >= c.cfg.MaxAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := c.policy.delay(attempt-1, err, rand.Float64)
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(r.op.String(), attempt, err, d)
		}
		c.stats.retries.Add(1)
		start := time.Now()
		serr := sleepCtx(ctx, d)
		c.stats.retryWait.Add(int64(time.Since(start)))
		if serr != nil {
			return fmt.Errorf("%w; stopped waiting to retry: %w", err, serr)
		}
		attempt++
	}
}

// mayHaveLanded says whether a failed upload without custom ID may have stored an image. A
// 429 and other 4xx answers are refusals; a 5xx or 408 may come after the store; a transport
// error may have lost the answer only if the whole request went out; a 2xx we could not read
// means it landed.
func mayHaveLanded(ae *APIError, isAPI, wrote bool) bool {
	if !isAPI {
		return wrote
	}
	return ae.StatusCode < 300 || ae.StatusCode == http.StatusRequestTimeout || ae.StatusCode >= 500
}

func (c *Client) capWait(d time.Duration) time.Duration {
	if c.cfg.MaxRetryWait > 0 && d > c.cfg.MaxRetryWait {
		return c.cfg.MaxRetryWait
	}
	return d
}

func (c *Client) waitSlot(ctx context.Context, s *slot) error {
	start := time.Now()
	defer func() { c.stats.limiterWait.Add(int64(time.Since(start))) }()
	if p := s.pausedFor(start); p > 0 {
		if err := sleepCtx(ctx, p); err != nil {
			return err
		}
	}
	return limiterWait(ctx, s.lim)
}

// limiterWait is Limiter.Wait, except that a deadline too near to wait for is reported as
// context.DeadlineExceeded (the limiter's own error would read as a network failure).
func limiterWait(ctx context.Context, lim *rate.Limiter) error {
	err := lim.Wait(ctx)
	if err != nil && ctx.Err() == nil {
		if _, ok := ctx.Deadline(); ok {
			return fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
		}
	}
	return err
}

func (c *Client) pauseGlobal(until time.Time) {
	u := until.UnixNano()
	for {
		cur := c.globalPausedT.Load()
		if cur >= u || c.globalPausedT.CompareAndSwap(cur, u) {
			return
		}
	}
}

func (c *Client) waitGlobal(ctx context.Context) error {
	start := time.Now()
	defer func() { c.stats.limiterWait.Add(int64(time.Since(start))) }()
	if p := time.Unix(0, c.globalPausedT.Load()).Sub(start); p > 0 {
		if err := sleepCtx(ctx, p); err != nil {
			return err
		}
	}
	return limiterWait(ctx, c.global)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send makes one HTTP exchange. wrote reports whether the whole request went out, after which
// a lost answer leaves the outcome unknown.
func (c *Client) send(ctx context.Context, r *request, batch bool, tok Secret) (wrote bool, err error) {
	u := c.apiBase + r.path
	if batch {
		u = c.batchBase + r.path
	}
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	// Whether the request went out is learnt from the trace hooks of net/http's Transport.
	// A transport that calls no hooks (a custom RoundTripper) tells us nothing, and then we
	// must assume it did.
	var traced, wroteFlag atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) { traced.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wroteFlag.Store(true)
			}
		},
	})
	var body io.Reader
	switch {
	case r.form != nil:
		body = r.form.reader()
	case r.json != nil:
		body = bytes.NewReader(r.json)
	}
	limit := c.attemptTimeout(r)
	tctx, cancel := context.WithTimeoutCause(tctx, limit, errStalled)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, r.method, u, body)
	if err != nil {
		return false, &localError{fmt.Errorf("build request: %w", err)}
	}
	switch {
	case r.form != nil:
		req.ContentLength = r.form.length()
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(r.form.reader()), nil }
		req.Header.Set("Content-Type", r.form.contentType)
	case r.json != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+string(tok))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cfimgsync-batchapi")

	resp, err := c.hc.Do(req)
	if err != nil {
		c.stats.request(r.op, 0)
		return wroteFlag.Load() || !traced.Load(), stalledOr(ctx, tctx, limit, err)
	}
	c.stats.request(r.op, resp.StatusCode)
	return true, stalledOr(ctx, tctx, limit, c.readResponse(resp, r))
}

// errStalled marks an attempt that ran out of its AttemptTimeout.
var errStalled = errors.New("no complete answer in time")

// attemptTimeout is Config.AttemptTimeout plus a second per 64 KiB of body, so a large
// upload over a slow link is not cut off while it is still moving.
func (c *Client) attemptTimeout(r *request) time.Duration {
	d := c.cfg.AttemptTimeout
	if r.form != nil {
		d += time.Duration(r.form.length()/(64<<10)) * time.Second
	}
	return d
}

// stalledOr replaces err by a plain transient error when the attempt's own deadline (not
// the caller's context) ended it: a context error would read as "the caller gave up" and
// stop the retries.
func stalledOr(parent, attempt context.Context, limit time.Duration, err error) error {
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(attempt), errStalled) {
		return fmt.Errorf("%w after %v", errStalled, limit)
	}
	return err
}

// readResponse turns an answer into nil (result decoded into r.out) or an *APIError. The
// body is always drained and closed so the connection can be reused.
func (c *Client) readResponse(resp *http.Response, r *request) error {
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 256<<10))
		_ = resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return fmt.Errorf("read %d answer: %w", resp.StatusCode, err)
	}
	ae := &APIError{
		Op:         r.op.String(),
		ID:         r.id,
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if len(bytes.TrimSpace(body)) == 0 && resp.StatusCode < 300 && r.out == nil {
		return nil // a bare 204 to a delete: nothing to read, nothing failed
	}
	var env wireEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		// Not JSON: a proxy's HTML page, a truncated answer. The body itself is not quoted,
		// since we cannot vouch for what it contains.
		ae.Errors = []ErrorDetail{{Message: fmt.Sprintf("unreadable answer (%s, %d bytes)", contentType(resp), len(body))}}
		return ae
	}
	switch {
	case env.Success == nil && env.Code != nil:
		ae.bare = true
		ae.Errors = []ErrorDetail{{Code: int(*env.Code), Message: env.Message}}
		return ae
	case env.Success == nil:
		if resp.StatusCode < 300 {
			ae.Errors = []ErrorDetail{{Message: "answer without a success field"}}
		}
		return ae
	case !*env.Success || resp.StatusCode >= 300:
		for _, e := range env.Errors {
			ae.Errors = append(ae.Errors, ErrorDetail{Code: int(e.Code), Message: e.Message})
		}
		return ae
	}
	if r.out != nil && len(env.Result) > 0 && !bytes.Equal(env.Result, []byte("null")) {
		if err := json.Unmarshal(env.Result, r.out); err != nil {
			ae.Errors = []ErrorDetail{{Message: "unreadable result: " + err.Error()}}
			return ae
		}
	}
	return nil
}

func contentType(resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no content type"
}
