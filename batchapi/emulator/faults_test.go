package emulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenRateLimit(t *testing.T) {
	clock := newClock() // frozen: the bucket refills only when the test says so
	s := newServer(t, Options{Now: clock.Now, TokenRate: 5})
	b := s.batchClient(t)
	for i := range 5 {
		if r := b.do("GET", "v2", nil, ""); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
	}
	r := b.do("GET", "v2", nil, "")
	r.want(t, 429, 971)
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Another token has its own bucket.
	s.batchClient(t).do("GET", "v2", nil, "").want(t, 200, 0)
	clock.Advance(time.Second)
	b.do("GET", "v2", nil, "").want(t, 200, 0)
	calls := s.Emulator.Calls()
	if calls[CallsThrottled] != 1 || calls[RouteList] != 7 {
		t.Errorf("calls = %v", calls)
	}
	// Batch calls do not spend the global budget.
	if calls[CallsGlobal] != 2 {
		t.Errorf("global calls = %d, want 2 (the mints)", calls[CallsGlobal])
	}
}

func TestGlobalBudget(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now, GlobalBudget: 3, GlobalWindow: time.Minute})
	c := s.global(t)
	for range 3 {
		c.do("GET", "v2", nil, "").want(t, 200, 0)
	}
	r := c.do("GET", "v2", nil, "")
	r.want(t, 429, 971)
	if got := r.header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After = %q, want 60", got)
	}
	// Blocked for the rest of the window, whatever the route.
	clock.Advance(30*time.Second + 500*time.Millisecond)
	r = c.do("GET", "v1/batch_token", nil, "")
	r.want(t, 429, 971)
	if got := r.header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q, want 30 (rounded up)", got)
	}
	// The batch host is not part of the global budget, and a wrong token is refused
	// before it is counted.
	(&client{t: t, s: s, token: "wrong"}).do("GET", "v2", nil, "").want(t, 403, 10000)
	clock.Advance(30 * time.Second)
	c.do("GET", "v2", nil, "").want(t, 200, 0)
	if n := s.Emulator.Calls()[CallsThrottled]; n != 2 {
		t.Errorf("throttled = %d, want 2", n)
	}
}

func TestUnlimitedRates(t *testing.T) {
	s := newServer(t, Options{GlobalBudget: -1, TokenRate: -1})
	c := s.global(t)
	b := s.batchClient(t)
	for range 300 {
		c.do("GET", "v1/stats", nil, "").want(t, 200, 0)
		b.do("GET", "v2", nil, "").want(t, 200, 0)
	}
}

func TestFailNext(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	content := grayPNG(t, 3, 3)
	s.Emulator.FailNext(RouteUpload, 2, 503)
	for range 2 {
		r := c.upload(fileField("a.png", content))
		r.want(t, 503, 5503)
		if r.header.Get("Retry-After") != "1" {
			t.Errorf("503 without Retry-After: %v", r.header)
		}
	}
	c.upload(fileField("a.png", content)).want(t, 200, 0)
	if n := len(s.Emulator.Images()); n != 1 {
		t.Errorf("%d images stored, want 1 (failed calls store nothing)", n)
	}

	// Rules queue in order; "" matches any operation; other routes are unaffected.
	s.Emulator.FailNext(RouteGet, 1, 429)
	s.Emulator.FailNext(RouteGet, 1, 500)
	s.Emulator.FailNext("", 1, 404)
	c.do("GET", "v1/stats", nil, "").want(t, 404, 5404)
	r := c.do("GET", "v1/x.png", nil, "")
	r.want(t, 429, 971)
	if r.header.Get("Retry-After") != "1" {
		t.Error("429 without Retry-After")
	}
	c.do("GET", "v1/x.png", nil, "").want(t, 500, 5500)
	c.do("GET", "v1/x.png", nil, "").want(t, 404, 5404) // the real answer
	c.do("GET", "v1/stats", nil, "").want(t, 200, 0)
}

func TestSetFailRate(t *testing.T) {
	s := newServer(t, Options{FailRate: 1})
	c := s.global(t)
	c.do("GET", "v2", nil, "").want(t, 500, 5500)
	s.Emulator.SetFailRate(RouteList, 0) // a route's own rate wins over ""
	c.do("GET", "v2", nil, "").want(t, 200, 0)
	c.do("GET", "v1/stats", nil, "").want(t, 500, 5500)
	s.Emulator.SetFailRate("", 0)
	c.do("GET", "v1/stats", nil, "").want(t, 200, 0)
	s.Emulator.SetFailRate(RouteDelete, 1)
	c.do("DELETE", "v1/x.png", nil, "").want(t, 500, 5500)
}

