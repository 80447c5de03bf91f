package batchapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// respond runs a recorded answer through the client's response reader.
func respond(t *testing.T, status int, header http.Header, body string, out any) error {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(strings.NewReader(body))}
	c := &Client{}
	return c.readResponse(resp, &request{op: opUpload, id: "shop/boots.jpg", out: out})
}

func TestReadResponseErrors(t *testing.T) {
	type want struct {
		status      int
		codes       []int
		text        string // substring of Error()
		notFound    bool
		exists      bool
		auth        bool
		transient   bool
		permanent   bool
		forbidden   bool
		retryAfter  time.Duration
		headerRetry string
	}
	tests := []struct {
		name   string
		status int
		body   string
		header http.Header
		want   want
	}{
		{
			name:   "duplicate custom id",
			status: 409,
			body:   `{"success":false,"errors":[{"code":5409,"message":"Resource already exists. Verify the resource information and try again."}],"messages":[],"result":null}`,
			want: want{status: 409, codes: []int{5409}, exists: true, permanent: true,
				text: `batchapi: upload "shop/boots.jpg": 409 Conflict: 5409 Resource already exists.`},
		},
		{
			name:   "not found",
			status: 404,
			body:   `{"success":false,"errors":[{"code":5404,"message":"Image not found"}],"messages":[],"result":null}`,
			want:   want{status: 404, codes: []int{5404}, notFound: true, permanent: true, text: "404 Not Found: 5404 Image not found"},
		},
		{
			name:   "no route is not a missing image",
			status: 404,
			body:   `{"success":false,"errors":[{"code":7003,"message":"No route for the URI"}],"messages":[],"result":null}`,
			want:   want{status: 404, codes: []int{7003}, permanent: true},
		},
		{
			name:   "global rate limit",
			status: 429,
			header: http.Header{"Retry-After": {"7"}},
			body:   `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}`,
			want:   want{status: 429, codes: []int{971}, transient: true, retryAfter: 7 * time.Second, text: "(retry after 7s)"},
		},
		{
			name:   "throttle code inside a 200 with success false",
			status: 200,
			body:   `{"success":false,"errors":[{"code":971,"message":"Please wait"}]}`,
			want:   want{status: 200, codes: []int{971}, transient: true},
		},
		{
			name:   "success false wins over status 200",
			status: 200,
			body:   `{"success":false,"errors":[{"code":5400,"message":"Bad request: Error parsing form fields"}],"messages":[],"result":null}`,
			want:   want{status: 200, codes: []int{5400}, permanent: true},
		},
		{
			name:   "auth envelope",
			status: 401,
			body:   `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}`,
			want:   want{status: 401, codes: []int{10000}, auth: true, permanent: true},
		},
		{
			name:   "auth with 400 status still auth by code",
			status: 400,
			body:   `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}`,
			want:   want{status: 400, codes: []int{10000}, auth: true, permanent: true},
		},
		{
			name:   "bare auth with string code",
			status: 401,
			body:   `{"code":"10000","message":"Authentication error: batch token expired"}`,
			want:   want{status: 401, codes: []int{10000}, auth: true, permanent: true},
		},
		{
			name:   "bare forbidden endpoint",
			status: 403,
			body:   `{"code":"103","message":"forbidden endpoint"}`,
			want:   want{status: 403, codes: []int{103}, forbidden: true, permanent: true, text: "403 Forbidden: 103 forbidden endpoint"},
		},
		{
			// A full image quota is not a credentials problem: the daemon must not stop.
			name:   "quota full",
			status: 403,
			body:   `{"success":false,"errors":[{"code":5453,"message":"The given account has reached a service limit (0)."}],"messages":[],"result":null}`,
			want:   want{status: 403, codes: []int{5453}, permanent: true, text: "403 Forbidden: 5453 The given account has reached a service limit (0)."},
		},
		{
			name:   "images not enabled",
			status: 403,
			body:   `{"success":false,"errors":[{"code":5403,"message":"The given account is not valid or is not authorized to access this service"}],"messages":[],"result":null}`,
			want:   want{status: 403, codes: []int{5403}, auth: true, permanent: true, text: "403 Forbidden: 5403 The given account is not valid or is not authorized to access this service"},
		},
		{
			name:   "bare forbidden endpoint with status 200",
			status: 200,
			body:   `{"code":"103","message":"forbidden endpoint"}`,
			want:   want{status: 200, codes: []int{103}, forbidden: true, permanent: true},
		},
		{
			name:   "internal error",
			status: 500,
			body:   `{"success":false,"errors":[{"code":5500,"message":"Internal error"}]}`,
			want:   want{status: 500, codes: []int{5500}, transient: true},
		},
		{
			name:   "unavailable with retry-after",
			status: 503,
			header: http.Header{"Retry-After": {"1"}},
			body:   `{"success":false,"errors":[{"code":5503,"message":"Service unavailable"}]}`,
			want:   want{status: 503, codes: []int{5503}, transient: true, retryAfter: time.Second},
		},
		{
			name:   "proxy html page",
			status: 502,
			header: http.Header{"Content-Type": {"text/html"}},
			body:   `<html><body>502 Bad Gateway</body></html>`,
			want:   want{status: 502, codes: []int{0}, transient: true, text: "unreadable answer (text/html, 41 bytes)"},
		},
		{
			name:   "request timeout",
			status: 408,
			body:   `{"success":false,"errors":[{"code":5408,"message":"slow"}]}`,
			want:   want{status: 408, codes: []int{5408}, transient: true},
		},
		{
			name:   "several errors",
			status: 400,
			body:   `{"success":false,"errors":[{"code":5411,"message":"The Custom ID is invalid"},{"code":5400,"message":"more"}]}`,
			want:   want{status: 400, codes: []int{5411, 5400}, permanent: true, text: "5411 The Custom ID is invalid; 5400 more"},
		},
		{
			name:   "redirect is an error, not followed",
			status: 302,
			header: http.Header{"Location": {"https://elsewhere.example/"}},
			body:   ``,
			want:   want{status: 302, codes: []int{0}, permanent: true},
		},
		{
			name:   "envelope error without errors list",
			status: 403,
			body:   `{"success":false,"errors":[],"messages":[],"result":null}`,
			want:   want{status: 403, auth: true, permanent: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := respond(t, tt.status, tt.header, tt.body, nil)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v (%T), want *APIError", err, err)
			}
			w := tt.want
			if ae.StatusCode != w.status {
				t.Errorf("StatusCode = %d, want %d", ae.StatusCode, w.status)
			}
			var codes []int
			for _, d := range ae.Errors {
				codes = append(codes, d.Code)
			}
			if fmt.Sprint(codes) != fmt.Sprint(w.codes) {
				t.Errorf("codes = %v, want %v", codes, w.codes)
			}
			if ae.Op != "upload" || ae.ID != "shop/boots.jpg" {
				t.Errorf("Op, ID = %q, %q", ae.Op, ae.ID)
			}
			if ae.RetryAfter != w.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, w.retryAfter)
			}
			if w.text != "" && !strings.Contains(err.Error(), w.text) {
				t.Errorf("Error() = %q, want it to contain %q", err.Error(), w.text)
			}
			checks := []struct {
				name      string
				got, want bool
			}{
				{"IsNotFound", IsNotFound(err), w.notFound},
				{"IsAlreadyExists", IsAlreadyExists(err), w.exists},
				{"IsAuth", IsAuth(err), w.auth},
				{"IsTransient", IsTransient(err), w.transient},
				{"IsPermanent", IsPermanent(err), w.permanent},
				{"forbiddenEndpoint", ae.forbiddenEndpoint(), w.forbidden},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v (err: %v)", c.name, c.got, c.want, err)
				}
			}
			// Wrapping by a caller must not hide the class.
			wrapped := fmt.Errorf("sync shop/boots.jpg: %w", err)
			if IsTransient(wrapped) != w.transient || IsPermanent(wrapped) != w.permanent {
				t.Errorf("classification changed when wrapped")
			}
		})
	}
}

