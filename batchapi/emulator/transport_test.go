package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Inside a synctest bubble, through the in-process transport, token lifetimes, rate
// limits and latency follow the fake clock.
func TestTransportInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(Options{TokenRate: 2, Latency: 3 * time.Second})
		hc := &http.Client{Transport: e.Transport()}
		base := "http://api.example/client/v4/accounts/" + testAccount + "/images/"
		do := func(method, url, token string) (int, []byte) {
			t.Helper()
			req, _ := http.NewRequest(method, url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
			defer res.Body.Close()
			var env envelope
			json.NewDecoder(res.Body).Decode(&env)
			return res.StatusCode, env.Result
		}

		start := time.Now()
		status, raw := do("GET", base+"v1/batch_token", testToken)
		if status != 200 {
			t.Fatalf("batch token: %d", status)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("latency on the fake clock = %v, want 3s", d)
		}
		var tok struct{ Token string }
		json.Unmarshal(raw, &tok)
		e.SetLatency(0)

		batch := "http://batch.example/images/v2"
		for range 2 {
			if status, _ := do("GET", batch, tok.Token); status != 200 {
				t.Fatalf("list: %d", status)
			}
		}
		if status, _ := do("GET", batch, tok.Token); status != 429 {
			t.Errorf("third call in the same instant: %d, want 429", status)
		}
		advance(time.Second) // the bucket refills on the bubble's clock
		if status, _ := do("GET", batch, tok.Token); status != 200 {
			t.Errorf("after a second: %d", status)
		}
		advance(15 * time.Minute)
		if status, _ := do("GET", batch, tok.Token); status != 401 {
			t.Errorf("after the token's lifetime: %d, want 401", status)
		}
	})
}

func TestTransportDroppedResponse(t *testing.T) {
	e := New(Options{})
	hc := &http.Client{Transport: e.Transport()}
	e.DropResponses(RouteDelete, 1)
	e.FailNext(RouteGet, 1, 503)
	req, _ := http.NewRequest("DELETE", "http://x/client/v4/accounts/"+testAccount+"/images/v1/a.png", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	_, err := hc.Do(req)
	if !errors.Is(err, ErrDropped) {
		t.Errorf("err = %v, want ErrDropped", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Error("error names the token")
	}
	req, _ = http.NewRequest("GET", "http://x/client/v4/accounts/"+testAccount+"/images/v1/a.png", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" {
		t.Errorf("injected: %d %v", res.StatusCode, res.Header)
	}
}

// advance moves the synctest bubble's fake clock by d: inside a bubble time.Sleep returns
// once every goroutine in it is blocked and the clock has jumped, so nothing is left to chance.
func advance(d time.Duration) { time.Sleep(d) }
