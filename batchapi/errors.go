package batchapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrOutcomeUnknown means an upload without a custom ID was sent (or may have been) but no
// definite answer came back, so the image may or may not exist now. Retrying could create a
// second copy; the caller settles it instead, e.g. by listing its creator and matching a hash.
var ErrOutcomeUnknown = errors.New("outcome unknown: the upload may have been stored")

// Cloudflare error codes the classifiers look at.
const (
	codeThrottled      = 971   // global API rate limit
	codeAuth           = 10000 // authentication error (bad or wrong-host token)
	codeNotAuthorized  = 5403  // account not valid or not authorized for Images
	codeNotFound       = 5404
	codeAlreadyExists  = 5409
	codeSlowUpload     = 5408
	codeForbiddenBatch = 103 // batch host: "forbidden endpoint" (non-envelope, string code)
)

// ErrorDetail is one Cloudflare error: a numeric code and its message.
type ErrorDetail struct {
	Code    int
	Message string
}

// APIError is an answer from the API that reports failure: an HTTP status of 300 or more, or
// "success": false whatever the status. Match it with errors.As.
type APIError struct {
	Op         string // the operation, e.g. "upload", "get", "batch_token"
	ID         string // the image ID the call was about, if any
	StatusCode int
	Errors     []ErrorDetail
	// RetryAfter is the server's Retry-After, 0 if it sent none.
	RetryAfter time.Duration

	// bare is set for the batch host's non-envelope answer style.
	bare bool
}

// Error reads like `batchapi: upload "shop/boots.jpg": 409 Conflict: 5409 Resource already exists`.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("batchapi: ")
	b.WriteString(e.Op)
	if e.ID != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(e.ID))
	}
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if d.Code != 0 {
			b.WriteString(strconv.Itoa(d.Code))
			b.WriteString(" ")
		}
		b.WriteString(d.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *APIError) hasCode(code int) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

func (e *APIError) transient() bool {
	switch {
	case e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode == http.StatusTooManyRequests,
		e.StatusCode >= 500:
		return true
	}
	return e.hasCode(codeThrottled) || e.hasCode(codeSlowUpload)
}

// forbiddenEndpoint reports the batch host's refusal to serve a route at all.
func (e *APIError) forbiddenEndpoint() bool {
	return e.bare && e.hasCode(codeForbiddenBatch)
}

// localError marks a failure on our side (the upload content could not be read, a request
// could not be built): retrying the same call would fail the same way.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// wrapError is an error with its own text around an error it keeps for errors.Is/As.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}

// IsNotFound reports whether err says the image does not exist (404 or code 5404). A 404
// that carries another code, such as 7003 "No route for the URI", is a misconfigured URL,
// not a missing image, so it does not count: a delete must not "succeed" against the wrong
// endpoint.
func IsNotFound(err error) bool {
	ae, ok := asAPIError(err)
	if !ok {
		return false
	}
	if ae.hasCode(codeNotFound) {
		return true
	}
	return ae.StatusCode == http.StatusNotFound && len(ae.Errors) == 0
}

// IsAlreadyExists reports whether err says the custom ID is taken (409 or code 5409).
func IsAlreadyExists(err error) bool {
	ae, ok := asAPIError(err)
	return ok && (ae.StatusCode == http.StatusConflict || ae.hasCode(codeAlreadyExists))
}

// IsAuth reports whether err is an authentication or permission failure: code 10000 or
// 5403, a 401, or a 403 that carries no other Cloudflare code. A 403 with another code is
// about something else (5453: the account's image quota is full; 103: the batch host does
// not serve the route) and must not make a caller drop its credentials or stop everything.
// After the client's own token refresh it is permanent: fix the credentials.
func IsAuth(err error) bool {
	ae, ok := asAPIError(err)
	if !ok {
		return false
	}
	if ae.hasCode(codeAuth) || ae.hasCode(codeNotAuthorized) {
		return true
	}
	switch ae.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return len(ae.Errors) == 0
	}
	return false
}

// IsTransient reports whether the same call may succeed later: network errors, 408, 429,
// 5xx and the throttling code 971. The client already retried these up to Config.MaxAttempts;
// a caller that gets one may queue the work for later. An error wrapping ErrOutcomeUnknown or
// a context error is not transient: the first needs settling, the second was asked for.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrOutcomeUnknown) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if ae, ok := asAPIError(err); ok {
		return ae.transient()
	}
	var le *localError
	// Anything else reaching us is a transport failure: DNS, refused, reset, EOF, TLS.
	return !errors.As(err, &le)
}

// IsPermanent reports whether repeating the call unchanged would fail the same way: an API
// refusal that is not transient (400, 401, 403, 404, 409, 413, 415, ...) or a local failure
// such as unreadable content.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, ErrOutcomeUnknown) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if ae, ok := asAPIError(err); ok {
		return !ae.transient()
	}
	var le *localError
	return errors.As(err, &le)
}

// retryAfterOf returns the server's Retry-After carried by err, if any.
func retryAfterOf(err error) time.Duration {
	if ae, ok := asAPIError(err); ok {
		return ae.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// RFC 9110: delay-seconds is digits only. Anything else ("1e10", "NaN", "-5") is
	// ignored rather than read as centuries, and any value is capped: one bad header must
	// not stop a token for good.
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter caps a server's Retry-After: the global limit's whole window (5 minutes)
// is the longest wait the reference describes; twice that leaves room.
const maxRetryAfter = 10 * time.Minute