func TestReadResponseSuccess(t *testing.T) {
	body := `{"success":true,"errors":[],"messages":[],"result":{"id":"shop/boots.jpg","filename":"boots.jpg",
		"meta":{"sha256":"ab"},"creator":null,"requireSignedURLs":false,"uploaded":"2022-01-31T16:39:28.458Z",
		"variants":["https://imagedelivery.net/h/shop/boots.jpg/public"]}}`
	var w wireImage
	if err := respond(t, 200, nil, body, &w); err != nil {
		t.Fatal(err)
	}
	img := w.image()
	if img.ID != "shop/boots.jpg" || img.Filename != "boots.jpg" || img.Meta["sha256"] != "ab" ||
		img.Creator != "" || len(img.Variants) != 1 || img.Draft {
		t.Errorf("image = %+v", img)
	}
	if want := time.Date(2022, 1, 31, 16, 39, 28, 458e6, time.UTC); !img.Uploaded.Equal(want) {
		t.Errorf("Uploaded = %v, want %v", img.Uploaded, want)
	}

	// "metadata" (as some doc examples show) is accepted when "meta" is absent.
	w = wireImage{}
	if err := respond(t, 200, nil, `{"success":true,"result":{"id":"x","metadata":{"k":"v"},"creator":"me","draft":true}}`, &w); err != nil {
		t.Fatal(err)
	}
	if img := w.image(); img.Meta["k"] != "v" || img.Creator != "me" || !img.Draft {
		t.Errorf("image = %+v", img)
	}

	// A success answer whose result does not fit is an error, not a zero Image.
	w = wireImage{}
	err := respond(t, 200, nil, `{"success":true,"result":{"id":42}}`, &w)
	if err == nil || IsTransient(err) {
		t.Errorf("undecodable result: err = %v, transient = %v", err, IsTransient(err))
	}
}

