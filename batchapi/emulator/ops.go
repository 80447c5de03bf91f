package emulator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ---- upload ----

func (e *Emulator) upload(r *http.Request) response {
	f, errResp := e.readForm(r)
	if errResp != nil {
		return *errResp
	}
	u, hasURL := f.field("url")
	switch {
	case f.hasFile && hasURL:
		return badRequest("give either file or url, not both")
	case !f.hasFile && !hasURL:
		return badRequest("a file or a url is required")
	}
	s, errResp := settings(f)
	if errResp != nil {
		return *errResp
	}
	content, filename := f.file, f.filename
	if hasURL {
		var resp *response
		content, filename, resp = e.fetch(r.Context(), u)
		if resp != nil {
			return *resp
		}
	}
	rec, resp := e.newRecord(content, filename)
	if resp != nil {
		return *resp
	}
	rec.meta, rec.creator, rec.requireSigned = s.meta, s.creator, s.requireSigned
	if s.id != "" {
		rec.id, rec.custom = s.id, true
	}
	if resp := e.insert(rec); resp != nil {
		return *resp
	}
	return okResponse(e.wire(r, rec))
}

// newRecord checks content and returns an unsaved record for it.
func (e *Emulator) newRecord(content []byte, filename string) (*record, *response) {
	if int64(len(content)) > e.opts.MaxFileSize {
		resp := errResponse(http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("Maximum image size of %d bytes is reached", e.opts.MaxFileSize))
		return nil, &resp
	}
	info, ierr := e.inspect(content)
	if ierr != nil {
		resp := errResponse(http.StatusUnsupportedMediaType, codeBadImage, ierr.msg)
		if ierr.limit {
			resp = errResponse(http.StatusBadRequest, codeBadRequest, ierr.msg)
		}
		return nil, &resp
	}
	return &record{
		filename: filename,
		content:  content,
		sha256:   sha256.Sum256(content),
		info:     info,
	}, nil
}

// insert stores rec, giving it a generated ID unless it has a custom one, and stamps its
// upload time and sequence number.
func (e *Emulator) insert(rec *record) *response {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if rec.custom {
		if old, ok := e.images[rec.id]; ok && !e.expiredDraft(old, now) {
			resp := errResponse(http.StatusConflict, codeExists, msgExists)
			return &resp
		}
	} else {
		for rec.id == "" || e.images[rec.id] != nil {
			rec.id = generateID()
		}
	}
	if !rec.draft && e.stored >= e.opts.ImageQuota {
		resp := errResponse(http.StatusForbidden, codeQuota,
			fmt.Sprintf("The given account has reached a service limit (%d). Upgrade your plan to store more images.", e.opts.ImageQuota))
		return &resp
	}
	e.seq++
	rec.seq, rec.uploaded = e.seq, now
	e.putLocked(rec)
	return nil
}

// putLocked stores rec, replacing any record under its ID, and keeps the count of
// stored (non-draft) images.
func (e *Emulator) putLocked(rec *record) {
	if old := e.images[rec.id]; old != nil && !old.draft {
		e.stored--
	}
	if !rec.draft {
		e.stored++
	}
	e.images[rec.id] = rec
}

func (e *Emulator) removeLocked(id string) {
	if old := e.images[id]; old != nil {
		if !old.draft {
			e.stored--
		}
		delete(e.images, id)
	}
}

func (e *Emulator) expiredDraft(r *record, now time.Time) bool {
	return r.draft && !now.Before(r.draftExpiry)
}

