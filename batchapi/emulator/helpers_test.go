package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests talk to the emulator over real loopback HTTP with bodies they build themselves,
// independently of the batchapi client.

const (
	testAccount = defaultAccountID
	testToken   = defaultAPIToken
)

func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// envelope is the test's own reading of the v4 envelope.
type envelope struct {
	Success *bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Messages []json.RawMessage `json:"messages"`
	Result   json.RawMessage   `json:"result"`
}

type result struct {
	status int
	header http.Header
	raw    []byte
	env    envelope
}

// code is the first error code, or 0.
func (r result) code() int {
	if len(r.env.Errors) == 0 {
		return 0
	}
	return r.env.Errors[0].Code
}

func (r result) ok() bool { return r.env.Success != nil && *r.env.Success }

// image decodes result as an image object, as a map so absent keys can be checked.
func (r result) fields(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.env.Result, &m); err != nil {
		t.Fatalf("result %s is not an object: %v", r.env.Result, err)
	}
	return m
}

type testImage struct {
	ID                string          `json:"id"`
	Filename          string          `json:"filename"`
	Meta              json.RawMessage `json:"meta"`
	Creator           *string         `json:"creator"`
	RequireSignedURLs bool            `json:"requireSignedURLs"`
	Uploaded          string          `json:"uploaded"`
	Variants          []string        `json:"variants"`
	Draft             bool            `json:"draft"`
}

func (r result) image(t testing.TB) testImage {
	t.Helper()
	var img testImage
	if err := json.Unmarshal(r.env.Result, &img); err != nil {
		t.Fatalf("result %s: %v", r.env.Result, err)
	}
	return img
}

// want fails the test unless the answer has the status and (if code != 0) the error code.
func (r result) want(t testing.TB, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if code == 0 {
		if !r.ok() || len(r.env.Errors) != 0 {
			t.Fatalf("want success, got %s", r.raw)
		}
		return
	}
	if r.ok() || r.code() != code {
		t.Fatalf("code %d, want %d; body %s", r.code(), code, r.raw)
	}
}

type client struct {
	t     testing.TB
	s     *Server
	token string // bearer token; "" = none
	batch bool   // address the batch host
}

func (s *Server) global(t testing.TB) *client {
	return &client{t: t, s: s, token: testToken}
}

func (s *Server) batchClient(t testing.TB) *client {
	t.Helper()
	r := s.global(t).do("GET", "v1/batch_token", nil, "")
	r.want(t, 200, 0)
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expiresAt"`
	}
	if err := json.Unmarshal(r.env.Result, &tok); err != nil || tok.Token == "" {
		t.Fatalf("batch token result %s: %v", r.env.Result, err)
	}
	return &client{t: t, s: s, token: tok.Token, batch: true}
}

func (c *client) url(path string) string {
	if c.batch {
		return c.s.BatchURL() + "/images/" + path
	}
	return c.s.APIURL() + "/accounts/" + testAccount + "/images/" + path
}

// do sends a request to path (relative to .../images/) on the client's host.
func (c *client) do(method, path string, body io.Reader, contentType string) result {
	c.t.Helper()
	return c.doURL(method, c.url(path), body, contentType)
}

func (c *client) doURL(method, u string, body io.Reader, contentType string) result {
	c.t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	r := result{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.env); err != nil {
			c.t.Fatalf("%s %s: body %q is not JSON: %v", method, u, raw, err)
		}
	}
	return r
}

// field is one multipart field; file fields have a filename.
type field struct {
	name, value, filename string
}

func fileField(name string, content []byte) field {
	return field{name: "file", value: string(content), filename: name}
}

func multipartForm(t testing.TB, fields ...field) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		var w io.Writer
		var err error
		if f.filename != "" {
			w, err = mw.CreateFormFile(f.name, f.filename)
		} else {
			w, err = mw.CreateFormField(f.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, f.value)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func (c *client) upload(fields ...field) result {
	c.t.Helper()
	body, ct := multipartForm(c.t, fields...)
	return c.do("POST", "v1", body, ct)
}

func escape(id string) string { return url.PathEscape(id) }

// ---- images made by the tests ----

func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func grayPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 3), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gifBytes(t testing.TB, w, h, frames int) []byte {
	t.Helper()
	g := &gif.GIF{}
	for i := 0; i < frames; i++ {
		p := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for x := 0; x < w; x++ {
			p.SetColorIndex(x, (x+i)%h, uint8(i*7))
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

func box(typ string, payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(8+len(body)))
	b.WriteString(typ)
	b.Write(body)
	return b.Bytes()
}

// heifBytes is a minimal HEIF container (ftyp, meta with one ispe, mdat): enough for the
// emulator's structural check, which does not decode HEVC or AV1.
func heifBytes(brand string, w, h int) []byte {
	ispe := make([]byte, 12)
	binary.BigEndian.PutUint32(ispe[4:8], uint32(w))
	binary.BigEndian.PutUint32(ispe[8:12], uint32(h))
	return bytes.Join([][]byte{
		box("ftyp", []byte(brand), []byte{0, 0, 0, 0}, []byte("mif1"), []byte(brand)),
		box("meta", []byte{0, 0, 0, 0}, box("iprp", box("ipco", box("ispe", ispe)))),
		box("mdat", []byte{1, 2, 3, 4}),
	}, nil)
}