func TestClassifyNonAPIErrors(t *testing.T) {
	tests := []struct {
		name                 string
		err                  error
		transient, permanent bool
	}{
		{"nil", nil, false, false},
		{"network", fmt.Errorf("batchapi: get: %w", io.ErrUnexpectedEOF), true, false},
		{"local", fmt.Errorf("batchapi: upload: %w", &localError{errors.New("read content: boom")}), false, true},
		{"canceled", fmt.Errorf("batchapi: get: %w", context.Canceled), false, false},
		{"deadline", context.DeadlineExceeded, false, false},
		{"outcome unknown", fmt.Errorf("x: %w: %w", io.EOF, ErrOutcomeUnknown), false, false},
		{"outcome unknown over a 502", fmt.Errorf("%w: %w", &APIError{StatusCode: 502}, ErrOutcomeUnknown), false, false},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.transient {
			t.Errorf("%s: IsTransient = %v, want %v", tt.name, got, tt.transient)
		}
		if got := IsPermanent(tt.err); got != tt.permanent {
			t.Errorf("%s: IsPermanent = %v, want %v", tt.name, got, tt.permanent)
		}
		if IsNotFound(tt.err) || IsAlreadyExists(tt.err) || IsAuth(tt.err) {
			t.Errorf("%s: classified as an API answer", tt.name)
		}
	}
}

func TestLimiterWaitPastDeadline(t *testing.T) {
	c, err := New(Config{AccountID: "a", APIToken: "t", TokenRate: 0.001, APIURL: "http://127.0.0.1:1", BatchURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	s := c.pool.slots[0]
	s.lim.Allow() // spend the burst: the next request is 1000 s away
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = c.waitSlot(ctx, s)
	if !errors.Is(err, context.DeadlineExceeded) || IsTransient(err) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}
