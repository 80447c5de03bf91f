package emulator

import (
	"log/slog"
	"time"
)

// Options configures an Emulator. The zero value is a working emulator with the limits of
// the real API; every zero field takes the default named in its comment.
type Options struct {
	// AccountID is the account in global-host paths. Default "023e105f4ecef8ad9ca31a8372d0c353".
	AccountID string
	// APIToken is the bearer token the global host accepts. Default "emulator-api-token".
	APIToken string
	// AccountHash appears in delivery and upload URLs and in batch tokens. Default
	// "Vi7wi5KSItxGFsWRG2Us6Q" (22 characters of URL-safe base64, as in the docs).
	AccountHash string

	// TokenTTL is the lifetime of a minted batch token. Default 15 minutes (the real
	// lifetime is undocumented).
	TokenTTL time.Duration
	// TokenRate is the per-batch-token limit in requests/second, with a burst of one
	// second's worth. Default 200. Negative means unlimited.
	TokenRate float64
	// GlobalBudget requests per GlobalWindow are allowed per API token on the global host.
	// Defaults 1200 per 5 minutes. Negative GlobalBudget means unlimited.
	GlobalBudget int
	GlobalWindow time.Duration

	// Latency is added before every API call (both hosts).
	Latency time.Duration
	// FailRate is the fraction of API calls answered 500/5500 (SetFailRate("", p)).
	FailRate float64

	// AllowHEIC and AllowAVIF decide whether HEIC and AVIF input is accepted (the docs
	// disagree). nil means true.
	AllowHEIC *bool
	AllowAVIF *bool

	// MaxFileSize is the largest accepted upload in bytes. Default 10 MiB (10<<20); the
	// docs say "10 MB" without saying which megabyte.
	MaxFileSize int64
	// MaxAnimationArea is the largest pixel area of an animation, summed over its frames
	// (canvas width x height x frames). Default 100 megapixels (an older docs page said 50).
	MaxAnimationArea int64
	// MaxPerPage is the largest per_page list v2 accepts. Default 10000 (2024 spec); the
	// current reference text may mean 1000.
	MaxPerPage int
	// ImageQuota is stats' count.allowed; uploads beyond it are refused with 5453.
	// Default 100000.
	ImageQuota int
	// Variants are the variant names on the account. Default "public", "thumbnail".
	Variants []string

	// BareBatchAuthErrors makes the batch host refuse a bad batch token with the
	// non-envelope body {"code":"10000","message":"..."} instead of the v4 envelope. The
	// real body is undocumented; a client must cope with both.
	BareBatchAuthErrors bool

	// Now is the clock for token expiry, rate limits, upload times and draft expiry.
	// nil means time.Now.
	Now func() time.Time
	// Logger receives one debug line per request (never a token). nil discards.
	Logger *slog.Logger
}

const (
	defaultAccountID   = "023e105f4ecef8ad9ca31a8372d0c353"
	defaultAPIToken    = "emulator-api-token"
	defaultAccountHash = "Vi7wi5KSItxGFsWRG2Us6Q"
)

func (o Options) withDefaults() Options {
	if o.AccountID == "" {
		o.AccountID = defaultAccountID
	}
	if o.APIToken == "" {
		o.APIToken = defaultAPIToken
	}
	if o.AccountHash == "" {
		o.AccountHash = defaultAccountHash
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = 15 * time.Minute
	}
	if o.TokenRate == 0 {
		o.TokenRate = 200
	}
	if o.GlobalBudget == 0 {
		o.GlobalBudget = 1200
	}
	if o.GlobalWindow <= 0 {
		o.GlobalWindow = 5 * time.Minute
	}
	if o.AllowHEIC == nil {
		t := true
		o.AllowHEIC = &t
	}
	if o.AllowAVIF == nil {
		t := true
		o.AllowAVIF = &t
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 10 << 20
	}
	if o.MaxAnimationArea <= 0 {
		o.MaxAnimationArea = 100_000_000
	}
	if o.MaxPerPage <= 0 {
		o.MaxPerPage = 10000
	}
	if o.ImageQuota <= 0 {
		o.ImageQuota = 100000
	}
	if len(o.Variants) == 0 {
		o.Variants = []string{"public", "thumbnail"}
	} else {
		o.Variants = append([]string(nil), o.Variants...)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
