package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGetPatchDelete(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	content := pngBytes(t, 4, 4)
	c.upload(fileField("b.png", content), field{name: "id", value: "a/b c.png"},
		field{name: "metadata", value: `{"keep":false,"x":1}`}, field{name: "creator", value: "me"}).want(t, 200, 0)
	before, _ := s.Emulator.Image("a/b c.png")

	// The escaped and the raw form of an ID with a slash name the same image.
	for _, p := range []string{"v1/a%2Fb%20c.png", "v1/a/b%20c.png"} {
		r := c.do("GET", p, nil, "")
		r.want(t, 200, 0)
		if img := r.image(t); img.ID != "a/b c.png" || string(img.Meta) != `{"keep":false,"x":1}` {
			t.Errorf("GET %s = %+v", p, img)
		}
	}
	c.do("GET", "v1/"+escape("a/missing.png"), nil, "").want(t, 404, 5404)

	// PATCH replaces metadata wholesale and leaves omitted fields alone.
	r := c.do("PATCH", "v1/"+escape("a/b c.png"), strings.NewReader(`{"metadata":{"y":2}}`), "application/json")
	r.want(t, 200, 0)
	img := r.image(t)
	if string(img.Meta) != `{"y":2}` || img.Creator == nil || *img.Creator != "me" {
		t.Errorf("after PATCH metadata: %+v", img)
	}
	// null is "leave as is"; creator "" clears.
	r = c.do("PATCH", "v1/"+escape("a/b c.png"), strings.NewReader(`{"metadata":null,"creator":""}`), "application/json")
	r.want(t, 200, 0)
	if img := r.image(t); string(img.Meta) != `{"y":2}` || img.Creator != nil {
		t.Errorf("after PATCH creator: %+v", img)
	}
	after, _ := s.Emulator.Image("a/b c.png")
	if after.SHA256 != before.SHA256 || !after.Uploaded.Equal(before.Uploaded) {
		t.Errorf("PATCH changed content or upload time: %+v -> %+v", before, after)
	}

	patchErrors := []struct {
		body string
		code int
	}{
		{`{"requireSignedURLs":true}`, 5400}, // custom ID
		{`{"metadata":[1]}`, 5400},
		{`{"metadata":{"k":"` + strings.Repeat("v", 1100) + `"}}`, 5400},
		{`{"creator":5}`, 5400},
		{`{"requireSignedURLs":"yes"}`, 5400},
		{`not json`, 5400},
		{`[]`, 5400},
	}
	for _, tt := range patchErrors {
		c.do("PATCH", "v1/"+escape("a/b c.png"), strings.NewReader(tt.body), "application/json").want(t, 400, tt.code)
	}
	c.do("PATCH", "v1/nope.png", strings.NewReader(`{}`), "application/json").want(t, 404, 5404)

	// requireSignedURLs may be set on a generated-ID image.
	r = c.upload(fileField("g.png", content))
	gen := r.image(t).ID
	r = c.do("PATCH", "v1/"+gen, strings.NewReader(`{"requireSignedURLs":true}`), "application/json")
	r.want(t, 200, 0)
	if !r.image(t).RequireSignedURLs {
		t.Error("requireSignedURLs not set")
	}

	// DELETE answers result {}; then the image is gone everywhere.
	r = c.do("DELETE", "v1/"+escape("a/b c.png"), nil, "")
	r.want(t, 200, 0)
	if string(r.env.Result) != "{}" {
		t.Errorf("delete result = %s", r.env.Result)
	}
	c.do("DELETE", "v1/"+escape("a/b c.png"), nil, "").want(t, 404, 5404)
	c.do("GET", "v1/"+escape("a/b c.png"), nil, "").want(t, 404, 5404)
	if _, ok := s.Emulator.Image("a/b c.png"); ok {
		t.Error("deleted image still inspectable")
	}
	// A deleted custom ID can be used again at once.
	c.upload(fileField("b.png", content), field{name: "id", value: "a/b c.png"}).want(t, 200, 0)
}

