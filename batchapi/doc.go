// Package batchapi is the HTTP client cfimgsync uses to talk to the Cloudflare Images API.
//
// Image calls go to the batch host (batch.imagedelivery.net) with short-lived batch tokens,
// because each token there allows about 200 requests per second while the global API
// (api.cloudflare.com) allows only about 1,200 requests per five minutes for the whole account.
// The client keeps a pool of batch tokens, each paced by its own rate limiter, mints and
// refreshes them on the global host under a separate limiter for the global budget, and falls
// back to the global host for an operation the batch host refuses.
//
// The client starts no goroutines and queues nothing: throughput comes from calling it from
// many goroutines. Each token needs about rate x latency calls in flight (10 at 200/s and
// 50 ms) to reach its ceiling; extra callers simply wait on the token limiters, which pace
// requests evenly rather than in bursts, so the server's limit is not tripped.
//
// Every call retries transient failures (network errors, 408, 429, 5xx) with exponential
// backoff and full jitter, honouring Retry-After. An upload without a custom ID is the one call
// that is never repeated once its body may have reached the server, because a second copy
// would be a second image: it fails with an error wrapping [ErrOutcomeUnknown] instead, for the
// caller to settle by listing.
//
// Failures from the API are [*APIError] values; use [IsNotFound], [IsAlreadyExists], [IsAuth],
// [IsTransient] and [IsPermanent] rather than comparing codes. Tokens are [Secret] values and
// never appear in an error, a log line or printed output.
package batchapi
