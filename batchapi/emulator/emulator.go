package emulator

import (
	"crypto/rand"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Route names, used by Calls and by the fault knobs.
const (
	RouteUpload       = "upload"
	RouteGet          = "get"
	RouteUpdate       = "update"
	RouteDelete       = "delete"
	RouteList         = "list"
	RouteListV1       = "list_v1"
	RouteBatchToken   = "batch_token"
	RouteDirectUpload = "direct_upload"
	RouteStats        = "stats"
	RouteBlob         = "blob"
	RouteUploadTarget = "upload_target" // POST to a direct upload's uploadURL
	RouteDelivery     = "delivery"
	// CallsThrottled counts requests refused with 429 by a rate limit (not injected ones).
	CallsThrottled = "throttled"
	// CallsUnauthorized counts requests refused for a bad API or batch token.
	CallsUnauthorized = "unauthorized"
	// CallsGlobal and CallsBatch count the API calls each host served.
	CallsGlobal = "global"
	CallsBatch  = "batch"
)

// Emulator is an in-memory Cloudflare Images API: the global host
// (/client/v4/accounts/{account_id}/images/...), the batch host (/images/...), direct
// upload targets (/upload/...) and delivery (/cdn-cgi/imagedelivery/...), all served by
// one http.Handler. It is safe for concurrent use, and its knobs may be turned while it
// serves.
type Emulator struct {
	opts    Options
	log     *slog.Logger
	signKey []byte

	inflaters sync.Pool // of flate readers, for PNG checks

	mu     sync.RWMutex // guards images, stored and seq
	images map[string]*record
	stored int // images that are not drafts
	seq    uint64

	ctl       sync.Mutex // guards everything below
	tokens    map[string]*batchToken
	windows   map[string]*globalWindow
	calls     map[string]int
	latency   time.Duration
	tokenTTL  time.Duration
	failRate  map[string]float64
	failNext  map[string][]failRule
	drops     map[string]int
	forbidden map[string]bool
}

type record struct {
	id            string
	custom        bool
	filename      string
	meta          []byte // compact JSON object; nil = none
	creator       *string
	requireSigned bool
	uploaded      time.Time
	seq           uint64
	draft         bool
	draftExpiry   time.Time
	content       []byte
	sha256        [32]byte
	info          imageInfo
}

type batchToken struct {
	expires time.Time
	lim     *rate.Limiter
}

type globalWindow struct {
	start   time.Time
	count   int
	blocked time.Time // when set, every call is refused until then
}

type failRule struct {
	n      int
	status int
}

// New returns an Emulator with empty state. It starts no goroutines.
func New(opts Options) *Emulator {
	opts = opts.withDefaults()
	e := &Emulator{opts: opts, log: opts.Logger, signKey: make([]byte, 32)}
	rand.Read(e.signKey)
	e.resetLocked()
	return e
}

// resetLocked sets all mutable state to its initial value. Callers hold no lock (New) or
// both locks (Reset).
func (e *Emulator) resetLocked() {
	e.images = make(map[string]*record)
	e.stored = 0
	e.tokens = make(map[string]*batchToken)
	e.windows = make(map[string]*globalWindow)
	e.calls = make(map[string]int)
	e.latency = e.opts.Latency
	e.tokenTTL = e.opts.TokenTTL
	e.failRate = make(map[string]float64)
	if e.opts.FailRate > 0 {
		e.failRate[""] = e.opts.FailRate
	}
	e.failNext = make(map[string][]failRule)
	e.drops = make(map[string]int)
	e.forbidden = make(map[string]bool)
}

func (e *Emulator) now() time.Time { return e.opts.Now() }

// call is one resolved API request.
type call struct {
	op string
	id string // unescaped image ID, for operations on one image
}

// ServeHTTP routes a request to the emulated host it addresses.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	var resp response
	route := ""
	switch {
	case strings.HasPrefix(path, "/client/v4/"):
		route, resp = e.serveGlobal(r, strings.TrimPrefix(path, "/client/v4/"))
	case path == "/images" || strings.HasPrefix(path, "/images/"):
		route, resp = e.serveBatch(r, strings.TrimPrefix(strings.TrimPrefix(path, "/images"), "/"))
	case strings.HasPrefix(path, "/upload/"):
		// The target of a direct upload's uploadURL: no auth, no rate limit.
		route = RouteUploadTarget
		hash, escID, _ := strings.Cut(strings.TrimPrefix(path, "/upload/"), "/")
		switch {
		case r.Method != http.MethodPost:
			resp = noRoute()
		case hash != e.opts.AccountHash || escID == "":
			resp = notFound()
		default:
			resp = e.serveAPI(r, call{op: RouteUploadTarget}, escID)
		}
	case strings.HasPrefix(path, "/cdn-cgi/imagedelivery/"):
		route = RouteDelivery
		e.count(RouteDelivery)
		e.serveDelivery(w, r, strings.TrimPrefix(path, "/cdn-cgi/imagedelivery/"))
		return
	default:
		resp = noRoute()
	}
	e.log.Debug("emulator request", "method", r.Method, "path", path, "route", route, "status", resp.status)
	resp.write(w)
}

