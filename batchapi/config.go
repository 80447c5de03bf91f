package batchapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for Config's zero fields.
const (
	DefaultAPIURL         = "https://api.cloudflare.com/client/v4"
	DefaultBatchURL       = "https://batch.imagedelivery.net"
	DefaultTokenRate      = 200 // requests/second per batch token, as documented
	DefaultGlobalRequests = 1200
	DefaultGlobalWindow   = 5 * time.Minute
	DefaultMaxAttempts    = 8
	DefaultRetryBaseDelay = 250 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
	DefaultAttemptTimeout = time.Minute
)

// Config configures a Client. The zero value of each field means its default.
type Config struct {
	AccountID string
	APIToken  Secret
	APIURL    string // default DefaultAPIURL
	BatchURL  string // default DefaultBatchURL

	// BatchTokens is the size of the batch-token pool (default 1). Each token has its own
	// TokenRate budget, so throughput grows with the pool.
	BatchTokens int
	// TokenRate is the pace per batch token in requests/second (default 200).
	TokenRate float64
	// TokenBurst is how many requests one token may send back to back (default 1). Keep it
	// small: the server's window is unknown, and a paced stream never needs a burst.
	TokenBurst int

	// GlobalRequests per GlobalWindow is the budget on the global host (token mints and any
	// fallback calls); default 1200 per 5 minutes.
	GlobalRequests int
	GlobalWindow   time.Duration

	// MaxAttempts bounds the attempts of one call, the first included (default 8).
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff (defaults 250 ms, 30 s).
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxRetryWait caps any single wait between attempts, Retry-After included, and any pause
	// a 429 puts on a token. 0 means no cap: Retry-After is honoured in full. Tests set it low
	// because servers send Retry-After in whole seconds.
	MaxRetryWait time.Duration

	// AttemptTimeout bounds one attempt, from sending the request to reading the whole
	// answer, plus one second per 64 KiB of request body (default 1 minute). A server or
	// proxy that sends headers and then stalls would otherwise hold a worker forever. An
	// attempt that runs out is a transient network failure (for an upload without custom
	// ID: an unknown outcome).
	AttemptTimeout time.Duration

	// HTTPClient is used for every request. Default: a transport tuned for many concurrent
	// requests to one host. Redirects are never followed, whichever client is given, so the
	// Authorization header cannot reach another host.
	HTTPClient *http.Client
	// Logger receives token mints, fallbacks and refreshes; nil discards.
	Logger *slog.Logger
	// OnRetry, if set, is called before each wait for a retry (attempt counts from 1, the
	// failed one). It runs on the calling goroutine and must not block.
	OnRetry func(op string, attempt int, err error, delay time.Duration)
}

func (cfg *Config) fill() error {
	if cfg.AccountID == "" {
		return errors.New("batchapi: AccountID is required")
	}
	if cfg.APIToken == "" {
		return errors.New("batchapi: APIToken is required")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.BatchURL == "" {
		cfg.BatchURL = DefaultBatchURL
	}
	if cfg.BatchTokens <= 0 {
		cfg.BatchTokens = 1
	}
	if cfg.TokenRate <= 0 {
		cfg.TokenRate = DefaultTokenRate
	}
	if cfg.TokenBurst <= 0 {
		cfg.TokenBurst = 1
	}
	if cfg.GlobalRequests <= 0 {
		cfg.GlobalRequests = DefaultGlobalRequests
	}
	if cfg.GlobalWindow <= 0 {
		cfg.GlobalWindow = DefaultGlobalWindow
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.RetryMaxDelay < cfg.RetryBaseDelay {
		cfg.RetryMaxDelay = cfg.RetryBaseDelay
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// baseURL checks a configured endpoint and returns it without a trailing slash. Plain http is
// refused unless the host is loopback: the Authorization header would travel in the clear.
func baseURL(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("batchapi: %s: %w", name, err)
	}
	if u.User != nil {
		return "", fmt.Errorf("batchapi: %s: credentials in the URL are not allowed", name)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("batchapi: %s %q: must not have a query or fragment", name, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("batchapi: %s %q: plain http is allowed only to a loopback host", name, raw)
		}
	default:
		return "", fmt.Errorf("batchapi: %s %q: scheme must be https", name, raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("batchapi: %s %q: no host", name, raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultHTTPClient is tuned for hundreds of requests per second to one host: the stock
// transport keeps only 2 idle connections per host and would reconnect constantly.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 2 * time.Minute
	t.WriteBufferSize = 64 << 10
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