func TestStatsBlobListV1(t *testing.T) {
	s := newServer(t, Options{ImageQuota: 3})
	c := s.global(t)
	content := jpegBytes(t, 10, 10)
	for i := range 3 {
		c.upload(fileField("x.jpg", content), field{name: "id", value: fmt.Sprintf("i%d.jpg", i)}).want(t, 200, 0)
	}
	r := c.do("GET", "v1/stats", nil, "")
	r.want(t, 200, 0)
	if string(r.env.Result) != `{"count":{"allowed":3,"current":3}}` {
		t.Errorf("stats = %s", r.env.Result)
	}
	c.upload(fileField("x.jpg", content)).want(t, 403, 5453)

	r = c.do("GET", "v1/i1.jpg/blob", nil, "")
	if r.status != 200 || r.header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(r.raw, content) {
		t.Errorf("blob: %d %s, %d bytes", r.status, r.header.Get("Content-Type"), len(r.raw))
	}
	c.do("GET", "v1/nope.jpg/blob", nil, "").want(t, 404, 5404)

	r = c.do("GET", "v1?per_page=10&page=1", nil, "")
	r.want(t, 200, 0)
	var v1 struct {
		Images []testImage `json:"images"`
	}
	json.Unmarshal(r.env.Result, &v1)
	if len(v1.Images) != 3 || v1.Images[0].ID != "i0.jpg" {
		t.Errorf("list v1 = %s", r.env.Result)
	}
	c.do("GET", "v1?page=2&per_page=10", nil, "").want(t, 200, 0)
	c.do("GET", "v1?per_page=5", nil, "").want(t, 400, 5400)
}

func TestAuthAndRoutesGlobal(t *testing.T) {
	s := newServer(t, Options{})
	noAuth := &client{t: t, s: s}
	noAuth.do("GET", "v2", nil, "").want(t, 403, 10000)
	wrong := &client{t: t, s: s, token: "not-the-token"}
	wrong.do("GET", "v2", nil, "").want(t, 403, 10000)
	batch := s.batchClient(t)
	batchOnGlobal := &client{t: t, s: s, token: batch.token}
	batchOnGlobal.do("GET", "v2", nil, "").want(t, 403, 10000)
	basic := s.global(t)
	basic.doURL("GET", s.APIURL()+"/accounts/"+testAccount+"/images/v2", nil, "").want(t, 200, 0)

	c := s.global(t)
	c.doURL("GET", s.APIURL()+"/accounts/00000000000000000000000000000000/images/v2", nil, "").want(t, 403, 10000)
	c.doURL("GET", s.APIURL()+"/accounts/not-an-account/images/v2", nil, "").want(t, 400, 7003)
	for _, tt := range []struct{ method, path string }{
		{"GET", "v3"},
		{"PUT", "v1/x.png"},
		{"POST", "v2"},
		{"GET", "v2/direct_upload"},
		{"DELETE", "v1"},
	} {
		c.do(tt.method, tt.path, nil, "").want(t, 404, 7003)
	}
	c.doURL("GET", s.APIURL()+"/zones", nil, "").want(t, 404, 7003)
	c.doURL("GET", s.URL+"/elsewhere", nil, "").want(t, 404, 7003)
	if n := s.Emulator.Calls()[CallsUnauthorized]; n != 5 {
		t.Errorf("unauthorized calls = %d, want 5", n)
	}
}

