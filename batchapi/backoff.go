package batchapi

import "time"

// retryPolicy holds the knobs of the delay calculation. It is kept apart from the retry loop
// so the calculation is a pure function with a table test.
type retryPolicy struct {
	base    time.Duration // ceiling of the first retry's delay
	max     time.Duration // ceiling of the exponential part
	maxWait time.Duration // cap on any single wait, Retry-After included; 0 = no cap
}

// delay returns how long to wait before retrying after the attempt-th failure (0-based) that
// ended with err. It is full jitter (a uniform pick in [0, min(max, base·2^attempt)), so many
// clients failing together do not return together) unless the server named a Retry-After:
// that is honoured as a floor, plus up to one base of jitter for the same reason. rnd returns
// values in [0, 1).
func (p retryPolicy) delay(attempt int, err error, rnd func() float64) time.Duration {
	ceiling := p.max
	if attempt < 62 && p.base > 0 {
		if c := p.base << attempt; c > 0 && c < p.max {
			ceiling = c
		}
	}
	d := time.Duration(rnd() * float64(ceiling))
	if ra := retryAfterOf(err); ra > 0 {
		d = ra + time.Duration(rnd()*float64(p.base))
	}
	if p.maxWait > 0 && d > p.maxWait {
		d = p.maxWait
	}
	return d
}
