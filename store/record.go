package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is where a file stands with the remote.
type State uint8

const (
	// StatePending: known locally, not (yet) confirmed remotely.
	StatePending State = iota
	// StateSynced: the remote image holds this content.
	StateSynced
	// StateFailed: the last attempt failed; LastError and ErrorClass say why.
	StateFailed
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateSynced:
		return "synced"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

func (s State) valid() bool { return s <= StateFailed }

// Record is what the index knows about one file of a folder.
type Record struct {
	Path       string // key: slash-separated path relative to the folder root
	ImageID    string
	SHA256     string // hex; lowercase hex is stored as 32 bytes, anything else verbatim
	Size       int64
	ModTime    int64 // unix nanoseconds
	ChangeTime int64 // unix nanoseconds (ctime)
	Inode      uint64
	State      State
	LastError  string // human-readable reason of the last failure ("" when synced)
	ErrorClass string // "preflight", "permanent", "transient", "guard" ...
	Attempts   int
	UploadedAt time.Time // comes back in UTC without monotonic reading
}

// IntentOp is the kind of remote call an Intent journals.
type IntentOp string

// The operations the syncer journals. The store does not interpret them: any non-empty op
// is kept as given.
const (
	OpUpload IntentOp = "upload" // an upload (new image, or re-upload under the same ID)
	OpDelete IntentOp = "delete" // a remote delete
	OpUpdate IntentOp = "update" // a PATCH of metadata or settings
)

// Intent is a journal entry for a remote call that may or may not have happened.
type Intent struct {
	ID      uint64 // assigned by AddIntent (increasing, never reused within a folder)
	Op      IntentOp
	Path    string
	ImageID string
	SHA256  string
	Created time.Time // set to now by AddIntent when zero; comes back in UTC
}

// Meta is a folder's identity, recorded when its index is made. If the account, root, scheme
// or prefix differ from the configuration at start, the syncer refuses to run.
type Meta struct {
	SchemaVersion   int      `json:"schema_version"` // set by SetMeta to the store's SchemaVersion
	AccountID       string   `json:"account_id"`
	Root            string   `json:"root"`
	IDScheme        string   `json:"id_scheme"`
	Prefix          string   `json:"prefix"`
	OwnerTag        string   `json:"owner_tag"`
	Device          uint64   `json:"device"`        // st_dev of the root when the index was made
	DeliveryBase    string   `json:"delivery_base"` // e.g. "https://imagedelivery.net/<hash>"
	Variants        []string `json:"variants,omitempty"`
	DeletesApproved int      `json:"deletes_approved"` // deletes over the guard the operator approved
	// DeletesBlocked is how many deletes the last guarded pass held back; approve-deletes
	// approves exactly that many, so an approval never covers deletes nobody was shown.
	DeletesBlocked int `json:"deletes_blocked,omitempty"`
	// MetadataDigest is a hash of the static metadata and owner tag every image of the
	// folder carries. It is set when the index is made and after a full patch run, so a
	// configuration change is noticed without reading images back.
	MetadataDigest string `json:"metadata_digest,omitempty"`
	// MarkerCreated says the folder's marker file exists (created or seen by the syncer),
	// so its absence means the folder is not the one indexed. False while the root was
	// read-only: the marker check is then skipped (the device check remains).
	MarkerCreated bool `json:"marker_created,omitempty"`
}

func decodeMeta(v []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(v, &m); err != nil {
		return Meta{}, fmt.Errorf("%w: meta: %v", ErrCorrupt, err)
	}
	return m, nil
}
