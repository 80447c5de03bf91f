package emulator

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"
)

// Image is the emulator's view of a stored image, for tests to inspect.
type Image struct {
	ID       string
	Custom   bool // the ID was chosen by the uploader
	Filename string
	// Meta is the metadata JSON object as stored (compacted); nil when none was given.
	Meta              json.RawMessage
	Creator           string // "" when none
	RequireSignedURLs bool
	Uploaded          time.Time
	Draft             bool   // a direct upload whose file has not arrived
	SHA256            string // hex of the content's SHA-256; "" for drafts
	Size              int64
	Format            string // one of the Format constants; "" for drafts
	Width, Height     int
	Frames            int // 1 for still images
}

func (r *record) image() Image {
	img := Image{
		ID:                r.id,
		Custom:            r.custom,
		Filename:          r.filename,
		RequireSignedURLs: r.requireSigned,
		Uploaded:          r.uploaded,
		Draft:             r.draft,
		Size:              int64(len(r.content)),
		Format:            r.info.format,
		Width:             r.info.width,
		Height:            r.info.height,
		Frames:            r.info.frames,
	}
	if r.meta != nil {
		img.Meta = slices.Clone(r.meta)
	}
	if r.creator != nil {
		img.Creator = *r.creator
	}
	if !r.draft {
		img.SHA256 = hex.EncodeToString(r.sha256[:])
	}
	return img
}

// Images returns every stored image, drafts included (expired drafts excluded), oldest
// upload first.
func (e *Emulator) Images() []Image {
	now := e.now()
	e.mu.RLock()
	recs := make([]*record, 0, len(e.images))
	for _, r := range e.images {
		if !e.expiredDraft(r, now) {
			recs = append(recs, r)
		}
	}
	e.mu.RUnlock()
	slices.SortFunc(recs, compareKey)
	out := make([]Image, len(recs))
	for i, r := range recs {
		out[i] = r.image()
	}
	return out
}

// Image returns the image stored under id.
func (e *Emulator) Image(id string) (Image, bool) {
	e.mu.RLock()
	r := e.lookupLocked(id)
	e.mu.RUnlock()
	if r == nil {
		return Image{}, false
	}
	return r.image(), true
}

// Content returns a copy of the bytes stored under id; false for a missing image or a
// draft.
func (e *Emulator) Content(id string) ([]byte, bool) {
	e.mu.RLock()
	r := e.lookupLocked(id)
	e.mu.RUnlock()
	if r == nil || r.draft {
		return nil, false
	}
	return slices.Clone(r.content), true
}