func TestDropResponses(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	s.Emulator.DropResponses(RouteUpload, 1)
	body, ct := multipartForm(t, fileField("a.png", grayPNG(t, 3, 3)), field{name: "id", value: "dropped.png"})
	req, _ := http.NewRequest("POST", c.url("v1"), body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("dropped upload answered %d", res.StatusCode)
	}
	// The upload happened although the client never heard.
	if _, ok := s.Emulator.Image("dropped.png"); !ok {
		t.Error("dropped upload was not stored")
	}
	c.upload(fileField("a.png", grayPNG(t, 3, 3)), field{name: "id", value: "dropped.png"}).want(t, 409, 5409)
	// Deletes too.
	s.Emulator.DropResponses("", 1)
	req, _ = http.NewRequest("DELETE", c.url("v1/dropped.png"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("dropped delete answered %d", res.StatusCode)
	}
	if _, ok := s.Emulator.Image("dropped.png"); ok {
		t.Error("dropped delete was not applied")
	}
}

func TestSetLatency(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	s.Emulator.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.url("v2"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	// The call is held: it shows up in the counters but does not finish.
	waitForCall(t, s.Emulator, RouteList)
	select {
	case err := <-done:
		t.Fatalf("request finished despite an hour of latency: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	s.Emulator.SetLatency(0)
	c.do("GET", "v2", nil, "").want(t, 200, 0)
}

func TestInspectionAndReset(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	content := pngBytes(t, 3, 2)
	c.upload(fileField("a.png", content), field{name: "id", value: "one.png"},
		field{name: "metadata", value: `{"a":1}`}, field{name: "creator", value: "me"}).want(t, 200, 0)
	c.upload(fileField("b.png", content), field{name: "id", value: "two.png"}).want(t, 200, 0)
	c.do("DELETE", "v1/two.png", nil, "").want(t, 200, 0)
	c.do("PATCH", "v1/one.png", nil, "").want(t, 400, 5400)
	c.do("GET", "v1/one.png", nil, "").want(t, 200, 0)

	imgs := s.Emulator.Images()
	if len(imgs) != 1 || imgs[0].ID != "one.png" || string(imgs[0].Meta) != `{"a":1}` ||
		imgs[0].Creator != "me" || imgs[0].Filename != "a.png" || imgs[0].Uploaded.IsZero() {
		t.Errorf("Images() = %+v", imgs)
	}
	got, ok := s.Emulator.Content("one.png")
	if !ok || string(got) != string(content) {
		t.Error("Content differs")
	}
	got[0] ^= 0xff // a copy: the stored bytes are unaffected
	if again, _ := s.Emulator.Content("one.png"); again[0] != content[0] {
		t.Error("Content returned the stored slice")
	}
	if _, ok := s.Emulator.Content("two.png"); ok {
		t.Error("Content of a deleted image")
	}
	calls := s.Emulator.Calls()
	if calls[RouteUpload] != 2 || calls[RouteDelete] != 1 || calls[RouteUpdate] != 1 || calls[RouteGet] != 1 {
		t.Errorf("Calls() = %v", calls)
	}
	if n := s.Emulator.WriteCalls(); n != 4 {
		t.Errorf("WriteCalls() = %d, want 4", n)
	}
	s.Emulator.ResetCalls()
	if n := len(s.Emulator.Calls()); n != 0 {
		t.Errorf("after ResetCalls: %v", s.Emulator.Calls())
	}
	b := s.batchClient(t)
	s.Emulator.FailNext("", 5, 500)
	s.Emulator.Reset()
	if len(s.Emulator.Images()) != 0 || s.Emulator.WriteCalls() != 0 {
		t.Error("Reset kept state")
	}
	b.do("GET", "v2", nil, "").want(t, 401, 10000)   // tokens forgotten
	c.do("GET", "v1/stats", nil, "").want(t, 200, 0) // knobs back to Options
}

// Many clients at once, on both hosts: every upload is stored once, under -race.
func TestConcurrentUse(t *testing.T) {
	s := newServer(t, Options{TokenRate: -1})
	content := grayPNG(t, 4, 4)
	var wg sync.WaitGroup
	const workers, each = 8, 15
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *client
			if w%2 == 0 {
				c = s.global(t)
			} else {
				c = s.batchClient(t)
			}
			for i := range each {
				id := "w" + strconv.Itoa(w) + "/" + strconv.Itoa(i) + ".png"
				if r := c.upload(fileField("x.png", content), field{name: "id", value: id}); r.status != 200 {
					t.Errorf("upload %s: %d %s", id, r.status, r.raw)
				}
				if r := c.do("GET", "v1/"+escape(id), nil, ""); r.status != 200 {
					t.Errorf("get %s: %d", id, r.status)
				}
				c.do("GET", "v2?per_page=10", nil, "")
			}
		}()
	}
	wg.Wait()
	if n := len(s.Emulator.Images()); n != workers*each {
		t.Errorf("%d images, want %d", n, workers*each)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e) }()
	s := &Server{URL: "http://" + ln.Addr().String()}
	s.global(t).do("GET", "v2", nil, "").want(t, 200, 0)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after ctx was cancelled", err)
	}
	if _, err := http.Get(s.URL + "/client/v4/"); err == nil {
		t.Error("still serving after Serve returned")
	}
}