func (e *Emulator) serveGlobal(r *http.Request, rest string) (string, response) {
	// accounts/{account_id}/images/{sub}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 || parts[0] != "accounts" || parts[2] != "images" {
		return "", noRoute()
	}
	tok, ok := bearer(r)
	if !ok || tok != e.opts.APIToken {
		e.count(CallsUnauthorized)
		return "", errResponse(http.StatusForbidden, codeAuth, msgAuth)
	}
	if acct := parts[1]; acct != e.opts.AccountID {
		e.count(CallsUnauthorized)
		if !isHex32(acct) {
			return "", errResponse(http.StatusBadRequest, codeNoRoute,
				"Could not route to "+r.URL.EscapedPath()+", perhaps your object identifier is invalid?")
		}
		return "", errResponse(http.StatusForbidden, codeAuth, msgAuth)
	}
	sub := ""
	if len(parts) == 4 {
		sub = parts[3]
	}
	op, escID := parseOp(r.Method, sub)
	if op == "" {
		return "", noRoute()
	}
	if retry, ok := e.globalAllow(tok); !ok {
		e.count(CallsThrottled)
		resp := errResponse(http.StatusTooManyRequests, codeRateLimited, msgRateLimited)
		resp.retryAfter = retry
		return op, resp
	}
	e.count(CallsGlobal)
	return op, e.serveAPI(r, call{op: op}, escID)
}

func (e *Emulator) serveBatch(r *http.Request, sub string) (string, response) {
	op, escID := parseOp(r.Method, sub)
	switch op {
	case RouteUpload, RouteGet, RouteUpdate, RouteDelete, RouteList, RouteDirectUpload:
	default:
		return op, forbiddenEndpoint()
	}
	e.ctl.Lock()
	forbidden := e.forbidden[op]
	e.ctl.Unlock()
	if forbidden {
		return op, forbiddenEndpoint()
	}
	tok, _ := bearer(r)
	lim, why := e.batchTokenLimiter(tok)
	if lim == nil {
		e.count(CallsUnauthorized)
		if e.opts.BareBatchAuthErrors {
			return op, bareResponse(http.StatusUnauthorized, "10000", msgAuth+": "+why)
		}
		return op, errResponse(http.StatusUnauthorized, codeAuth, msgAuth+": "+why)
	}
	now := e.now()
	if res := lim.ReserveN(now, 1); res.DelayFrom(now) > 0 {
		// Tell the client when the bucket has room again, and give the slot back.
		retry := retrySeconds(res.DelayFrom(now))
		res.CancelAt(now)
		e.count(CallsThrottled)
		resp := errResponse(http.StatusTooManyRequests, codeRateLimited, msgRateLimited)
		resp.retryAfter = retry
		return op, resp
	}
	e.count(CallsBatch)
	return op, e.serveAPI(r, call{op: op}, escID)
}

// parseOp maps a method and the escaped path after ".../images/" to an operation and the
// escaped image ID it names. An empty op means no such route.
func parseOp(method, sub string) (op, escID string) {
	switch {
	case sub == "v1":
		switch method {
		case http.MethodGet:
			return RouteListV1, ""
		case http.MethodPost:
			return RouteUpload, ""
		}
	case sub == "v1/batch_token" && method == http.MethodGet:
		return RouteBatchToken, ""
	case sub == "v1/stats" && method == http.MethodGet:
		return RouteStats, ""
	case strings.HasPrefix(sub, "v1/") && len(sub) > 3:
		id := sub[3:]
		switch method {
		case http.MethodGet:
			// A raw-slash ID ending in "/blob" is read as the blob route; such an ID must
			// be sent escaped (a%2Fblob) to be fetched as details.
			if b, ok := strings.CutSuffix(id, "/blob"); ok && b != "" {
				return RouteBlob, b
			}
			return RouteGet, id
		case http.MethodPatch:
			return RouteUpdate, id
		case http.MethodDelete:
			return RouteDelete, id
		}
	case sub == "v2" && method == http.MethodGet:
		return RouteList, ""
	case sub == "v2/direct_upload" && method == http.MethodPost:
		return RouteDirectUpload, ""
	}
	return "", ""
}