func TestBatchHost(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now, TokenTTL: time.Minute})
	b := s.batchClient(t)
	content := pngBytes(t, 6, 6)

	// Every batch operation works with the token.
	b.upload(fileField("p.png", content), field{name: "id", value: "dir/p.png"}).want(t, 200, 0)
	b.do("GET", "v1/"+escape("dir/p.png"), nil, "").want(t, 200, 0)
	b.do("GET", "v1/dir/p.png", nil, "").want(t, 200, 0)
	b.do("PATCH", "v1/"+escape("dir/p.png"), strings.NewReader(`{"metadata":{"a":1}}`), "application/json").want(t, 200, 0)
	b.do("GET", "v2", nil, "").want(t, 200, 0)
	body, ct := multipartForm(t, field{name: "id", value: "du.png"})
	b.do("POST", "v2/direct_upload", body, ct).want(t, 200, 0)
	b.do("DELETE", "v1/"+escape("dir/p.png"), nil, "").want(t, 200, 0)
	calls := s.Emulator.Calls()
	if calls[CallsBatch] != 7 || calls[CallsGlobal] != 1 || calls[RouteBatchToken] != 1 {
		t.Errorf("calls = %v", calls)
	}

	// Routes the batch host does not serve: bare body, string code.
	for _, tt := range []struct{ method, path string }{
		{"GET", "v1/batch_token"}, {"GET", "v1/stats"}, {"GET", "v1/x.png/blob"}, {"GET", "v1"},
		{"PUT", "v1/x.png"}, {"POST", "v2"}, {"GET", "v9"},
	} {
		r := b.do(tt.method, tt.path, nil, "")
		if r.status != 403 || strings.TrimSpace(string(r.raw)) != `{"code":"103","message":"forbidden endpoint"}` {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.status, r.raw)
		}
	}
	s.Emulator.ForbidBatchRoute(RouteUpload)
	r := b.upload(fileField("p.png", content))
	if r.status != 403 || !bytes.Contains(r.raw, []byte(`"code":"103"`)) {
		t.Errorf("forbidden upload: %d %s", r.status, r.raw)
	}
	b.do("GET", "v2", nil, "").want(t, 200, 0) // other routes unaffected

	// Bad tokens: the API token, a malformed one, none.
	(&client{t: t, s: s, token: testToken, batch: true}).do("GET", "v2", nil, "").want(t, 401, 10000)
	(&client{t: t, s: s, token: "x.y.z", batch: true}).do("GET", "v2", nil, "").want(t, 401, 10000)
	(&client{t: t, s: s, batch: true}).do("GET", "v2", nil, "").want(t, 401, 10000)

	// Expiry by the clock.
	clock.Advance(59 * time.Second)
	b.do("GET", "v2", nil, "").want(t, 200, 0)
	clock.Advance(time.Second)
	b.do("GET", "v2", nil, "").want(t, 401, 10000)

	// ExpireTokens, and SetTokenTTL for tokens minted later.
	b2 := s.batchClient(t)
	b2.do("GET", "v2", nil, "").want(t, 200, 0)
	s.Emulator.ExpireTokens()
	b2.do("GET", "v2", nil, "").want(t, 401, 10000)
	s.Emulator.SetTokenTTL(time.Hour)
	r = s.global(t).do("GET", "v1/batch_token", nil, "")
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expiresAt"`
	}
	json.Unmarshal(r.env.Result, &tok)
	exp, err := time.Parse(time.RFC3339Nano, tok.ExpiresAt)
	if err != nil || !exp.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("expiresAt %q (%v), want now+1h", tok.ExpiresAt, err)
	}
	if parts := strings.Split(tok.Token, "."); len(parts) != 3 {
		t.Errorf("token is not JWT-shaped")
	}
}

func TestBareBatchAuthErrors(t *testing.T) {
	s := newServer(t, Options{BareBatchAuthErrors: true})
	r := (&client{t: t, s: s, token: "bogus", batch: true}).do("GET", "v2", nil, "")
	var bare struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.raw, &bare); err != nil || r.status != 401 || bare.Code != "10000" {
		t.Errorf("bare auth error: %d %s (%v)", r.status, r.raw, err)
	}
	if bytes.Contains(r.raw, []byte("bogus")) {
		t.Error("the error echoes the token")
	}
}

