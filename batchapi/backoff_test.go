package batchapi

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	p := retryPolicy{base: 100 * time.Millisecond, max: 2 * time.Second}
	capped := p
	capped.maxWait = 500 * time.Millisecond
	netErr := errors.New("connection reset")
	ra := func(d time.Duration) error { return &APIError{Op: "upload", StatusCode: 429, RetryAfter: d} }
	half := func() float64 { return 0.5 }
	top := func() float64 { return 0.999999 }
	zero := func() float64 { return 0 }

	tests := []struct {
		name    string
		p       retryPolicy
		attempt int
		err     error
		rnd     func() float64
		want    time.Duration
	}{
		{"first retry, mid jitter", p, 0, netErr, half, 50 * time.Millisecond},
		{"second retry doubles the ceiling", p, 1, netErr, half, 100 * time.Millisecond},
		{"third retry", p, 2, netErr, half, 200 * time.Millisecond},
		{"full jitter may be zero", p, 3, netErr, zero, 0},
		{"ceiling capped at max", p, 10, netErr, half, time.Second},
		{"huge attempt does not overflow", p, 200, netErr, half, time.Second},
		{"top of range stays below ceiling", p, 0, netErr, top, 99999900 * time.Nanosecond},
		{"retry-after is a floor", p, 0, ra(3 * time.Second), zero, 3 * time.Second},
		{"retry-after plus up to one base of jitter", p, 5, ra(time.Second), half, time.Second + 50*time.Millisecond},
		{"retry-after over max is still honoured", p, 0, ra(10 * time.Second), zero, 10 * time.Second},
		{"maxWait caps retry-after", capped, 0, ra(10 * time.Second), zero, 500 * time.Millisecond},
		{"maxWait caps backoff", capped, 10, netErr, half, 500 * time.Millisecond},
		{"503 without retry-after backs off normally", p, 1, &APIError{StatusCode: 503}, half, 100 * time.Millisecond},
		{"wrapped retry-after is seen", p, 0, errors.Join(errors.New("x"), ra(2*time.Second)), zero, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.delay(tt.attempt, tt.err, tt.rnd)
			if got != tt.want {
				t.Errorf("delay(%d, %v) = %v, want %v", tt.attempt, tt.err, got, tt.want)
			}
		})
	}
}

func TestTokenSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		life        time.Duration
		wantRefresh time.Duration // after now
		wantExpires time.Duration
	}{
		{"one hour: 10% early", time.Hour, 54 * time.Minute, time.Hour},
		{"thirty seconds: at least 5 s early", 30 * time.Second, 25 * time.Second, 30 * time.Second},
		{"two seconds: at most half early", 2 * time.Second, time.Second, 2 * time.Second},
		{"already expired by our clock", -time.Second, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, e := tokenSchedule(now, now.Add(tt.life))
			if got := r.Sub(now); got != tt.wantRefresh {
				t.Errorf("refresh after %v, want %v", got, tt.wantRefresh)
			}
			if got := e.Sub(now); got != tt.wantExpires {
				t.Errorf("expires after %v, want %v", got, tt.wantExpires)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0}, // delay-seconds is digits only (RFC 9110)
		{"1e10", 0},
		{"NaN", 0},
		{"Inf", 0},
		{"86400", maxRetryAfter},
		{"Thu, 01 Jan 2099 12:00:00 GMT", maxRetryAfter},
		{"Thu, 01 Jan 2026 12:00:30 GMT", 30 * time.Second},
		{"Thu, 01 Jan 2026 11:00:00 GMT", 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
