package batchapi

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// slot is one batch token of the pool with its own pace. Its mutex guards the token and the
// in-flight mint, so concurrent callers that find the token missing, expired or rejected
// share a single mint.
type slot struct {
	index int
	lim   *rate.Limiter

	mu          sync.Mutex
	tok         Secret
	expires     time.Time
	refreshAt   time.Time // refresh ahead of expiry from here on
	gen         uint64    // bumped on every new token, so a 401 invalidates only the token it hit
	flight      *mint     // the mint in progress, if any
	pausedUntil time.Time // a 429 with Retry-After on this token holds the slot until then
}

type mint struct {
	done chan struct{}
	err  error
}

type pool struct {
	slots []*slot
	next  atomic.Uint32
}

func newPool(n int, r float64, burst int) *pool {
	p := &pool{slots: make([]*slot, n)}
	for i := range p.slots {
		p.slots[i] = &slot{index: i, lim: rate.NewLimiter(rate.Limit(r), burst)}
	}
	return p
}

// pick returns the slot that can send soonest, starting the search at a rotating offset so
// equal slots share the load.
func (p *pool) pick(now time.Time) *slot {
	n := len(p.slots)
	start := int(p.next.Add(1)) % n
	var best *slot
	bestWait := time.Duration(math.MaxInt64)
	for i := range n {
		s := p.slots[(start+i)%n]
		w := s.readyIn(now)
		if w < bestWait {
			best, bestWait = s, w
		}
		if w <= 0 {
			break
		}
	}
	return best
}

// readyIn estimates how long a request on s would wait for its limiter and any pause.
func (s *slot) readyIn(now time.Time) time.Duration {
	var w time.Duration
	if t := s.lim.TokensAt(now); t < 1 {
		w = time.Duration((1 - t) / float64(s.lim.Limit()) * float64(time.Second))
	}
	s.mu.Lock()
	if p := s.pausedUntil.Sub(now); p > w {
		w = p
	}
	s.mu.Unlock()
	return w
}

// pause holds the slot after the server said this token is over its rate.
func (s *slot) pause(until time.Time) {
	s.mu.Lock()
	if until.After(s.pausedUntil) {
		s.pausedUntil = until
	}
	s.mu.Unlock()
}

func (s *slot) pausedFor(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pausedUntil.Sub(now)
}

// invalidate drops the token of generation gen after the batch host rejected it. A later
// generation (someone already refreshed) is left alone, so a burst of 401s costs one mint.
func (s *slot) invalidate(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.tok == "" {
		return false
	}
	s.tok = ""
	return true
}

// token returns a usable token for the slot, minting one if there is none or it expired. In
// the refresh window before expiry one caller mints a replacement while the others go on
// with the old, still valid token, so the pool never stalls on a routine refresh.
func (s *slot) token(ctx context.Context, mintFn func(context.Context) (BatchToken, error)) (Secret, uint64, error) {
	for {
		s.mu.Lock()
		now := time.Now()
		valid := s.tok != "" && now.Before(s.expires)
		if valid && (now.Before(s.refreshAt) || s.flight != nil) {
			tok, gen := s.tok, s.gen
			s.mu.Unlock()
			return tok, gen, nil
		}
		if f := s.flight; f != nil {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", 0, ctx.Err()
			}
			// The minting caller's context may have ended; ours has not, so try again
			// (possibly minting ourselves). Any other error is shared.
			if f.err != nil && !isContextErr(f.err) {
				return "", 0, f.err
			}
			continue
		}
		f := &mint{done: make(chan struct{})}
		s.flight = f
		s.mu.Unlock()

		bt, err := mintFn(ctx)

		s.mu.Lock()
		if err == nil {
			now = time.Now()
			s.tok = bt.Token
			s.refreshAt, s.expires = tokenSchedule(now, bt.ExpiresAt)
			s.gen++
		}
		s.flight = nil
		f.err = err
		close(f.done)
		s.mu.Unlock()
		if err != nil {
			if valid && !isContextErr(err) {
				// The old token still works; use it and let a later call try again.
				s.mu.Lock()
				if s.tok != "" && time.Now().Before(s.expires) {
					tok, gen := s.tok, s.gen
					s.mu.Unlock()
					return tok, gen, nil
				}
				s.mu.Unlock()
			}
			return "", 0, err
		}
	}
}

// tokenSchedule returns when to start replacing a token that expires at exp, and when to stop
// using it: 10% of its lifetime early, at least 5 s, but never more than half the lifetime
// (short test TTLs would otherwise refresh on every request). A token already expired by our
// clock (clock skew) is used for a minute or until the server rejects it, whichever is first,
// rather than minted again on every request.
func tokenSchedule(now, exp time.Time) (refreshAt, expires time.Time) {
	life := exp.Sub(now)
	if life <= 0 {
		return now.Add(time.Minute), now.Add(time.Minute)
	}
	margin := max(life/10, 5*time.Second)
	margin = min(margin, life/2)
	return exp.Add(-margin), exp
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