func TestTokenRateRetryAfter(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now, TokenRate: 0.25}) // one call per 4 s
	b := s.batchClient(t)
	b.do("GET", "v2", nil, "").want(t, 200, 0)
	r := b.do("GET", "v2", nil, "")
	r.want(t, 429, 971)
	if got := r.header.Get("Retry-After"); got != "4" {
		t.Errorf("Retry-After = %q, want 4", got)
	}
	// A refused call does not take the slot: after the advertised wait, the call passes.
	clock.Advance(4 * time.Second)
	b.do("GET", "v2", nil, "").want(t, 200, 0)
}

// Close waits for a request in flight and lets it finish with an answer.
func TestCloseWaitsForInFlight(t *testing.T) {
	s := NewServer(Options{Latency: 300 * time.Millisecond})
	c := s.global(t)
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", c.url("v2"), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	waitForCall(t, s.Emulator, RouteList)
	s.Close()
	// Had Close cut the connection, the client would see an error instead of a 200.
	if status := <-got; status != 200 {
		t.Errorf("in-flight request got %d, want 200", status)
	}
	if _, err := http.Get(s.URL + "/client/v4/"); err == nil {
		t.Error("still serving after Close")
	}
}

// TestCloseDoesNotWaitForIdleFreshConnections: clients dial spare connections they may
// never use; Close must not wait for them (http.Server.Shutdown alone waits 5 s).
func TestCloseDoesNotWaitForIdleFreshConnections(t *testing.T) {
	s := NewServer(Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second): // Shutdown's own grace for such connections is 5 s
		t.Fatal("Close is waiting for a connection that never sent a request")
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the spare connection is still open after Close")
	}
}

// waitForCall polls, on a ticker, until the emulator has counted a call to route.
func waitForCall(t *testing.T, e *Emulator, route string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for e.Calls()[route] == 0 {
		select {
		case <-deadline:
			t.Fatal("the request never reached the emulator")
		case <-tick.C:
		}
	}
}

// TestGlobalBudgetBlocksAWholeWindowAfterExceeding: the reference says exceeding the global
// limit blocks all calls for the next 5 minutes, so the block runs a whole window from the
// request that exceeded, not only to the end of the current window.
func TestGlobalBudgetBlocksAWholeWindowAfterExceeding(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now, GlobalBudget: 3, GlobalWindow: time.Minute})
	c := s.global(t)
	for range 3 {
		c.do("GET", "v2", nil, "").want(t, 200, 0)
	}
	clock.Advance(50 * time.Second)
	r := c.do("GET", "v2", nil, "")
	r.want(t, 429, 971)
	if got := r.header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After = %q, want 60 (a whole window from now)", got)
	}
	clock.Advance(15 * time.Second) // past the first window's end, inside the block
	c.do("GET", "v2", nil, "").want(t, 429, 971)
	clock.Advance(46 * time.Second)
	c.do("GET", "v2", nil, "").want(t, 200, 0)
}