// serveAPI runs one operation with the fault knobs applied around it.
func (e *Emulator) serveAPI(r *http.Request, c call, escID string) response {
	if escID != "" {
		id, err := url.PathUnescape(escID)
		if err != nil || id == "" {
			return badRequest("image id is not a valid URL-escaped path segment")
		}
		c.id = id
	}
	e.count(c.op)
	latency, fail, drop := e.faults(c.op)
	if fail != 0 {
		e.log.Debug("emulator injected failure", "route", c.op, "status", fail)
		if !wait(r, latency) {
			return injected(http.StatusRequestTimeout)
		}
		return injected(fail)
	}
	resp := e.operate(r, c)
	// The latency is added after the operation, once the request body has been consumed:
	// only then does net/http watch the connection, so a client that gives up during the
	// wait is noticed (r.Context ends) instead of pinning the handler for the whole delay.
	// The change is applied either way, as on a real server whose answer is slow to arrive.
	if !wait(r, latency) {
		return injected(http.StatusRequestTimeout) // nobody is listening any more
	}
	if drop {
		e.log.Debug("emulator dropped response", "route", c.op, "status", resp.status)
		// The change is applied; the client never learns the outcome. net/http closes the
		// connection without logging for this sentinel panic.
		panic(http.ErrAbortHandler)
	}
	return resp
}

// wait blocks for d, or until the client goes away (false).
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (e *Emulator) operate(r *http.Request, c call) response {
	switch c.op {
	case RouteUpload:
		return e.upload(r)
	case RouteGet:
		return e.get(r, c.id)
	case RouteUpdate:
		return e.update(r, c.id)
	case RouteDelete:
		return e.delete(c.id)
	case RouteList:
		return e.list(r)
	case RouteListV1:
		return e.listV1(r)
	case RouteBatchToken:
		return e.mintBatchToken()
	case RouteDirectUpload:
		return e.directUpload(r)
	case RouteStats:
		return e.stats()
	case RouteBlob:
		return e.blob(c.id)
	case RouteUploadTarget:
		return e.fillDraft(r, c.id)
	}
	return noRoute()
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// ---- rate limits and tokens ----

// globalAllow spends one request of the API token's budget: GlobalBudget requests per
// fixed window that opens with the first request. A request over the budget blocks every
// call for a whole GlobalWindow from that moment, as the reference says the real API does
// ("exceeding blocks all calls for the next 5 minutes").
func (e *Emulator) globalAllow(tok string) (retryAfter int, ok bool) {
	if e.opts.GlobalBudget < 0 {
		return 0, true
	}
	now := e.now()
	e.ctl.Lock()
	defer e.ctl.Unlock()
	win := e.windows[tok]
	switch {
	case win != nil && now.Before(win.blocked):
		return retrySeconds(win.blocked.Sub(now)), false
	case win == nil || !win.blocked.IsZero() || !now.Before(win.start.Add(e.opts.GlobalWindow)):
		win = &globalWindow{start: now}
		e.windows[tok] = win
	}
	if win.count >= e.opts.GlobalBudget {
		win.blocked = now.Add(e.opts.GlobalWindow)
		return retrySeconds(e.opts.GlobalWindow), false
	}
	win.count++
	return 0, true
}

func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func (e *Emulator) batchTokenLimiter(tok string) (*rate.Limiter, string) {
	if tok == "" {
		return nil, "missing batch token"
	}
	e.ctl.Lock()
	defer e.ctl.Unlock()
	bt := e.tokens[tok]
	switch {
	case bt == nil:
		return nil, "invalid batch token"
	case !e.now().Before(bt.expires):
		return nil, "batch token expired"
	}
	return bt.lim, ""
}

func (e *Emulator) newLimiter() *rate.Limiter {
	if e.opts.TokenRate < 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(e.opts.TokenRate), max(1, int(math.Ceil(e.opts.TokenRate))))
}

// ---- counters and knobs ----

func (e *Emulator) count(name string) {
	e.ctl.Lock()
	e.calls[name]++
	e.ctl.Unlock()
}

