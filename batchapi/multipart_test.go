package batchapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
)

// pngHeader is enough of a PNG for content sniffing.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func parseForm(t *testing.T, fb *formBody) map[string]string {
	t.Helper()
	raw, err := io.ReadAll(fb.reader())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != fb.length() {
		t.Fatalf("body is %d bytes, Content-Length would say %d", len(raw), fb.length())
	}
	mt, params, err := mime.ParseMediaType(fb.contentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q: %v", fb.contentType, err)
	}
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	got := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[p.FormName()]; dup {
			t.Errorf("field %q sent twice", p.FormName())
		}
		got[p.FormName()] = string(b)
		if p.FormName() == "file" {
			got["file.filename"] = p.FileName()
			got["file.type"] = p.Header.Get("Content-Type")
		}
	}
	return got
}

func TestUploadFormShape(t *testing.T) {
	content := append(append([]byte{}, pngHeader...), bytes.Repeat([]byte{7}, 100_000)...)
	tests := []struct {
		name string
		req  UploadRequest
		want map[string]string // "" value: must be absent
	}{
		{
			name: "custom id with everything",
			req: UploadRequest{
				ID: "shop/boots.jpg", Filename: "boots.jpg", Content: bytes.NewReader(content), Size: int64(len(content)),
				Metadata: map[string]any{"path": "shop/boots.jpg", "sha256": "ab12", "size": 3},
				Creator:  "cfimgsync:host:shop",
			},
			want: map[string]string{
				"id": "shop/boots.jpg", "requireSignedURLs": "false", "creator": "cfimgsync:host:shop",
				"file.filename": "boots.jpg", "file.type": "image/png",
			},
		},
		{
			name: "auto id, signed, no metadata",
			req:  UploadRequest{Content: bytes.NewReader(content), Size: int64(len(content)), RequireSignedURLs: true},
			want: map[string]string{"id": "", "metadata": "", "creator": "", "requireSignedURLs": "true", "file.filename": "image"},
		},
		{
			name: "filename from the id, quotes escaped",
			req:  UploadRequest{ID: `a/we"ird.png`, Content: bytes.NewReader(content), Size: int64(len(content))},
			want: map[string]string{"file.filename": `we"ird.png`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb, err := uploadForm(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			// Two reads give the same body: a retry re-reads the content from offset 0.
			first := parseForm(t, fb)
			second := parseForm(t, fb)
			for k, v := range first {
				if second[k] != v {
					t.Errorf("field %q differs on a second read", k)
				}
			}
			if first["file"] != string(content) {
				t.Errorf("file part is %d bytes, want the %d content bytes", len(first["file"]), len(content))
			}
			for k, v := range tt.want {
				got, ok := first[k]
				if v == "" {
					if ok {
						t.Errorf("field %q present (%q), want absent", k, got)
					}
					continue
				}
				if got != v {
					t.Errorf("field %q = %q, want %q", k, got, v)
				}
			}
			if tt.req.Metadata != nil {
				var m map[string]any
				if err := json.Unmarshal([]byte(first["metadata"]), &m); err != nil {
					t.Fatalf("metadata is not JSON text: %v", err)
				}
				if m["sha256"] != "ab12" || m["size"] != float64(3) {
					t.Errorf("metadata = %v", m)
				}
			}
		})
	}
}

func TestUploadFormFramingIsSmall(t *testing.T) {
	// The framing must not grow with the content: it is all that is held in memory.
	size := int64(8 << 20)
	fb, err := uploadForm(UploadRequest{ID: "big.png", Content: zeroReaderAt{}, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fb.head) + len(fb.tail); n > 1024 {
		t.Errorf("framing is %d bytes", n)
	}
	if fb.length() != size+int64(len(fb.head)+len(fb.tail)) {
		t.Errorf("length %d", fb.length())
	}
}

type zeroReaderAt struct{}

func (zeroReaderAt) ReadAt(p []byte, _ int64) (int, error) { clear(p); return len(p), nil }

type shortReaderAt struct{ data []byte }

func (s shortReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestUploadFormContentErrorsAreLocal(t *testing.T) {
	tests := []struct {
		name string
		r    io.ReaderAt
		want string
	}{
		{"file shrank", shortReaderAt{data: []byte("tiny")}, "bytes short of the declared size"},
		{"read fails", failingReaderAt{}, "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb, err := uploadForm(UploadRequest{ID: "x.png", Content: tt.r, Size: 100})
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(fb.reader())
			var le *localError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a localError containing %q", err, tt.want)
			}
			if !IsPermanent(err) || IsTransient(err) {
				t.Errorf("a content error must be permanent, not transient")
			}
		})
	}
}

func TestDirectUploadForm(t *testing.T) {
	fb, err := directUploadForm(DirectUploadRequest{ID: "drafts/a.png", Metadata: map[string]any{"k": "v"}, Creator: "me"})
	if err != nil {
		t.Fatal(err)
	}
	got := parseForm(t, fb)
	if got["id"] != "drafts/a.png" || got["metadata"] != `{"k":"v"}` || got["creator"] != "me" {
		t.Errorf("fields = %v", got)
	}
	if _, ok := got["file"]; ok {
		t.Error("direct upload request carries a file part")
	}
	if _, ok := got["expiry"]; ok {
		t.Error("zero Expiry sent")
	}
}
