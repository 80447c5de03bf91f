package syncer

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxIDLen is the API's limit on a custom ID, in characters.
const maxIDLen = 1024

// IDScheme maps a local file to the image ID it is published under. The scheme also decides
// how a content change is applied: a scheme whose ID does not depend on the content must
// delete and re-upload under the same ID (the API cannot replace bytes in place), while one
// whose ID changes with the content can upload the new image before deleting the old one.
//
// Implementations are pure and safe for concurrent use.
type IDScheme interface {
	// Name is the scheme's name as recorded in the index meta ("path", "versioned", "auto").
	Name() string
	// ID returns the image ID for the slash-separated relative path rel whose content has
	// the hex SHA-256 sum. An error means the file can never be published under this scheme
	// (a permanent per-file error naming the rule); it is never sent. An empty ID with a nil
	// error means the API generates the ID.
	ID(rel, sum string) (string, error)
	// StableID reports whether ID ignores the content, so a changed file keeps its ID and
	// must be replaced by delete-then-upload.
	StableID() bool
}

// NewIDScheme returns the scheme called name with the given ID prefix.
func NewIDScheme(name, prefix string) (IDScheme, error) {
	switch name {
	case "", "path":
		if err := checkPrefix(prefix); err != nil {
			return nil, err
		}
		return pathScheme{prefix: prefix}, nil
	case "versioned":
		if err := checkPrefix(prefix); err != nil {
			return nil, err
		}
		return versionedScheme{prefix: prefix}, nil
	case "auto":
		// Generated IDs take no prefix; the path travels in the metadata instead.
		if prefix != "" {
			return nil, fmt.Errorf("id prefix %q cannot apply to id scheme \"auto\" (the API generates the IDs)", prefix)
		}
		return autoScheme{}, nil
	default:
		return nil, fmt.Errorf("unknown id scheme %q (want \"path\", \"versioned\" or \"auto\")", name)
	}
}

func checkPrefix(prefix string) error {
	switch {
	case !utf8.ValidString(prefix):
		return errors.New("id prefix is not valid UTF-8")
	case strings.HasPrefix(prefix, "/"):
		return fmt.Errorf("id prefix %q must not start with \"/\"", prefix)
	case strings.Contains(prefix, "//"):
		return fmt.Errorf("id prefix %q must not contain \"//\"", prefix)
	}
	return nil
}

// pathScheme publishes a file under prefix + its relative path in Unicode NFC, so the same
// name typed on macOS (NFD) and Linux (NFC) is one image.
type pathScheme struct{ prefix string }

func (pathScheme) Name() string   { return "path" }
func (pathScheme) StableID() bool { return true }

func (s pathScheme) ID(rel, _ string) (string, error) {
	if !utf8.ValidString(rel) {
		return "", &IDError{Rule: "invalid UTF-8 in the path"}
	}
	id := s.prefix + norm.NFC.String(rel)
	return id, validateID(id)
}

// versionHashLen is how many hex digits of the content's SHA-256 a versioned ID carries:
// 32 bits tell the versions of one path apart; a clash only makes the newer version replace
// the older under the same ID, as the path scheme always does.
const versionHashLen = 8

// versionedScheme publishes a file under prefix + its relative path with a short content
// hash before the extension ("shop/boots.3fa9c1d2.jpg"), so every version has its own ID
// and a URL never serves content other than the one it was made for (caches can keep it
// forever). A path without an extension gets "-<hash>": ".<hash>" would read as an
// extension, which the API refuses.
type versionedScheme struct{ prefix string }

func (versionedScheme) Name() string   { return "versioned" }
func (versionedScheme) StableID() bool { return false }

func (s versionedScheme) ID(rel, sum string) (string, error) {
	if !utf8.ValidString(rel) {
		return "", &IDError{Rule: "invalid UTF-8 in the path"}
	}
	if len(sum) < versionHashLen {
		// The scanner asks with an empty sum only of stable schemes; a short sum is a
		// caller's bug, refused rather than turned into a colliding ID.
		return "", &IDError{Rule: "no content hash for a versioned ID"}
	}
	rel = norm.NFC.String(rel)
	h := strings.ToLower(sum[:versionHashLen])
	ext := path.Ext(rel)
	var id string
	if ext == "" {
		id = s.prefix + rel + "-" + h
	} else {
		id = s.prefix + strings.TrimSuffix(rel, ext) + "." + h + ext
	}
	return id, validateID(id)
}

