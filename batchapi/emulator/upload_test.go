package emulator

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var uploadedRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestUploadResponseShape(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	content := pngBytes(t, 20, 10)

	r := c.upload(fileField("boots.png", content),
		field{name: "id", value: "shop/boots.png"},
		field{name: "metadata", value: `{"path": "shop/boots.png", "n": 1}`},
		field{name: "creator", value: "cfimgsync:host:shop"})
	r.want(t, 200, 0)
	// The envelope always carries empty errors and messages arrays.
	if !bytes.Contains(r.raw, []byte(`"errors":[]`)) || !bytes.Contains(r.raw, []byte(`"messages":[]`)) {
		t.Errorf("envelope lacks empty errors/messages arrays: %s", r.raw)
	}
	m := r.fields(t)
	if _, ok := m["metadata"]; ok {
		t.Errorf("result has a metadata key; the API answers meta: %s", r.raw)
	}
	if _, ok := m["draft"]; ok {
		t.Errorf("a stored image must not carry draft: %s", r.raw)
	}
	img := r.image(t)
	if img.ID != "shop/boots.png" || img.Filename != "boots.png" {
		t.Errorf("id %q filename %q", img.ID, img.Filename)
	}
	if string(img.Meta) != `{"path":"shop/boots.png","n":1}` {
		t.Errorf("meta = %s", img.Meta)
	}
	if img.Creator == nil || *img.Creator != "cfimgsync:host:shop" {
		t.Errorf("creator = %v", img.Creator)
	}
	if !uploadedRE.MatchString(img.Uploaded) {
		t.Errorf("uploaded %q is not RFC 3339 with milliseconds in UTC", img.Uploaded)
	}
	want := []string{
		s.URL + "/cdn-cgi/imagedelivery/" + defaultAccountHash + "/shop/boots.png/public",
		s.URL + "/cdn-cgi/imagedelivery/" + defaultAccountHash + "/shop/boots.png/thumbnail",
	}
	if fmt.Sprint(img.Variants) != fmt.Sprint(want) {
		t.Errorf("variants = %v, want %v", img.Variants, want)
	}

	// Without optional fields: no meta key, creator null, a generated UUID-shaped id. An
	// empty id field counts as none.
	r = c.upload(fileField("x.png", content), field{name: "id", value: ""})
	r.want(t, 200, 0)
	m = r.fields(t)
	if _, ok := m["meta"]; ok {
		t.Errorf("meta present without metadata: %s", r.raw)
	}
	if v, ok := m["creator"]; !ok || v != nil {
		t.Errorf("creator should be null: %s", r.raw)
	}
	if id := r.image(t).ID; !isUUID(id) {
		t.Errorf("generated id %q is not UUID-shaped", id)
	}

	stored, ok := s.Emulator.Image("shop/boots.png")
	sum := sha256.Sum256(content)
	if !ok || stored.SHA256 != hex.EncodeToString(sum[:]) || stored.Size != int64(len(content)) ||
		stored.Format != FormatPNG || stored.Width != 20 || stored.Height != 10 || !stored.Custom {
		t.Errorf("stored image = %+v", stored)
	}
}

