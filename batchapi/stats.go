package batchapi

import (
	"sync/atomic"
	"time"
)

// The operations, used in Stats, APIError.Op and OnRetry.
const (
	OpBatchToken   = "batch_token"
	OpUpload       = "upload"
	OpGet          = "get"
	OpUpdate       = "update"
	OpDelete       = "delete"
	OpList         = "list"
	OpDirectUpload = "direct_upload"
)

type op int

const (
	opBatchToken op = iota
	opUpload
	opGet
	opUpdate
	opDelete
	opList
	opDirectUpload
	numOps
)

var opNames = [numOps]string{OpBatchToken, OpUpload, OpGet, OpUpdate, OpDelete, OpList, OpDirectUpload}

func (o op) String() string { return opNames[o] }

// RequestCounts counts the HTTP exchanges of one operation by outcome. Status4xx excludes
// 429, which has its own counter; NetErr counts requests that got no HTTP answer.
type RequestCounts struct {
	Status2xx, Status3xx, Status4xx, Status429, Status5xx, NetErr int64
}

// Total is the number of requests sent.
func (r RequestCounts) Total() int64 {
	return r.Status2xx + r.Status3xx + r.Status4xx + r.Status429 + r.Status5xx + r.NetErr
}

// Stats is a snapshot of the client's counters since New.
type Stats struct {
	Requests map[string]RequestCounts // by operation name (OpUpload, ...); batch and global host together
	Retries  int64                    // waits before another attempt (auth refreshes and fallbacks excluded)
	// LimiterWait is the time calls spent waiting on the per-token and global rate limiters,
	// summed over calls; RetryWait the time spent in backoff and Retry-After waits.
	LimiterWait time.Duration
	RetryWait   time.Duration
	// TokensMinted counts batch tokens fetched; AuthRefreshes the tokens dropped after a
	// 401/403 from the batch host; Fallbacks the operations switched to the global host.
	TokensMinted  int64
	AuthRefreshes int64
	Fallbacks     int64
	// OutcomeUnknown counts uploads without custom ID that ended with ErrOutcomeUnknown.
	OutcomeUnknown int64
}

const (
	class2xx = iota
	class3xx
	class4xx
	class429
	class5xx
	classNet
	numClasses
)

type counters struct {
	requests       [numOps][numClasses]atomic.Int64
	retries        atomic.Int64
	limiterWait    atomic.Int64
	retryWait      atomic.Int64
	tokensMinted   atomic.Int64
	authRefreshes  atomic.Int64
	fallbacks      atomic.Int64
	outcomeUnknown atomic.Int64
}

func (c *counters) request(o op, status int) {
	cl := classNet
	switch {
	case status == 0:
	case status == 429:
		cl = class429
	case status >= 500:
		cl = class5xx
	case status >= 400:
		cl = class4xx
	case status >= 300:
		cl = class3xx
	default:
		cl = class2xx
	}
	c.requests[o][cl].Add(1)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Requests:       make(map[string]RequestCounts, numOps),
		Retries:        c.retries.Load(),
		LimiterWait:    time.Duration(c.limiterWait.Load()),
		RetryWait:      time.Duration(c.retryWait.Load()),
		TokensMinted:   c.tokensMinted.Load(),
		AuthRefreshes:  c.authRefreshes.Load(),
		Fallbacks:      c.fallbacks.Load(),
		OutcomeUnknown: c.outcomeUnknown.Load(),
	}
	for o := range numOps {
		r := &c.requests[o]
		rc := RequestCounts{
			Status2xx: r[class2xx].Load(),
			Status3xx: r[class3xx].Load(),
			Status4xx: r[class4xx].Load(),
			Status429: r[class429].Load(),
			Status5xx: r[class5xx].Load(),
			NetErr:    r[classNet].Load(),
		}
		if rc.Total() > 0 {
			s.Requests[o.String()] = rc
		}
	}
	return s
}
