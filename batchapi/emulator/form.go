package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	maxFieldBytes = 16 << 10 // a text field; the longest legal one (id) is 1024 runes
	maxParts      = 64
	maxMetaBytes  = 1024
	maxCreator    = 1024
	maxIDRunes    = 1024
	maxFilename   = 255
)

// form is a parsed upload or direct-upload request. The file is held in memory: the
// emulator stores it anyway, and it is capped at MaxFileSize while being read.
type form struct {
	file     []byte
	hasFile  bool
	filename string
	fields   map[string]string
}

func (f *form) field(name string) (string, bool) {
	v, ok := f.fields[name]
	return v, ok
}

// readForm streams a multipart/form-data body. A file part over MaxFileSize is refused
// as soon as the limit is passed, without reading the rest.
func (e *Emulator) readForm(r *http.Request) (*form, *response) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		resp := errResponse(http.StatusUnsupportedMediaType, codeNotForm, msgNotForm)
		return nil, &resp
	}
	// Room for the file plus the text fields and part headers.
	r.Body = http.MaxBytesReader(nil, r.Body, e.opts.MaxFileSize+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		resp := badRequest("Error parsing form fields: " + err.Error())
		return nil, &resp
	}
	f := &form{fields: make(map[string]string)}
	tooLarge := func() *response {
		resp := errResponse(http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("Maximum image size of %d bytes is reached", e.opts.MaxFileSize))
		return &resp
	}
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		if err != nil {
			resp := badRequest("Error parsing form fields: " + err.Error())
			return nil, &resp
		}
		if i >= maxParts {
			resp := badRequest("Error parsing form fields: too many parts")
			return nil, &resp
		}
		name := part.FormName()
		if name == "file" {
			if f.hasFile {
				resp := badRequest("Error parsing form fields: more than one file")
				return nil, &resp
			}
			var buf bytes.Buffer
			if n := r.ContentLength; n > 0 {
				buf.Grow(int(min(n, e.opts.MaxFileSize+1)))
			}
			n, err := io.Copy(&buf, io.LimitReader(part, e.opts.MaxFileSize+1))
			if errors.As(err, &mbe) || n > e.opts.MaxFileSize {
				return nil, tooLarge()
			}
			if err != nil {
				resp := badRequest("Error parsing form fields: " + err.Error())
				return nil, &resp
			}
			f.file, f.hasFile = buf.Bytes(), true
			f.filename = cleanFilename(part.FileName())
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		if err != nil {
			resp := badRequest("Error parsing form fields: " + err.Error())
			return nil, &resp
		}
		if len(b) > maxFieldBytes {
			resp := badRequest(fmt.Sprintf("Error parsing form fields: field %q is too long", name))
			return nil, &resp
		}
		if _, dup := f.fields[name]; dup {
			resp := badRequest(fmt.Sprintf("Error parsing form fields: field %q given twice", name))
			return nil, &resp
		}
		f.fields[name] = string(b)
	}
	return f, nil
}

// cleanFilename keeps the base name, at most 255 bytes cut on a rune boundary.
func cleanFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" {
		return ""
	}
	if len(name) > maxFilename {
		cut := maxFilename
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	return name
}

// uploadSettings are the fields upload and direct upload share.
type uploadSettings struct {
	id            string
	meta          []byte
	creator       *string
	requireSigned bool
}

// settings validates the id, metadata, creator and requireSignedURLs fields.
func settings(f *form) (uploadSettings, *response) {
	var s uploadSettings
	fail := func(r response) (uploadSettings, *response) { return s, &r }
	// An empty id field is taken as no id, as form parsers commonly do.
	if id, ok := f.field("id"); ok && id != "" {
		if msg := checkCustomID(id); msg != "" {
			return fail(errResponse(http.StatusBadRequest, codeBadID, "The Custom ID is invalid. "+msg))
		}
		s.id = id
	}
	if v, ok := f.field("requireSignedURLs"); ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fail(badRequest("requireSignedURLs must be true or false"))
		}
		s.requireSigned = b
	}
	if s.requireSigned && s.id != "" {
		return fail(badRequest("requireSignedURLs cannot be true for an image with a custom ID"))
	}
	if v, ok := f.field("metadata"); ok {
		m, msg := checkMetadata([]byte(v))
		if msg != "" {
			return fail(badRequest(msg))
		}
		s.meta = m
	}
	if v, ok := f.field("creator"); ok {
		if msg := checkCreator(v); msg != "" {
			return fail(badRequest(msg))
		}
		if v != "" {
			s.creator = &v
		}
	}
	return s, nil
}

// checkMetadata returns the compacted JSON object, or why it is refused.
func checkMetadata(b []byte) ([]byte, string) {
	if len(b) > maxMetaBytes {
		return nil, fmt.Sprintf("metadata is %d bytes, over the limit of %d bytes", len(b), maxMetaBytes)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, "metadata must be a JSON object"
	}
	var buf bytes.Buffer
	json.Compact(&buf, t)
	return buf.Bytes(), ""
}

func checkCreator(v string) string {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxCreator {
		return fmt.Sprintf("creator must be valid UTF-8 of at most %d characters", maxCreator)
	}
	return ""
}

// imageExtension reports whether ext (lower case, no dot) names an image format.
func imageExtension(ext string) bool {
	switch ext {
	case "jpg", "jpeg", "png", "gif", "webp", "svg", "heic", "heif", "avif":
		return true
	}
	return false
}

// checkCustomID applies the custom ID rules to upload and direct upload alike, and
// returns why id is refused ("" when it is fine).
func checkCustomID(id string) string {
	switch {
	case id == "":
		return "Must not be empty"
	case !utf8.ValidString(id):
		return "Must be valid UTF-8"
	case utf8.RuneCountInString(id) > maxIDRunes:
		return fmt.Sprintf("Must be at most %d characters", maxIDRunes)
	case strings.HasPrefix(id, "/") || strings.HasSuffix(id, "/"):
		return "Must not start or end with a slash"
	case isUUID(id):
		return "Must not be a UUID"
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "." || seg == ".." {
			return "Must not contain . or .. path segments"
		}
	}
	last := id[strings.LastIndexByte(id, '/')+1:]
	if dot := strings.LastIndexByte(last, '.'); dot >= 0 && dot < len(last)-1 {
		if !imageExtension(strings.ToLower(last[dot+1:])) {
			return "Must not use a non-image file name extension"
		}
	}
	return ""
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