func TestUploadErrors(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	good := pngBytes(t, 8, 8)
	c.upload(fileField("a.png", good), field{name: "id", value: "taken.png"}).want(t, 200, 0)

	corruptZlib := bytes.Clone(good)
	corruptZlib[len(corruptZlib)-20] ^= 0xff // inside IDAT: CRC fails
	huge := make([]byte, 10<<20+1)
	rand.Read(huge)
	copy(huge, good[:16])

	tests := []struct {
		name   string
		fields []field
		status int
		code   int
	}{
		{"duplicate custom id", []field{fileField("a.png", good), {name: "id", value: "taken.png"}}, 409, 5409},
		{"neither file nor url", []field{{name: "id", value: "x.png"}}, 400, 5400},
		{"file and url", []field{fileField("a.png", good), {name: "url", value: "http://127.0.0.1/a.png"}}, 400, 5400},
		{"over 10 MiB", []field{fileField("big.png", huge)}, 413, 5413},
		{"text", []field{fileField("a.png", []byte("hello, not an image"))}, 415, 5455},
		{"empty", []field{fileField("a.png", nil)}, 415, 5455},
		{"truncated png", []field{fileField("a.png", good[:len(good)/2])}, 415, 5455},
		{"corrupt png", []field{fileField("a.png", corruptZlib)}, 415, 5455},
		{"too wide", []field{fileField("w.png", grayPNG(t, 12001, 1))}, 400, 5400},
		{"too tall", []field{fileField("a.png", grayPNG(t, 1, 12001))}, 400, 5400},
		{"avif over 1200 px", []field{fileField("a.avif", heifBytes("avif", 1201, 10))}, 400, 5400},
		{"metadata not object", []field{fileField("a.png", good), {name: "metadata", value: `[1,2]`}}, 400, 5400},
		{"metadata not json", []field{fileField("a.png", good), {name: "metadata", value: `{nope`}}, 400, 5400},
		{"metadata over 1024 bytes", []field{fileField("a.png", good), {name: "metadata", value: `{"k":"` + strings.Repeat("x", 1020) + `"}`}}, 400, 5400},
		{"signed with custom id", []field{fileField("a.png", good), {name: "id", value: "s.png"}, {name: "requireSignedURLs", value: "true"}}, 400, 5400},
		{"bad requireSignedURLs", []field{fileField("a.png", good), {name: "requireSignedURLs", value: "maybe"}}, 400, 5400},
		{"creator too long", []field{fileField("a.png", good), {name: "creator", value: strings.Repeat("c", 1025)}}, 400, 5400},
		{"invalid custom id", []field{fileField("a.png", good), {name: "id", value: "notes.txt"}}, 400, 5411},
		{"two files", []field{fileField("a.png", good), fileField("b.png", good)}, 400, 5400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.global(t)
			c.upload(tt.fields...).want(t, tt.status, tt.code)
		})
	}
	if n := len(s.Emulator.Images()); n != 1 {
		t.Errorf("%d images stored after refused uploads, want 1", n)
	}

	// Bodies that are not multipart/form-data.
	c.do("POST", "v1", bytes.NewReader(good), "image/png").want(t, 415, 5415)
	c.do("POST", "v1", strings.NewReader(`{"url":"x"}`), "application/json").want(t, 415, 5415)
	c.do("POST", "v1", bytes.NewReader(good), "").want(t, 415, 5415)
	// A malformed multipart body.
	c.do("POST", "v1", strings.NewReader("--zz\r\ngarbage"), "multipart/form-data; boundary=zz").want(t, 400, 5400)
}

func TestUploadSmallMaxFileSize(t *testing.T) {
	s := newServer(t, Options{MaxFileSize: 100})
	c := s.global(t)
	c.upload(fileField("a.png", pngBytes(t, 64, 64))).want(t, 413, 5413)
	small := grayPNG(t, 1, 1)
	if len(small) > 100 {
		t.Fatalf("test png is %d bytes", len(small))
	}
	c.upload(fileField("a.png", small)).want(t, 200, 0)
}

