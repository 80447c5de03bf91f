package store

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var oddPaths = []string{
	"plain.jpg",
	"shop/boots.jpg",
	"with space/a b.jpg",
	"100%.jpg",
	"%25already-escaped.png",
	"what?.jpg",
	"#hash#.jpg",
	"a+b=c&d.webp",
	"ünïcödé/日本語.gif",
	"nfd-e\u0301.jpg",
	"emoji-😀.png",
	"bad-utf8-\xff\xfe.jpg",
	"tab\tnewline\n.jpg",
	"trailing-slash/",
	strings.Repeat("x", 1020) + ".jpg",
	strings.Repeat("deep/", 200) + "f.jpg",
}

func sampleRecord(path string) Record {
	return Record{
		Path:       path,
		ImageID:    "cat/" + path,
		SHA256:     "3fa9c1d2e4b5a6978877665544332211ffeeddccbbaa99887766554433221100",
		Size:       1 << 20,
		ModTime:    1764777600123456789,
		ChangeTime: 1764777600987654321,
		Inode:      1234567,
		State:      StateSynced,
		Attempts:   1,
		UploadedAt: time.Date(2026, 12, 3, 16, 0, 0, 123, time.UTC),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	cases := map[string]Record{
		"zero":    {Path: "z"},
		"typical": sampleRecord("shop/boots.jpg"),
		"failed": {
			Path: "big.png", State: StateFailed, Attempts: 7,
			LastError: "preflight: 12001×12001 px exceeds 100 megapixels", ErrorClass: "preflight",
		},
		"pending":         {Path: "p.jpg", State: StatePending, SHA256: strings.Repeat("0", 64)},
		"extremes":        {Path: "e", Size: math.MaxInt64, ModTime: math.MinInt64, ChangeTime: -1, Inode: math.MaxUint64, Attempts: math.MaxInt32},
		"negative fields": {Path: "n", Size: -1, Attempts: -3},
		"uppercase sha":   {Path: "u", SHA256: strings.Repeat("AB", 32)},
		"short sha":       {Path: "s", SHA256: "abc"},
		"not hex sha":     {Path: "h", SHA256: strings.Repeat("zz", 32)},
		"far future":      {Path: "f", UploadedAt: time.Date(9999, 1, 1, 0, 0, 0, 999999999, time.UTC)},
		"unicode error":   {Path: "x", LastError: "fichier «illisible» ✗", ErrorClass: "permanent"},
	}
	for _, p := range oddPaths {
		cases["path "+p] = sampleRecord(p)
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := decodeRecord([]byte(r.Path), encodeRecord(&r))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

func TestRecordRoundTripTimeZones(t *testing.T) {
	// A local time with a monotonic reading comes back as the same instant in UTC.
	now := time.Now()
	r := Record{Path: "t", UploadedAt: now}
	got, err := decodeRecord([]byte("t"), encodeRecord(&r))
	if err != nil {
		t.Fatal(err)
	}
	if !got.UploadedAt.Equal(now) || got.UploadedAt.Location() != time.UTC {
		t.Errorf("UploadedAt = %v, want %v in UTC", got.UploadedAt, now)
	}
	berlin := time.FixedZone("CET", 3600)
	r.UploadedAt = time.Date(2026, 1, 2, 3, 4, 5, 6, berlin)
	got, _ = decodeRecord([]byte("t"), encodeRecord(&r))
	if !got.UploadedAt.Equal(r.UploadedAt) {
		t.Errorf("UploadedAt = %v, want %v", got.UploadedAt, r.UploadedAt)
	}
}

func TestIntentRoundTrip(t *testing.T) {
	cases := []Intent{
		{ID: 1, Op: OpUpload, Path: "a.jpg", ImageID: "a.jpg", SHA256: strings.Repeat("ab", 32), Created: time.Unix(1764777600, 5).UTC()},
		{ID: math.MaxUint64, Op: OpDelete, Path: "ünï/c o%d?e#.jpg", ImageID: "p/ünï/c o%d?e#.jpg"},
		{ID: 7, Op: "future-op", SHA256: "not-hex"},
	}
	for _, in := range cases {
		key := make([]byte, 8)
		for i := range key {
			key[i] = byte(in.ID >> (56 - 8*i))
		}
		got, err := decodeIntent(key, encodeIntent(&in))
		if err != nil {
			t.Fatalf("decode %+v: %v", in, err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, in)
		}
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	r := sampleRecord("a/b.jpg")
	r.LastError = "boom"
	good := encodeRecord(&r)
	// Every proper prefix of a valid value is damage, never a record with missing fields.
	for n := 0; n < len(good); n++ {
		if _, err := decodeRecord([]byte("k"), good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d of %d bytes: err = %v, want ErrCorrupt", n, len(good), err)
		}
	}
	bad := map[string][]byte{
		"unknown version":    append([]byte{99}, good[1:]...),
		"trailing bytes":     append(append([]byte(nil), good...), 0),
		"huge string length": {recordV1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad sha form":       {recordV1, 0, 9},
	}
	badState := append([]byte(nil), good...)
	// State sits right before LastError ("boom": length 4, then 4 bytes), ErrorClass (0),
	// Attempts (1 byte) and UploadedAt (5 + 1 bytes) at the end.
	badState[len(badState)-1-6-1-1-4-1] = 200
	bad["unknown state"] = badState
	for name, v := range bad {
		if _, err := decodeRecord([]byte("k"), v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}

	in := Intent{Op: OpUpload, Path: "p"}
	gi := encodeIntent(&in)
	for n := 0; n < len(gi); n++ {
		if _, err := decodeIntent(make([]byte, 8), gi[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("intent truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := decodeIntent([]byte{1}, gi); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short intent key: err = %v, want ErrCorrupt", err)
	}
}

// TestRecordEncodingSize documents why the binary encoding was chosen over JSON.
func TestRecordEncodingSize(t *testing.T) {
	r := sampleRecord("shop/category-12/product-123456.jpg")
	bin := len(encodeRecord(&r))
	noPath := r
	noPath.Path = "" // the path is the bbolt key in either encoding
	js, err := json.Marshal(noPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("typical record value: binary %d bytes, JSON %d bytes", bin, len(js))
	if bin*2 > len(js) {
		t.Errorf("binary encoding (%d bytes) is not less than half of JSON (%d bytes)", bin, len(js))
	}
}

// FuzzDecodeRecord: no input may panic the decoder, and whatever decodes must survive an
// encode/decode round trip unchanged.
//
//	go test -run '^$' -fuzz FuzzDecodeRecord -fuzztime 30s ./store/
func FuzzDecodeRecord(f *testing.F) {
	for _, p := range oddPaths[:4] {
		r := sampleRecord(p)
		f.Add([]byte(p), encodeRecord(&r))
	}
	f.Add([]byte("k"), []byte{recordV1, 0, shaText, 3, 'a', 'b', 'c'})
	f.Add([]byte("k"), []byte{})
	f.Fuzz(func(t *testing.T, key, v []byte) {
		r, err := decodeRecord(key, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := decodeRecord(key, encodeRecord(&r))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", again, r)
		}
	})
}