func TestDirectUpload(t *testing.T) {
	clock := newClock()
	s := newServer(t, Options{Now: clock.Now})
	c := s.global(t)
	content := gifBytes(t, 12, 12, 2)

	body, ct := multipartForm(t, field{name: "id", value: "drafts/one.gif"},
		field{name: "metadata", value: `{"m":1}`}, field{name: "creator", value: "cr"})
	r := c.do("POST", "v2/direct_upload", body, ct)
	r.want(t, 200, 0)
	if !bytes.Contains(r.raw, []byte(`"result_info":null`)) {
		t.Errorf("no result_info: %s", r.raw)
	}
	var du struct {
		ID        string `json:"id"`
		UploadURL string `json:"uploadURL"`
	}
	json.Unmarshal(r.env.Result, &du)
	if du.ID != "drafts/one.gif" || !strings.HasPrefix(du.UploadURL, s.URL+"/upload/"+defaultAccountHash+"/") {
		t.Fatalf("direct upload result %s", r.env.Result)
	}
	// The draft: draft:true on GET, not listed, not delivered.
	r = c.do("GET", "v1/"+escape(du.ID), nil, "")
	r.want(t, 200, 0)
	if !r.image(t).Draft {
		t.Errorf("draft not marked: %s", r.raw)
	}
	if n := len(listAll(t, c, "")); n != 0 {
		t.Errorf("draft listed: %d images", n)
	}
	// Same custom ID again: conflict.
	body, ct = multipartForm(t, field{name: "id", value: "drafts/one.gif"})
	c.do("POST", "v2/direct_upload", body, ct).want(t, 409, 5409)

	// Fill it, with no auth.
	anon := &client{t: t, s: s}
	body, ct = multipartForm(t, fileField("one.gif", content))
	r = anon.doURL("POST", du.UploadURL, body, ct)
	r.want(t, 200, 0)
	img := r.image(t)
	if img.Draft || string(img.Meta) != `{"m":1}` || img.Creator == nil || *img.Creator != "cr" {
		t.Errorf("filled image %s", r.raw)
	}
	if n := len(listAll(t, c, "")); n != 1 {
		t.Errorf("filled image not listed (%d)", n)
	}
	body, ct = multipartForm(t, fileField("one.gif", content))
	anon.doURL("POST", du.UploadURL, body, ct).want(t, 409, 5409)
	// A bad file is refused like an upload.
	body, ct = multipartForm(t)
	r = c.do("POST", "v2/direct_upload", body, ct)
	r.want(t, 200, 0)
	json.Unmarshal(r.env.Result, &du)
	if !isUUID(du.ID) {
		t.Errorf("generated draft id %q", du.ID)
	}
	body, ct = multipartForm(t, fileField("x.gif", []byte("GIF89a broken")))
	anon.doURL("POST", du.UploadURL, body, ct).want(t, 415, 5455)
	// Expired drafts vanish.
	clock.Advance(31 * time.Minute)
	body, ct = multipartForm(t, fileField("one.gif", content))
	anon.doURL("POST", du.UploadURL, body, ct).want(t, 404, 5404)
	c.do("GET", "v1/"+du.ID, nil, "").want(t, 404, 5404)
	anon.doURL("POST", s.URL+"/upload/wronghash/"+du.ID, body, ct).want(t, 404, 5404)

	// Expiry bounds and form rules.
	for _, tt := range []struct {
		fields []field
		code   int
	}{
		{[]field{{name: "expiry", value: clock.Now().Add(time.Minute).Format(time.RFC3339)}}, 5400},
		{[]field{{name: "expiry", value: clock.Now().Add(7 * time.Hour).Format(time.RFC3339)}}, 5400},
		{[]field{{name: "expiry", value: "tomorrow"}}, 5400},
		{[]field{{name: "id", value: "x.txt"}}, 5411},
		{[]field{{name: "id", value: "x.png"}, {name: "requireSignedURLs", value: "true"}}, 5400},
		{[]field{{name: "metadata", value: "1"}}, 5400},
	} {
		body, ct := multipartForm(t, tt.fields...)
		c.do("POST", "v2/direct_upload", body, ct).want(t, 400, tt.code)
	}
	body, ct = multipartForm(t, field{name: "expiry", value: clock.Now().Add(5 * time.Hour).Format(time.RFC3339)})
	c.do("POST", "v2/direct_upload", body, ct).want(t, 200, 0)
	c.do("POST", "v2/direct_upload", strings.NewReader(`{"expiry":"x"}`), "application/json").want(t, 415, 5415)
}

func TestDelivery(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	content := pngBytes(t, 7, 7)
	id := "d/sp ace%?#.png"
	r := c.upload(fileField("x.png", content), field{name: "id", value: id})
	r.want(t, 200, 0)
	for _, v := range r.image(t).Variants {
		res, err := http.Get(v)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !bytes.Equal(got, content) {
			t.Errorf("GET %s: %d %s %d bytes", v, res.StatusCode, res.Header.Get("Content-Type"), len(got))
		}
	}
	base := s.URL + "/cdn-cgi/imagedelivery/" + defaultAccountHash + "/"
	res, err := http.Head(base + escapeID(id) + "/public")
	if err != nil || res.StatusCode != 200 || res.ContentLength != int64(len(content)) {
		t.Errorf("HEAD: %v %v", res, err)
	}
	for _, u := range []string{
		base + escapeID(id) + "/nosuchvariant",
		base + "missing.png/public",
		s.URL + "/cdn-cgi/imagedelivery/otherhash/" + escapeID(id) + "/public",
		base + "public",
	} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", u, res.StatusCode)
		}
	}
	// A signed-URL image is not served without a signature.
	r = c.upload(fileField("x.png", content), field{name: "requireSignedURLs", value: "true"})
	r.want(t, 200, 0)
	res, err = http.Get(r.image(t).Variants[0])
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Errorf("signed image served: %d", res.StatusCode)
	}
}
