package batchapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// These tests run the emulator's handler in-process inside a synctest bubble, where time is
// fake: waits of seconds or minutes (Retry-After, token lifetimes, the global window) pass
// instantly and exactly, so they can be asserted to the millisecond without slowing the suite.

// handlerTransport serves requests by calling the handler directly (loopback sockets would
// defeat the fake clock).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				panic(r)
			}
			resp, err = nil, errors.New("connection closed by the server")
		}
	}()
	sreq := req.Clone(req.Context())
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, sreq)
	return rec.Result(), nil
}

func newBubbleEnv(t *testing.T, opts emulator.Options, cfg batchapi.Config) (*emulator.Emulator, *batchapi.Client) {
	t.Helper()
	opts.AccountID, opts.APIToken = testAccount, testAPIToken
	emu := emulator.New(opts)
	cfg.AccountID, cfg.APIToken = testAccount, testAPIToken
	cfg.APIURL, cfg.BatchURL = "http://127.0.0.1/client/v4", "http://127.0.0.1"
	cfg.HTTPClient = &http.Client{Transport: handlerTransport{emu}}
	c, err := batchapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emu, c
}

func TestRetryAfterHonouredInFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emu, c := newBubbleEnv(t, emulator.Options{}, batchapi.Config{
			RetryBaseDelay: 10 * time.Millisecond,
			TokenRate:      1e6, // so the token's pace adds nothing measurable to the waits
		})
		if _, err := c.Upload(t.Context(), uploadReq(t, "ra.png", 1)); err != nil {
			t.Fatal(err)
		}
		emu.FailNext(emulator.RouteGet, 2, http.StatusServiceUnavailable) // Retry-After: 1
		start := time.Now()
		if _, err := c.Get(t.Context(), "ra.png"); err != nil {
			t.Fatal(err)
		}
		// Two waits of Retry-After (1 s) plus at most one base of jitter each.
		if el := time.Since(start); el < 2*time.Second || el > 2*time.Second+20*time.Millisecond {
			t.Errorf("took %v, want 2s to 2.02s", el)
		}
		if s := c.Stats(); s.RetryWait < 2*time.Second {
			t.Errorf("RetryWait = %v", s.RetryWait)
		}
	})
}

func TestBackoffWithoutRetryAfterIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var delays []time.Duration
		emu, c := newBubbleEnv(t, emulator.Options{}, batchapi.Config{
			RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: 300 * time.Millisecond, MaxAttempts: 5,
			TokenRate: 1e6, // so the token's pace adds nothing measurable to the waits
			OnRetry:   func(_ string, _ int, _ error, d time.Duration) { delays = append(delays, d) },
		})
		if _, err := c.Get(t.Context(), "warm"); !batchapi.IsNotFound(err) {
			t.Fatal(err)
		}
		emu.FailNext(emulator.RouteGet, 10, http.StatusInternalServerError)
		start := time.Now()
		_, err := c.Get(t.Context(), "x")
		if !batchapi.IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
		el := time.Since(start)
		// Ceilings 100, 200, 300, 300 ms: full jitter stays below their sum.
		var sum time.Duration
		for i, d := range delays {
			ceil := min(100*time.Millisecond<<i, 300*time.Millisecond)
			if d < 0 || d >= ceil {
				t.Errorf("delay %d = %v, want in [0, %v)", i, d, ceil)
			}
			sum += d
		}
		if len(delays) != 4 || el < sum || el > sum+time.Millisecond {
			t.Errorf("%d delays summing to %v; the call took %v", len(delays), sum, el)
		}
	})
}

func TestTokensRefreshedAheadOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emu, c := newBubbleEnv(t, emulator.Options{TokenTTL: time.Minute}, batchapi.Config{})
		if _, err := c.Upload(t.Context(), uploadReq(t, "clock.png", 1)); err != nil {
			t.Fatal(err)
		}
		// One call a second for ten minutes of fake time.
		for range 600 {
			advance(time.Second) // advances the fake clock; nothing to synchronise with
			if _, err := c.Get(t.Context(), "clock.png"); err != nil {
				t.Fatal(err)
			}
		}
		calls := emu.Calls()
		if n := calls[emulator.CallsUnauthorized]; n != 0 {
			t.Errorf("%d calls hit an expired token: refresh must come before expiry", n)
		}
		// Minute-long tokens replaced 6 s early: one per 54 s, so 12 for 10 minutes.
		if n := c.Stats().TokensMinted; n < 11 || n > 13 {
			t.Errorf("minted %d tokens, want about 12", n)
		}
	})
}

func TestGlobalRateLimitHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The client believes in a far larger budget than the server grants, so it trips the
		// limit; it must then hold off until the window reopens instead of hammering.
		emu, c := newBubbleEnv(t,
			emulator.Options{GlobalBudget: 5, GlobalWindow: time.Minute},
			batchapi.Config{GlobalRequests: 100000, GlobalWindow: time.Minute, MaxAttempts: 3})
		emu.ForbidBatchRoute(emulator.RouteList)
		start := time.Now()
		for range 8 {
			for _, err := range c.List(t.Context(), batchapi.ListOptions{}) {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		el := time.Since(start)
		// 9 global calls (a mint and 8 lists) with 5 per minute: the 6th waits for the
		// second window.
		if el < time.Minute || el > time.Minute+time.Second {
			t.Errorf("took %v, want just over a minute", el)
		}
		if n := emu.Calls()[emulator.CallsThrottled]; n != 1 {
			t.Errorf("server refused %d calls, want 1: the pause must hold everyone off", n)
		}
	})
}

func TestPoolPacesAtTheCeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emu, c := newBubbleEnv(t, emulator.Options{}, batchapi.Config{BatchTokens: 4})
		if _, err := c.Upload(t.Context(), uploadReq(t, "pace.png", 1)); err != nil {
			t.Fatal(err)
		}
		advance(time.Second) // let the limiters refill: a fresh start for the measurement
		const n = 800
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				for next.Add(1) <= n {
					if _, err := c.Get(t.Context(), "pace.png"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		// 4 tokens at 200/s: 800 requests take 1 s less one interval, all spread and
		// paced, so the server's per-token limit never fires.
		if el < 990*time.Millisecond || el > 1010*time.Millisecond {
			t.Errorf("%d requests on 4 tokens took %v, want about 1 s", n, el)
		}
		if got := emu.Calls()[emulator.CallsThrottled]; got != 0 {
			t.Errorf("%d requests refused with 429", got)
		}
		if s := c.Stats(); s.TokensMinted != 4 {
			t.Errorf("minted %d tokens, want 4 (one per slot)", s.TokensMinted)
		}
	})
}

func TestRateLimitPausesTheToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttled := make(chan struct{})
		emu, c := newBubbleEnv(t, emulator.Options{}, batchapi.Config{
			OnRetry: func(string, int, error, time.Duration) { close(throttled) },
		})
		if _, err := c.Upload(t.Context(), uploadReq(t, "p.png", 1)); err != nil {
			t.Fatal(err)
		}
		emu.FailNext(emulator.RouteGet, 1, http.StatusTooManyRequests) // Retry-After: 1
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := c.Get(t.Context(), "p.png"); err != nil {
				t.Error(err)
			}
		}()
		<-throttled // the first call got its 429 and is about to wait
		// Any other call on that token now holds off until the Retry-After has passed.
		if _, err := c.Get(t.Context(), "p.png"); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < time.Second {
			t.Errorf("second call went out after %v, inside the Retry-After", el)
		}
		<-done
		if got := c.Stats().LimiterWait; got < 900*time.Millisecond {
			t.Errorf("LimiterWait = %v, want the pause counted", got)
		}
	})
}

// advance moves the synctest bubble's fake clock by d: inside a bubble time.Sleep returns
// once every goroutine in it is blocked and the clock has jumped, so nothing is left to chance.
func advance(d time.Duration) { time.Sleep(d) }