func TestCustomIDRules(t *testing.T) {
	s := newServer(t, Options{})
	good := grayPNG(t, 2, 2)
	tests := []struct {
		id    string
		valid bool
	}{
		{"a.png", true},
		{"a/b/c.JPG", true},
		{"noext", true},
		{"dir.v2/photo", true},
		{"x.jpeg", true}, {"x.gif", true}, {"x.webp", true}, {"x.svg", true},
		{"x.heic", true}, {"x.heif", true}, {"x.avif", true},
		{"ünïcödé/ß.png", true},
		{"sp ace/per%cent?q#h.png", true},
		{strings.Repeat("é", 1020) + ".png", true}, // 1024 runes, more bytes
		{strings.Repeat("a", 1021) + ".png", false},
		{"/lead.png", false},
		{"trail/", false},
		{"notes.txt", false},
		{"archive.tar.gz", false},
		{"a/./b.png", false},
		{"../b.png", false},
		{"107b9558-dd06-4bbd-5fef-9c2c16bb7900", false},
		{"107B9558-DD06-4BBD-5FEF-9C2C16BB7900", false},
		{"tab\there.png", true}, // the reference names no control-character rule
	}
	for _, tt := range tests {
		name := tt.id
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			r := s.global(t).upload(fileField("f.png", good), field{name: "id", value: tt.id})
			if tt.valid {
				r.want(t, 200, 0)
				if got := r.image(t).ID; got != tt.id {
					t.Errorf("id = %q", got)
				}
			} else {
				r.want(t, 400, 5411)
			}
		})
	}
}

func TestFormatFromBytesNotName(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	tests := []struct {
		name    string
		content []byte
		format  string
		frames  int
	}{
		{"looks-like.jpg", pngBytes(t, 5, 5), FormatPNG, 1},
		{"looks-like.png", jpegBytes(t, 40, 30), FormatJPEG, 1},
		{"noext", gifBytes(t, 10, 10, 1), FormatGIF, 1},
		{"anim.webp", gifBytes(t, 10, 10, 4), FormatGIF, 4},
		{"rose.heic", heifBytes("heic", 12000, 10), FormatHEIC, 1},
		{"rose.avif", heifBytes("avif", 1200, 1200), FormatAVIF, 1},
		{"svg.bin", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="30" height="20"><rect/></svg>`), FormatSVG, 1},
	}
	for _, tt := range tests {
		r := c.upload(fileField(tt.name, tt.content))
		r.want(t, 200, 0)
		img, _ := s.Emulator.Image(r.image(t).ID)
		if img.Format != tt.format || img.Frames != tt.frames {
			t.Errorf("%s: format %q frames %d, want %q %d", tt.name, img.Format, img.Frames, tt.format, tt.frames)
		}
	}
}

func TestGeneratedBrokenImages(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	j := jpegBytes(t, 64, 48)
	g := gifBytes(t, 16, 16, 3)
	tests := []struct {
		name    string
		content []byte
	}{
		{"jpeg without EOI", j[:len(j)-2]},
		{"jpeg cut in half", j[:len(j)/2]},
		{"jpeg header only", j[:200]},
		{"gif without trailer", g[:len(g)-1]},
		{"gif cut in frame data", g[:len(g)/2]},
		{"svg not closed", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><g>`)},
		{"html", []byte(`<!doctype html><html><body>x</body></html>`)},
		{"riff not webp", append([]byte("RIFF\x04\x00\x00\x00WAVE"), make([]byte, 20)...)},
		{"webp truncated", []byte("RIFF\xff\x00\x00\x00WEBPVP8 ")},
		{"heic without meta", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.upload(fileField("x.png", tt.content)).want(t, 415, 5455)
		})
	}
}

// Above the full-decode threshold the PNG check streams IDAT through zlib; a bad stream
// with good chunk CRCs must still be refused.
func TestLargePNGStreamed(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	big := grayPNG(t, 4100, 1000) // 4.1 MP > fullDecodeArea
	c.upload(fileField("big.png", big)).want(t, 200, 0)

	bad := corruptIDAT(t, big)
	r := c.upload(fileField("bad.png", bad))
	r.want(t, 415, 5455)
}

