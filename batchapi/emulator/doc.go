// Package emulator is an in-memory Cloudflare Images API for tests, the demo and users
// trying cfimgsync without an account. It is shaped like net/http/httptest: New returns
// an http.Handler, NewServer starts it on a loopback port, Serve runs it on a listener
// until a context ends.
//
// It is written from the API reference (../shared/docs/cloudflare-images-api.md) with its
// own wire types, and never imports package batchapi, so a wire mistake in the client
// cannot hide in a shared struct.
//
// # Routes (one listener)
//
//   - Global host, Authorization: Bearer <APIToken>, under
//     /client/v4/accounts/{account_id}/images/: GET v1/batch_token, POST v1 (upload),
//     GET|PATCH|DELETE v1/{image_id}, GET v2 (list), POST v2/direct_upload, GET v1/stats,
//     GET v1/{image_id}/blob, and the deprecated GET v1 (page-numbered list).
//   - Batch host, Authorization: Bearer <batch token>, under /images/: the same
//     operations except batch_token, stats, blob and list v1.
//   - POST /upload/{account_hash}/{image_id}: the uploadURL of a direct upload (no auth).
//   - GET /cdn-cgi/imagedelivery/{account_hash}/{image_id}/{variant}: the original bytes.
//
// Image IDs in paths may arrive escaped (a%2Fb.jpg) or raw (a/b.jpg); both name the same
// image. Variant and upload URLs are built from the request's Host with scheme http, and
// escape each /-separated ID segment.
//
// # Choices where the reference is UNCERTAIN
//
// Authentication and routing:
//   - Missing or wrong API token on the global host: 403, code 10000 "Authentication
//     error". A batch token there is just a wrong API token (10000).
//   - Wrong account id with a valid token: 403/10000 if it is 32 hex digits, else
//     400/7003 "Could not route to ..., perhaps your object identifier is invalid?".
//   - Missing, unknown, malformed or expired batch token on the batch host: 401 with the
//     v4 envelope and code 10000; Options.BareBatchAuthErrors switches to the bare
//     {"code":"10000","message":...} body. The route is resolved before the token, so a
//     route the batch host does not serve answers 403 {"code":"103","message":"forbidden
//     endpoint"} (no envelope, string code) whatever the token.
//   - Unknown route or wrong method on the global host, or an unknown path: 404/7003.
//   - GET v1/x/blob with a raw slash is the blob route for image "x"; an image whose ID
//     ends in "/blob" must be fetched escaped (x%2Fblob).
//
// Rate limits:
//   - Batch tokens: TokenRate requests/second per token (x/time/rate, burst = one
//     second's worth). Over it: 429, envelope code 971, Retry-After = whole seconds until
//     the bucket has room (at least 1). The batch host's real 429 body is undocumented.
//   - Global host: GlobalBudget requests per GlobalWindow per API token, as a fixed window
//     that opens with the first request. The request that exceeds it blocks every
//     global call for a whole GlobalWindow from that moment (the reference: "exceeding
//     blocks all calls for the next 5 minutes"): 429/971 with Retry-After = the seconds
//     left in the block (rounded up). Minting a batch token counts; batch-host
//     calls do not. Refused calls count only as "throttled".
//   - Batch token lifetime: TokenTTL (default 15 minutes). Tokens are JWTs like the docs'
//     sample (kid "batch", sub = account hash, exp = expiresAt); expiresAt is RFC 3339
//     with nanoseconds.
//
// Uploads (v1 and direct-upload targets):
//   - Only multipart/form-data: anything else is 415/5415. The body is streamed; a file
//     part over MaxFileSize (default 10 MiB; the docs say "10 MB") is refused with
//     413/5413 as soon as the limit is passed.
//   - Both or neither of file and url: 400/5400. A duplicated field or file: 400/5400.
//   - url: the emulator has no network. Only http(s) URLs whose host is localhost or a
//     loopback IP are fetched (no redirects followed); any other URL, or an origin that
//     does not answer 200, is 400/5400. The filename is the URL's base name.
//   - The format is sniffed from the bytes, never the name or the part's Content-Type.
//     Unknown, empty, truncated or corrupt content: 415/5455. Nothing is ever decoded
//     into a full-size pixel buffer above 4 megapixels. PNG: chunk CRCs, IHDR first, IEND
//     present, the IDAT zlib stream inflated to nowhere with every scanline's filter byte
//     and the total length checked (Adler-32 too, up to 32 MiB of pixel data). JPEG:
//     segments and entropy data walked up to EOI, every component scanned and, for a
//     progressive JPEG, every coefficient refined to the last bit (a progressive file
//     cut after a few scans with EOI appended is refused, although lenient decoders
//     show it); decoded fully up to 4 megapixels. GIF: blocks up to the trailer, each
//     frame's LZW data decoded to nowhere. WebP: RIFF chunk sizes, still images and
//     each animation frame decoded (up to 4 megapixels). SVG: well-formed XML with an
//     <svg> root. HEIC/AVIF: box structure, meta and mdat present, size from ispe (the
//     largest one; HEVC/AV1 data is not decoded).
//   - Pixel limits from the content: 12,000 px per side (AVIF 1,200), 100 megapixels, and
//     animations (GIF, WebP, APNG) canvas x frames over MaxAnimationArea (default 100
//     megapixels; an older page said 50). Over a limit: 400/5400 with a message naming
//     the limit and the value. SVG has no pixel limits.
//   - HEIC and AVIF are accepted by default (AllowHEIC, AllowAVIF).
//   - An empty id field means no custom ID. Custom ID rules, applied to v1 upload and
//     direct upload alike (the reference states some only for direct upload): at most
//     1024 characters (runes), valid UTF-8, no leading or trailing "/", not UUID-shaped
//     (8-4-4-4-12 hex), no "." or ".." segment (it could not round-trip in a URL), and a last
//     segment with no extension or one of jpg jpeg png gif webp svg heic heif avif (any
//     case). Otherwise 400/5411.
//   - requireSignedURLs=true with a custom ID: 400/5400 (upload, direct upload, PATCH).
//   - metadata over 1024 bytes or not a JSON object: 400/5400. It is stored compacted
//     and returned as "meta". creator over 1024 characters: 400/5400; an empty creator
//     means none (returned as null).
//   - Duplicate custom ID: 409/5409. Over ImageQuota images: 403/5453.
//   - filename is the base name of the file part, cut to 255 bytes.
//
// Other operations:
//   - PATCH takes a JSON object; an absent or null field is left as it was; metadata
//     replaces the stored object wholesale; creator "" clears the creator. Content is
//     never replaced. Body not a JSON object: 400/5400.
//   - Missing image (get, patch, delete, blob): 404/5404 "Image not found". Delete answers
//     result {}.
//   - List v2: per_page 10..MaxPerPage (default 10000), default 1000; out of range or not
//     a number is 400/5400 (not clamped). sort_order asc|desc by upload time, default
//     desc; anything else 400/5400. creator filters exactly; creator= (empty) lists images
//     without a creator. Metadata filters (meta.*) are refused with 400/5400 rather than
//     silently ignored. Drafts are not listed. The continuation_token encodes the
//     (uploaded, sequence) key of the last image returned, so paging visits every image
//     that exists throughout exactly once while others are added or deleted; images
//     uploaded after the listing started appear at the end of an ascending listing and
//     not at all in a descending one. It is null on the last page. A token that does not
//     decode is 400/5400.
//   - List v1: page from 1, per_page 10..10000 (default 1000), oldest first.
//   - Direct upload: multipart like upload; expiry (RFC 3339) must fall between now+2min
//     and now+6h (else 400/5400), default now+30min. The draft shows "draft": true in GET,
//     is not listed, and disappears when it expires. POSTing a file to uploadURL fills it
//     (same checks as upload; uploaded becomes the fill time); a missing or expired draft
//     is 404/5404, one already filled 409/5409. The response carries "result_info": null
//     as in the docs.
//   - Delivery answers plain-text 404 for a wrong account hash, variant or image, and 403
//     for an image that requires signed URLs (signing is not modelled).
//
// # Faults and inspection
//
// The knobs (SetLatency, SetFailRate, FailNext, DropResponses, ExpireTokens,
// ForbidBatchRoute, SetTokenTTL) may be turned while serving. Route names are the Route
// constants; "" means every API operation on either host. Upload targets get faults only
// when named (RouteUploadTarget); delivery never does. Injected failures use the
// envelope with a code matching the status (500/5500, 503/5503, 429/971, ...); 429 and
// 503 carry Retry-After: 1. DropResponses applies the operation and then panics with
// http.ErrAbortHandler, which net/http turns into a closed connection; Transport turns
// it into ErrDropped, and any other in-process RoundTripper must recover it.
//
// Images, Image, Content, Calls, WriteCalls, ResetCalls and Reset inspect and reset the
// state. Options.Now fakes the clock for token expiry, rate limits, upload times and
// draft expiry. Transport serves requests in process, for testing/synctest bubbles,
// where the bubble's fake clock then drives everything, latency included.
package emulator
