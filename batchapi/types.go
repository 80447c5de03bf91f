package batchapi

import (
	"io"
	"time"
)

// BatchToken is a token for the batch host, as minted by the global API.
type BatchToken struct {
	Token     Secret
	ExpiresAt time.Time
}

// UploadRequest describes one image upload.
type UploadRequest struct {
	// ID is the custom image ID; "" lets Cloudflare generate one. An upload with an ID is
	// retried on transient errors (a later 409 means an earlier attempt landed); one without
	// is not retried once its body may have reached the server.
	ID string
	// Filename is the base name sent with the file part; "" uses the last element of ID.
	Filename string
	// Content is read from offset 0 to Size on every attempt, so it must stay unchanged for
	// the duration of the call. It is never buffered whole.
	Content io.ReaderAt
	Size    int64
	// Metadata is sent as JSON text in the "metadata" field; nil sends none.
	Metadata          map[string]any
	RequireSignedURLs bool
	Creator           string
}

// UpdateRequest is a PATCH of an image's settings. A nil field is left as it is.
type UpdateRequest struct {
	// Metadata replaces the stored object wholesale when non-nil (an empty map clears it).
	Metadata          map[string]any
	RequireSignedURLs *bool
	Creator           *string
}

// ListOptions filters and orders List.
type ListOptions struct {
	PerPage   int     // 0 leaves the server default
	SortOrder string  // "asc" or "desc"; "" leaves the server default
	Creator   *string // nil: no filter; a pointer to "" selects images without a creator
}

// DirectUploadRequest asks for a one-time upload URL (direct creator upload).
type DirectUploadRequest struct {
	ID                string
	Metadata          map[string]any
	RequireSignedURLs bool
	Expiry            time.Time // zero leaves the server default (30 minutes)
	Creator           string
}

// DirectUpload is the draft image a direct creator upload will fill.
type DirectUpload struct {
	ID        string
	UploadURL string
}

// Image is an image record as the API reports it.
type Image struct {
	ID                string
	Filename          string
	Meta              map[string]any
	Creator           string
	RequireSignedURLs bool
	Uploaded          time.Time
	Variants          []string
	Draft             bool
}