// corruptIDAT drops the last bytes of the zlib stream and fixes up the chunk's length and
// CRC, so only decompression can notice.
func corruptIDAT(t *testing.T, p []byte) []byte {
	t.Helper()
	i := bytes.Index(p, []byte("IDAT"))
	if i < 4 {
		t.Fatal("no IDAT")
	}
	start := i - 4
	n := int(uint32(p[start])<<24 | uint32(p[start+1])<<16 | uint32(p[start+2])<<8 | uint32(p[start+3]))
	data := bytes.Clone(p[i+4 : i+4+n])
	data = data[:len(data)/2]
	var out bytes.Buffer
	out.Write(p[:start])
	out.Write(pngChunk("IDAT", data))
	rest := p[i+4+n+4:]
	// Skip any further IDAT chunks, keep the rest (IEND).
	for bytes.HasPrefix(rest[4:], []byte("IDAT")) {
		m := int(uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3]))
		rest = rest[12+m:]
	}
	out.Write(rest)
	return out.Bytes()
}

func TestURLUpload(t *testing.T) {
	content := pngBytes(t, 9, 9)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pics/cat.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(content)
	}))
	defer origin.Close()
	s := newServer(t, Options{})
	c := s.global(t)

	r := c.upload(field{name: "url", value: origin.URL + "/pics/cat.png"})
	r.want(t, 200, 0)
	if img := r.image(t); img.Filename != "cat.png" {
		t.Errorf("filename = %q", img.Filename)
	}
	got, _ := s.Emulator.Content(r.image(t).ID)
	if !bytes.Equal(got, content) {
		t.Error("stored content differs from the origin's")
	}
	c.upload(field{name: "url", value: origin.URL + "/missing.png"}).want(t, 400, 5400)
	c.upload(field{name: "url", value: "https://example.com/a.png"}).want(t, 400, 5400)
	c.upload(field{name: "url", value: "ftp://127.0.0.1/a.png"}).want(t, 400, 5400)
}

// rebuildPNG re-encodes the image data of p after mutate has changed the decompressed
// scanlines, then lets mutateZ change the zlib stream; chunk CRCs are made valid again,
// so only the image-data checks can notice.
func rebuildPNG(t *testing.T, p []byte, mutate func([]byte), mutateZ func([]byte) []byte) []byte {
	t.Helper()
	var idat []byte
	var head, tail bytes.Buffer
	rest := p[8:]
	head.Write(p[:8])
	for len(rest) > 0 {
		n := int(binary.BigEndian.Uint32(rest[:4]))
		typ := string(rest[4:8])
		chunk := rest[:12+n]
		switch {
		case typ == "IDAT":
			idat = append(idat, rest[8:8+n]...)
		case idat == nil:
			head.Write(chunk)
		default:
			tail.Write(chunk)
		}
		rest = rest[12+n:]
	}
	zr, err := zlib.NewReader(bytes.NewReader(idat))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	mutate(raw)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	out := head.Bytes()
	out = append(out, pngChunk("IDAT", mutateZ(z.Bytes()))...)
	return append(out, tail.Bytes()...)
}

func TestPNGDataChecks(t *testing.T) {
	s := newServer(t, Options{})
	c := s.global(t)
	orig := pngBytes(t, 10, 6) // 6 scanlines
	same := func(z []byte) []byte { return z }
	tests := []struct {
		name    string
		content []byte
		ok      bool
	}{
		{"rebuilt unchanged", rebuildPNG(t, orig, func([]byte) {}, same), true},
		{"bad filter byte", rebuildPNG(t, orig, func(raw []byte) { raw[len(raw)/6*3] = 9 }, same), false},
		{"bad adler32", rebuildPNG(t, orig, func([]byte) {}, func(z []byte) []byte {
			z[len(z)-1] ^= 1
			return z
		}), false},
		{"no adler32", rebuildPNG(t, orig, func([]byte) {}, func(z []byte) []byte { return z[:len(z)-4] }), false},
		{"short data", rebuildPNG(t, orig, func([]byte) {}, func([]byte) []byte {
			var z bytes.Buffer
			zw := zlib.NewWriter(&z)
			zw.Write(make([]byte, 30)) // less than one scanline
			zw.Close()
			return z.Bytes()
		}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.upload(fileField("x.png", tt.content))
			if tt.ok {
				r.want(t, 200, 0)
			} else {
				r.want(t, 415, 5455)
			}
		})
	}
}