// generateID makes an ID shaped like Cloudflare's: UUID layout, not strict RFC 4122.
func generateID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// fetch downloads a url upload. The emulator has no network: only http(s) URLs on a
// loopback address are fetched.
func (e *Emulator) fetch(ctx context.Context, raw string) ([]byte, string, *response) {
	fail := func(msg string) ([]byte, string, *response) {
		r := badRequest(msg)
		return nil, "", &r
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("url must be an absolute http or https URL")
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); !(h == "localhost" || (ip != nil && ip.IsLoopback())) {
		return fail("the emulator fetches only loopback URLs (localhost, 127.0.0.1, ::1)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("url: " + err.Error())
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		return fail("fetching url failed: " + err.Error())
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("fetching url failed: origin answered %d", res.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, e.opts.MaxFileSize+1))
	if err != nil {
		return fail("fetching url failed: " + err.Error())
	}
	return b, cleanFilename(u.Path), nil
}

// ---- details, blob, delete ----

// lookupLocked returns the live record for id; expired drafts count as missing. Records
// are never mutated once stored, so the result may be read after the lock is released.
// Callers hold e.mu (read or write).
func (e *Emulator) lookupLocked(id string) *record {
	rec := e.images[id]
	if rec == nil || e.expiredDraft(rec, e.now()) {
		return nil
	}
	return rec
}

func (e *Emulator) get(r *http.Request, id string) response {
	e.mu.RLock()
	rec := e.lookupLocked(id)
	var w wireImage
	if rec != nil {
		w = e.wire(r, rec)
	}
	e.mu.RUnlock()
	if rec == nil {
		return notFound()
	}
	return okResponse(w)
}

func (e *Emulator) blob(id string) response {
	e.mu.RLock()
	rec := e.lookupLocked(id)
	e.mu.RUnlock()
	if rec == nil || rec.draft {
		return notFound()
	}
	// Content is never modified after insert, so it is shared without copying.
	return response{status: http.StatusOK, contentType: contentType(rec.info.format), body: rec.content}
}

func (e *Emulator) delete(id string) response {
	e.mu.Lock()
	rec := e.lookupLocked(id)
	if rec != nil {
		e.removeLocked(id)
	}
	e.mu.Unlock()
	if rec == nil {
		return notFound()
	}
	return okResponse(struct{}{})
}

// ---- update ----

func (e *Emulator) update(r *http.Request, id string) response {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return badRequest("reading body: " + err.Error())
	}
	var p wirePatch
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return badRequest("the body must be a JSON object: " + err.Error())
	}
	var (
		meta       []byte
		setMeta    bool
		signed     bool
		setSigned  bool
		creator    *string
		setCreator bool
	)
	// JSON null is treated like an absent field: left as it was.
	if present(p.Metadata) {
		m, msg := checkMetadata(p.Metadata)
		if msg != "" {
			return badRequest(msg)
		}
		meta, setMeta = m, true
	}
	if present(p.RequireSignedURLs) {
		if err := json.Unmarshal(p.RequireSignedURLs, &signed); err != nil {
			return badRequest("requireSignedURLs must be a boolean")
		}
		setSigned = true
	}
	if present(p.Creator) {
		var c string
		if err := json.Unmarshal(p.Creator, &c); err != nil {
			return badRequest("creator must be a string")
		}
		if msg := checkCreator(c); msg != "" {
			return badRequest(msg)
		}
		if c != "" { // "" clears the creator
			creator = &c
		}
		setCreator = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec := e.lookupLocked(id)
	if rec == nil {
		return notFound()
	}
	if setSigned && signed && rec.custom {
		return badRequest("requireSignedURLs cannot be true for an image with a custom ID")
	}
	// Records are replaced, never mutated, so readers holding the old one stay consistent.
	n := *rec
	if setMeta {
		n.meta = meta
	}
	if setSigned {
		n.requireSigned = signed
	}
	if setCreator {
		n.creator = creator
	}
	e.putLocked(&n)
	return okResponse(e.wire(r, &n))
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// ---- list ----

// The list cursor is the (uploaded, seq) key of the last image returned. Keys only grow,
// so paging visits every image that exists throughout exactly once, whatever is added or
// deleted between pages; images added later show up at the end of an ascending listing.
func encodeCursor(r *record) string {
	var b [17]byte
	b[0] = 1 // version
	binary.BigEndian.PutUint64(b[1:9], uint64(r.uploaded.UnixNano()))
	binary.BigEndian.PutUint64(b[9:17], r.seq)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (nanos int64, seq uint64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != 1 {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), binary.BigEndian.Uint64(b[9:17]), true
}

// compareKey orders records by upload time, then by the sequence number that breaks ties
// (and keeps order when a fake clock stands still).
func compareKey(a, b *record) int {
	if c := a.uploaded.Compare(b.uploaded); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func (e *Emulator) list(r *http.Request) response {
	q := r.URL.Query()
	perPage := 1000
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 || n > e.opts.MaxPerPage {
			return badRequest(fmt.Sprintf("per_page must be a number between 10 and %d", e.opts.MaxPerPage))
		}
		perPage = n
	}
	desc := true
	switch q.Get("sort_order") {
	case "", "desc":
	case "asc":
		desc = false
	default:
		return badRequest("sort_order must be asc or desc")
	}
	for k := range q {
		if strings.HasPrefix(k, "meta.") {
			return badRequest("metadata filters are not supported by the emulator")
		}
	}
	_, filterCreator := q["creator"]
	creator := q.Get("creator")
	var (
		cursor    *record
		hasCursor bool
	)
	if v := q.Get("continuation_token"); v != "" {
		nanos, seq, ok := decodeCursor(v)
		if !ok {
			return badRequest("continuation_token is not valid")
		}
		cursor, hasCursor = &record{uploaded: time.Unix(0, nanos), seq: seq}, true
	}

	e.mu.RLock()
	var match []*record
	for _, rec := range e.images {
		if rec.draft {
			continue
		}
		if filterCreator && !creatorIs(rec.creator, creator) {
			continue
		}
		if hasCursor && (desc && compareKey(rec, cursor) >= 0 || !desc && compareKey(rec, cursor) <= 0) {
			continue // already returned on an earlier page
		}
		match = append(match, rec)
	}
	slices.SortFunc(match, func(a, b *record) int {
		if desc {
			return compareKey(b, a)
		}
		return compareKey(a, b)
	})
	out := wireList{Images: make([]wireImage, 0, min(perPage, len(match)))}
	for _, rec := range match[:min(perPage, len(match))] {
		out.Images = append(out.Images, e.wire(r, rec))
	}
	if len(match) > perPage {
		tok := encodeCursor(match[perPage-1])
		out.ContinuationToken = &tok
	}
	e.mu.RUnlock()
	return okResponse(out)
}

func creatorIs(c *string, want string) bool {
	if want == "" {
		return c == nil
	}
	return c != nil && *c == want
}

// listV1 is the deprecated page-numbered listing: oldest first, no cursor.
func (e *Emulator) listV1(r *http.Request) response {
	q := r.URL.Query()
	page, perPage := 1, 1000
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("page must be a number from 1")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 || n > 10000 {
			return badRequest("per_page must be a number between 10 and 10000")
		}
		perPage = n
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	var all []*record
	for _, rec := range e.images {
		if !rec.draft {
			all = append(all, rec)
		}
	}
	slices.SortFunc(all, compareKey)
	out := wireListV1{Images: []wireImage{}}
	start := (page - 1) * perPage
	for i := start; i < len(all) && i < start+perPage; i++ {
		out.Images = append(out.Images, e.wire(r, all[i]))
	}
	return okResponse(out)
}

// ---- batch token, stats ----

func (e *Emulator) mintBatchToken() response {
	now := e.now()
	e.ctl.Lock()
	ttl := e.tokenTTL
	exp := now.Add(ttl)
	// Forget tokens long dead, so the map stays bounded by the mint rate.
	for k, bt := range e.tokens {
		if now.Sub(bt.expires) > time.Hour {
			delete(e.tokens, k)
		}
	}
	tok := e.signToken(exp)
	e.tokens[tok] = &batchToken{expires: exp, lim: e.newLimiter()}
	e.ctl.Unlock()
	return okResponse(wireBatchToken{Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339Nano)})
}

// signToken makes a JWT like the docs' sample (kid "batch", sub = account hash). The
// emulator checks tokens by lookup; the signature only makes them unguessable.
func (e *Emulator) signToken(exp time.Time) string {
	enc := base64.RawURLEncoding
	var jti [12]byte
	rand.Read(jti[:])
	head := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"batch"}`))
	claims, _ := json.Marshal(map[string]any{
		"sub": e.opts.AccountHash, "exp": exp.Unix(), "jti": enc.EncodeToString(jti[:]),
	})
	msg := head + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, e.signKey)
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

func (e *Emulator) stats() response {
	var s wireStats
	e.mu.RLock()
	s.Count.Current = e.stored
	e.mu.RUnlock()
	s.Count.Allowed = e.opts.ImageQuota
	return okResponse(s)
}

// ---- direct upload ----

func (e *Emulator) directUpload(r *http.Request) response {
	f, errResp := e.readForm(r)
	if errResp != nil {
		return *errResp
	}
	s, errResp := settings(f)
	if errResp != nil {
		return *errResp
	}
	now := e.now()
	expiry := now.Add(30 * time.Minute)
	if v, ok := f.field("expiry"); ok {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		if err != nil {
			return badRequest("expiry must be an RFC 3339 date-time")
		}
		if t.Before(now.Add(2*time.Minute)) || t.After(now.Add(6*time.Hour)) {
			return badRequest("expiry must be between 2 minutes and 6 hours from now")
		}
		expiry = t
	}
	rec := &record{
		meta: s.meta, creator: s.creator, requireSigned: s.requireSigned,
		draft: true, draftExpiry: expiry,
	}
	if s.id != "" {
		rec.id, rec.custom = s.id, true
	}
	if resp := e.insert(rec); resp != nil {
		return *resp
	}
	res := wireDirectUpload{
		ID:        rec.id,
		UploadURL: "http://" + requestHost(r) + "/upload/" + e.opts.AccountHash + "/" + escapeID(rec.id),
	}
	// The docs' example carries "result_info": null.
	return envelopeResponse(http.StatusOK, wireEnvelope{
		Success: true, Errors: []wireMessage{}, Messages: []wireMessage{}, Result: res,
		ResultInfo: json.RawMessage("null"),
	})
}

// fillDraft is the POST to a direct upload's uploadURL.
func (e *Emulator) fillDraft(r *http.Request, id string) response {
	f, errResp := e.readForm(r)
	if errResp != nil {
		return *errResp
	}
	if !f.hasFile {
		return badRequest("a file is required")
	}
	e.mu.RLock()
	draft := e.lookupLocked(id)
	e.mu.RUnlock()
	switch {
	case draft == nil:
		return notFound()
	case !draft.draft:
		return errResponse(http.StatusConflict, codeExists, msgExists)
	}
	rec, resp := e.newRecord(f.file, f.filename)
	if resp != nil {
		return *resp
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.lookupLocked(id)
	if cur == nil || !cur.draft {
		// Deleted, expired or filled while the file was being checked.
		return errResponse(http.StatusConflict, codeExists, msgExists)
	}
	if e.stored >= e.opts.ImageQuota {
		return errResponse(http.StatusForbidden, codeQuota,
			fmt.Sprintf("The given account has reached a service limit (%d). Upgrade your plan to store more images.", e.opts.ImageQuota))
	}
	rec.id, rec.custom = cur.id, cur.custom
	rec.meta, rec.creator, rec.requireSigned = cur.meta, cur.creator, cur.requireSigned
	e.seq++
	rec.seq, rec.uploaded = e.seq, now
	e.putLocked(rec)
	return okResponse(e.wire(r, rec))
}

// ---- delivery ----

func (e *Emulator) serveDelivery(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hash, rest, _ := strings.Cut(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if hash != e.opts.AccountHash || i <= 0 {
		http.Error(w, "ERROR 9404: image not found", http.StatusNotFound)
		return
	}
	escID, variant := rest[:i], rest[i+1:]
	id, err := url.PathUnescape(escID)
	if err != nil || !slices.Contains(e.opts.Variants, variant) {
		http.Error(w, "ERROR 9404: image or variant not found", http.StatusNotFound)
		return
	}
	e.mu.RLock()
	rec := e.lookupLocked(id)
	e.mu.RUnlock()
	switch {
	case rec == nil || rec.draft:
		http.Error(w, "ERROR 9404: image not found", http.StatusNotFound)
		return
	case rec.requireSigned:
		// Signed URLs need the account's signing key, which the emulator does not model.
		http.Error(w, "ERROR 9403: this image requires a signed URL", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType(rec.info.format))
	h.Set("Content-Length", strconv.Itoa(len(rec.content)))
	h.Set("ETag", `"`+hex.EncodeToString(rec.sha256[:])+`"`)
	h.Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(rec.content)
	}
}

// ---- wire form ----

func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return "localhost"
}

// escapeID escapes each /-separated segment of an ID for a URL path, keeping the slashes.
func escapeID(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func (e *Emulator) wire(r *http.Request, rec *record) wireImage {
	base := "http://" + requestHost(r) + "/cdn-cgi/imagedelivery/" + e.opts.AccountHash + "/" + escapeID(rec.id) + "/"
	vs := make([]string, len(e.opts.Variants))
	for i, v := range e.opts.Variants {
		vs[i] = base + v
	}
	return wireImage{
		ID:                rec.id,
		Filename:          rec.filename,
		Meta:              rec.meta,
		Creator:           rec.creator,
		RequireSignedURLs: rec.requireSigned,
		Uploaded:          rec.uploaded.UTC().Format(uploadedLayout),
		Variants:          vs,
		Draft:             rec.draft,
	}
}