// autoScheme lets the API generate every ID. Nothing about the path has to fit the ID
// rules, and signed URLs are possible; the price is that an upload whose answer was lost
// can only be found again by listing our images and matching path and hash.
type autoScheme struct{}

func (autoScheme) Name() string                   { return "auto" }
func (autoScheme) StableID() bool                 { return false }
func (autoScheme) ID(_, _ string) (string, error) { return "", nil }

// IDError says why a path cannot be a custom image ID.
type IDError struct {
	Rule string
}

func (e *IDError) Error() string { return "cannot be an image ID: " + e.Rule }

// isUUIDShaped reports whether id looks like a generated ID (8-4-4-4-12 hex digits), which
// the API does not accept as a custom ID.
func isUUIDShaped(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
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

// isImageExt reports whether ext (with its dot, any case) is one the API accepts on a
// custom ID; any other extension is refused with code 5411, so we refuse it before sending.
func isImageExt(ext string) bool {
	switch strings.ToLower(ext) {
	case ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".heic", ".heif", ".avif":
		return true
	}
	return false
}

// validateID applies the API's custom-ID rules (see cloudflare-images-api.md §3.2, §5).
func validateID(id string) error {
	switch {
	case id == "":
		return &IDError{Rule: "empty ID"}
	case !utf8.ValidString(id):
		return &IDError{Rule: "invalid UTF-8"}
	case utf8.RuneCountInString(id) > maxIDLen:
		return &IDError{Rule: fmt.Sprintf("longer than %d characters (%d)", maxIDLen, utf8.RuneCountInString(id))}
	case strings.HasPrefix(id, "/"):
		return &IDError{Rule: "starts with \"/\""}
	case strings.HasSuffix(id, "/"):
		return &IDError{Rule: "ends with \"/\""}
	case isUUIDShaped(id):
		return &IDError{Rule: "shaped like a UUID, which the API reserves for generated IDs"}
	}
	if ext := path.Ext(id); ext != "" && !isImageExt(ext) {
		return &IDError{Rule: fmt.Sprintf("extension %q is not an image extension (jpg, jpeg, png, gif, webp, svg, heic, heif, avif)", ext)}
	}
	return nil
}

// DeliveryURL returns the URL serving variant of image id under base (for example
// "https://imagedelivery.net/<account-hash>"). Each segment of the ID is percent-encoded on
// its own so "/" stays a separator while "%", "?", "#", spaces and non-ASCII letters cannot
// change the URL's meaning.
func DeliveryURL(base, id, variant string) string {
	return strings.TrimSuffix(base, "/") + "/" + escapeID(id) + "/" + escapeSegment(variant)
}

func escapeID(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = escapeSegment(s)
	}
	return strings.Join(segs, "/")
}

// escapeSegment percent-encodes every byte that may not appear as itself in a URL path
// segment (RFC 3986 pchar). Unlike url.PathEscape it keeps the sub-delimiters, so flexible
// variants such as "w=400,sharpen=1" pass unchanged.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// deliveryBase learns the delivery base and variant name from one variants URL of the image
// id. The API puts custom IDs into these URLs unencoded, but an implementation may escape
// them, so the ID's segments are matched after unescaping.
func deliveryBase(variantURL, id string) (base, variant string, ok bool) {
	u, err := url.Parse(variantURL)
	if err != nil || u.Host == "" {
		return "", "", false
	}
	segs := strings.Split(u.EscapedPath(), "/")
	idSegs := strings.Split(id, "/")
	// segs: "", base segments..., id segments..., variant; the base keeps at least one
	// segment (the account hash).
	n := len(segs) - len(idSegs) - 1
	if n < 2 {
		return "", "", false
	}
	for i, want := range idSegs {
		if got, err := url.PathUnescape(segs[n+i]); err != nil || got != want {
			return "", "", false
		}
	}
	variant, err = url.PathUnescape(segs[len(segs)-1])
	if err != nil || variant == "" {
		return "", "", false
	}
	return u.Scheme + "://" + u.Host + strings.Join(segs[:n], "/"), variant, true
}
