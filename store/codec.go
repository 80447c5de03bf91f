package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// Value encoding version of records and intents. A new layout gets a new version byte, and
// the decoder keeps reading the old ones.
const (
	recordV1 = 1
	intentV1 = 1
)

// SHA-256 field forms: absent, 32 raw bytes (the value was lowercase hex), or a string kept as
// given (anything else, so that decoding returns exactly what was stored).
const (
	shaNone = 0
	shaRaw  = 1
	shaText = 2
)

// errShort is the decode failure for a value that ends early.
var errShort = errors.New("value ends early")

func encodeRecord(r *Record) []byte {
	b := make([]byte, 0, 48+len(r.ImageID)+len(r.SHA256)+len(r.LastError)+len(r.ErrorClass))
	b = append(b, recordV1)
	b = appendString(b, r.ImageID)
	b = appendSHA(b, r.SHA256)
	b = binary.AppendVarint(b, r.Size)
	b = binary.AppendVarint(b, r.ModTime)
	b = binary.AppendVarint(b, r.ChangeTime)
	b = binary.AppendUvarint(b, r.Inode)
	b = append(b, byte(r.State))
	b = appendString(b, r.LastError)
	b = appendString(b, r.ErrorClass)
	b = binary.AppendVarint(b, int64(r.Attempts))
	b = appendTime(b, r.UploadedAt)
	return b
}

// decodeRecord copies everything it needs out of key and v, which may point into the
// memory map.
func decodeRecord(key, v []byte) (Record, error) {
	d := decoder{b: v}
	if ver := d.byte(); d.err == nil && ver != recordV1 {
		return Record{}, fmt.Errorf("%w: record encoding version %d", ErrCorrupt, ver)
	}
	r := Record{Path: string(key)}
	r.ImageID = d.string()
	r.SHA256 = d.sha()
	r.Size = d.varint()
	r.ModTime = d.varint()
	r.ChangeTime = d.varint()
	r.Inode = d.uvarint()
	r.State = State(d.byte())
	r.LastError = d.string()
	r.ErrorClass = d.string()
	attempts := d.varint()
	r.UploadedAt = d.time()
	if err := d.finish(); err != nil {
		return Record{}, err
	}
	if !r.State.valid() {
		return Record{}, fmt.Errorf("%w: record state %d", ErrCorrupt, r.State)
	}
	if attempts < math.MinInt32 || attempts > math.MaxInt32 {
		return Record{}, fmt.Errorf("%w: record attempts %d", ErrCorrupt, attempts)
	}
	r.Attempts = int(attempts)
	return r, nil
}

func encodeIntent(in *Intent) []byte {
	b := make([]byte, 0, 24+len(in.Op)+len(in.Path)+len(in.ImageID)+len(in.SHA256))
	b = append(b, intentV1)
	b = appendString(b, string(in.Op))
	b = appendString(b, in.Path)
	b = appendString(b, in.ImageID)
	b = appendSHA(b, in.SHA256)
	b = appendTime(b, in.Created)
	return b
}

func decodeIntent(key, v []byte) (Intent, error) {
	if len(key) != 8 {
		return Intent{}, fmt.Errorf("%w: intent key of %d bytes", ErrCorrupt, len(key))
	}
	d := decoder{b: v}
	if ver := d.byte(); d.err == nil && ver != intentV1 {
		return Intent{}, fmt.Errorf("%w: intent encoding version %d", ErrCorrupt, ver)
	}
	in := Intent{ID: binary.BigEndian.Uint64(key)}
	in.Op = IntentOp(d.string())
	in.Path = d.string()
	in.ImageID = d.string()
	in.SHA256 = d.sha()
	in.Created = d.time()
	if err := d.finish(); err != nil {
		return Intent{}, err
	}
	return in, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendSHA(b []byte, s string) []byte {
	switch {
	case s == "":
		return append(b, shaNone)
	case isLowerHex(s) && len(s) == 64:
		b = append(b, shaRaw)
		b, _ = hex.AppendDecode(b, []byte(s)) // cannot fail: checked above
		return b
	default:
		b = append(b, shaText)
		return appendString(b, s)
	}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// appendTime stores seconds and nanoseconds rather than UnixNano, which overflows outside
// 1678–2262 and so could not round-trip the zero time.Time.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads fields in order and remembers the first failure, so decode functions read
// like the encoders.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// string copies: the result outlives the transaction.
func (d *decoder) string() string {
	return string(d.bytes(d.uvarint()))
}

func (d *decoder) sha() string {
	switch kind := d.byte(); kind {
	case shaNone:
		return ""
	case shaRaw:
		return hex.EncodeToString(d.bytes(32))
	case shaText:
		return d.string()
	default:
		d.fail(fmt.Errorf("sha256 form %d", kind))
		return ""
	}
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail(fmt.Errorf("nanoseconds %d out of range", nsec))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil && !errors.Is(d.err, ErrCorrupt) {
		return fmt.Errorf("%w: %v", ErrCorrupt, d.err)
	}
	return d.err
}
