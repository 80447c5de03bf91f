package batchapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"
)

// formBody is a multipart/form-data body whose framing is built up front so its length is
// known; the file content between head and tail is streamed from a ReaderAt on each attempt,
// so memory does not grow with the file size or with the number of uploads in flight.
type formBody struct {
	contentType string
	head, tail  []byte
	content     io.ReaderAt // nil: no file part
	size        int64
}

func (b *formBody) length() int64 { return int64(len(b.head)) + b.size + int64(len(b.tail)) }

// reader returns a fresh reader over the whole body, content re-read from offset 0.
func (b *formBody) reader() io.Reader {
	if b.content == nil {
		return onlyReader{io.MultiReader(bytes.NewReader(b.head), bytes.NewReader(b.tail))}
	}
	return onlyReader{io.MultiReader(
		bytes.NewReader(b.head),
		&exactReader{r: io.NewSectionReader(b.content, 0, b.size), left: b.size},
		bytes.NewReader(b.tail),
	)}
}

// onlyReader hides the MultiReader's WriteTo, which allocates a fresh 32 KB buffer per
// body; without it the transport's buffered writer reads straight into its own buffer.
type onlyReader struct{ io.Reader }

// exactReader turns a short read of the content (the file shrank under us) or a read error
// into a localError, so the call fails as permanent instead of being retried as a network
// fault, and the server never sees a body shorter than the declared length.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		return n, &localError{fmt.Errorf("read content: %w (%d bytes short of the declared size)", io.ErrUnexpectedEOF, e.left)}
	case err != nil && err != io.EOF:
		return n, &localError{fmt.Errorf("read content: %w", err)}
	}
	return n, err
}

// switchWriter lets one multipart.Writer write the head and then, after the file part's
// header, the tail into a second buffer.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

type formField struct{ name, value string }

// newFormBody frames fields and, if content is non-nil, a file part named "file" last.
func newFormBody(fields []formField, filename string, content io.ReaderAt, size int64) (*formBody, error) {
	var head, tail bytes.Buffer
	sw := &switchWriter{w: &head}
	mw := multipart.NewWriter(sw)
	for _, f := range fields {
		if err := mw.WriteField(f.name, f.value); err != nil {
			return nil, err
		}
	}
	if content != nil {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, escapeQuotes(filename)))
		h.Set("Content-Type", sniff(content, size))
		if _, err := mw.CreatePart(h); err != nil {
			return nil, err
		}
	}
	sw.w = &tail
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return &formBody{
		contentType: mw.FormDataContentType(),
		head:        head.Bytes(),
		tail:        tail.Bytes(),
		content:     content,
		size:        size,
	}, nil
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "%0D", "\n", "%0A")

// escapeQuotes keeps a file name from breaking out of the header (a name is user data).
func escapeQuotes(s string) string { return quoteEscaper.Replace(s) }

// sniff names the content type from the first bytes. The API decides by content anyway; a
// truthful part header just helps anything in between.
func sniff(r io.ReaderAt, size int64) string {
	buf := make([]byte, min(size, 512))
	n, _ := r.ReadAt(buf, 0)
	ct := http.DetectContentType(buf[:n])
	if strings.HasPrefix(ct, "image/") {
		return ct
	}
	if bytes.Contains(buf[:n], []byte("<svg")) {
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

func uploadForm(req UploadRequest) (*formBody, error) {
	if req.Content == nil {
		return nil, errors.New("no content")
	}
	if req.Size < 0 {
		return nil, fmt.Errorf("negative size %d", req.Size)
	}
	var fields []formField
	if req.ID != "" {
		fields = append(fields, formField{"id", req.ID})
	}
	if req.Metadata != nil {
		m, err := json.Marshal(req.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		fields = append(fields, formField{"metadata", string(m)})
	}
	fields = append(fields, formField{"requireSignedURLs", strconv.FormatBool(req.RequireSignedURLs)})
	if req.Creator != "" {
		fields = append(fields, formField{"creator", req.Creator})
	}
	name := req.Filename
	if name == "" {
		name = path.Base(req.ID)
	}
	if name == "" || name == "." || name == "/" {
		name = "image"
	}
	return newFormBody(fields, name, req.Content, req.Size)
}

func directUploadForm(req DirectUploadRequest) (*formBody, error) {
	var fields []formField
	if req.ID != "" {
		fields = append(fields, formField{"id", req.ID})
	}
	if req.Metadata != nil {
		m, err := json.Marshal(req.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		fields = append(fields, formField{"metadata", string(m)})
	}
	fields = append(fields, formField{"requireSignedURLs", strconv.FormatBool(req.RequireSignedURLs)})
	if !req.Expiry.IsZero() {
		fields = append(fields, formField{"expiry", req.Expiry.UTC().Format("2006-01-02T15:04:05Z07:00")})
	}
	if req.Creator != "" {
		fields = append(fields, formField{"creator", req.Creator})
	}
	return newFormBody(fields, "", nil, 0)
}