// faults decides, for one call, the latency to add, a status to fail with (0 = none) and
// whether to drop the response.
func (e *Emulator) faults(op string) (time.Duration, int, bool) {
	general := op != RouteUploadTarget // the "" knobs cover API operations only
	e.ctl.Lock()
	defer e.ctl.Unlock()
	latency := e.latency
	if !general {
		latency = 0
	}
	status := 0
	for _, key := range []string{op, ""} {
		if key == "" && !general {
			break
		}
		if rules := e.failNext[key]; len(rules) > 0 {
			status = rules[0].status
			if rules[0].n--; rules[0].n <= 0 {
				rules = rules[1:]
			}
			e.failNext[key] = rules
			break
		}
	}
	if status == 0 {
		p, ok := e.failRate[op]
		if !ok && general {
			p = e.failRate[""]
		}
		if p > 0 && mrand.Float64() < p {
			status = http.StatusInternalServerError
		}
	}
	drop := false
	for _, key := range []string{op, ""} {
		if status != 0 || (key == "" && !general) {
			break // a failed call changes nothing, so it has no answer worth dropping
		}
		if e.drops[key] > 0 {
			e.drops[key]--
			drop = true
			break
		}
	}
	return latency, status, drop
}

// SetLatency adds d before every API call on both hosts, from now on.
func (e *Emulator) SetLatency(d time.Duration) {
	e.ctl.Lock()
	e.latency = d
	e.ctl.Unlock()
}

// SetFailRate makes a fraction p of the calls to route answer 500 with code 5500. Route ""
// means every API operation without a rate of its own.
func (e *Emulator) SetFailRate(route string, p float64) {
	e.ctl.Lock()
	e.failRate[route] = p
	e.ctl.Unlock()
}

// FailNext makes the next n calls to route ("" = any API operation) answer status with
// the matching envelope; 429 and 503 carry Retry-After: 1. Rules queue up in call order.
func (e *Emulator) FailNext(route string, n int, status int) {
	if n <= 0 {
		return
	}
	e.ctl.Lock()
	e.failNext[route] = append(e.failNext[route], failRule{n: n, status: status})
	e.ctl.Unlock()
}

// DropResponses makes the next n calls to route ("" = any API operation) apply their
// change and then close the connection without an answer. The handler panics with
// http.ErrAbortHandler, so an in-process transport around ServeHTTP must recover it.
func (e *Emulator) DropResponses(route string, n int) {
	e.ctl.Lock()
	e.drops[route] += n
	e.ctl.Unlock()
}

// ExpireTokens makes every batch token minted so far expire now.
func (e *Emulator) ExpireTokens() {
	now := e.now()
	e.ctl.Lock()
	for _, bt := range e.tokens {
		if bt.expires.After(now) {
			bt.expires = now
		}
	}
	e.ctl.Unlock()
}

// ForbidBatchRoute makes the batch host answer route with the non-envelope
// {"code":"103","message":"forbidden endpoint"}, as it does for routes it does not serve.
func (e *Emulator) ForbidBatchRoute(route string) {
	e.ctl.Lock()
	e.forbidden[route] = true
	e.ctl.Unlock()
}

// SetTokenTTL sets the lifetime of batch tokens minted from now on.
func (e *Emulator) SetTokenTTL(d time.Duration) {
	e.ctl.Lock()
	e.tokenTTL = d
	e.ctl.Unlock()
}

// Calls returns how many calls each operation received (by route name, see the Route
// constants), plus the CallsThrottled, CallsUnauthorized, CallsGlobal and CallsBatch
// counters. Injected failures count as calls; rate-limited requests count only as
// throttled.
func (e *Emulator) Calls() map[string]int {
	e.ctl.Lock()
	defer e.ctl.Unlock()
	out := make(map[string]int, len(e.calls))
	for k, v := range e.calls {
		out[k] = v
	}
	return out
}

// WriteCalls is the number of calls that could change state: upload, delete, update and
// direct_upload.
func (e *Emulator) WriteCalls() int {
	c := e.Calls()
	return c[RouteUpload] + c[RouteDelete] + c[RouteUpdate] + c[RouteDirectUpload]
}

// ResetCalls zeroes the call counters.
func (e *Emulator) ResetCalls() {
	e.ctl.Lock()
	e.calls = make(map[string]int)
	e.ctl.Unlock()
}

// Reset returns the emulator to its state after New: no images, no tokens, fresh rate
// budgets, zero counters, and the knobs back to their Options values.
func (e *Emulator) Reset() {
	e.mu.Lock()
	e.ctl.Lock()
	e.resetLocked()
	e.ctl.Unlock()
	e.mu.Unlock()
}
