package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestMetaDecodesOldEncoding reads a meta written before the digest, marker and blocked
// fields existed: the new fields come back as zero values, the old ones unchanged.
func TestMetaDecodesOldEncoding(t *testing.T) {
	old := []byte(`{"schema_version":1,"account_id":"acc","root":"/srv/x","id_scheme":"path","prefix":"",` +
		`"owner_tag":"o","device":7,"delivery_base":"","deletes_approved":2}`)
	m, err := decodeMeta(old)
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{SchemaVersion: 1, AccountID: "acc", Root: "/srv/x", IDScheme: "path", OwnerTag: "o", Device: 7, DeletesApproved: 2}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded %+v, want %+v", m, want)
	}
	// And a meta with the new fields round-trips, while an index without them still
	// encodes to keys an older binary ignores.
	m.MetadataDigest, m.MarkerCreated, m.DeletesBlocked = "abc", true, 5
	v, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeMeta(v)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	v, _ = json.Marshal(want)
	var keys map[string]any
	_ = json.Unmarshal(v, &keys)
	for _, k := range []string{"metadata_digest", "marker_created", "deletes_blocked"} {
		if _, ok := keys[k]; ok {
			t.Errorf("zero %s is written: %s", k, v)
		}
	}
}

func TestUpdateMeta(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	err := f.UpdateMeta(func(m *Meta, ok bool) error {
		if ok {
			t.Error("ok on a folder without meta")
		}
		m.Root, m.DeletesBlocked = "/r", 4
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := f.UpdateMeta(func(m *Meta, ok bool) error { m.Root = "/changed"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := f.UpdateMeta(func(m *Meta, ok bool) error {
		if !ok || m.DeletesBlocked != 4 {
			t.Errorf("meta %+v, %v", m, ok)
		}
		m.DeletesApproved = m.DeletesBlocked
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	m, ok, err := s.Folder("f").Meta()
	if err != nil || !ok || m.Root != "/r" || m.DeletesApproved != 4 || m.SchemaVersion != SchemaVersion {
		t.Fatalf("meta %+v, %v, %v", m, ok, err)
	}
}

func TestGoneMarks(t *testing.T) {
	s := openTest(t)
	f := s.Folder("f")
	mustPut(t, f, sampleRecord("a.jpg"), sampleRecord("b.jpg"), sampleRecord("c.jpg"))
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := f.MarkGone([]string{"a.jpg", "b.jpg", "c.jpg"}, t1); err != nil {
		t.Fatal(err)
	}
	// A second mark keeps the first time.
	if err := f.MarkGone([]string{"a.jpg"}, t1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.Unmark([]string{"b.jpg", "never.jpg"}); err != nil {
		t.Fatal(err)
	}
	// Removing a record removes its mark, whichever way it goes.
	if err := f.Settle(0, nil, "c.jpg"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	f = s.Folder("f")
	got, err := f.Gone()
	if err != nil || !reflect.DeepEqual(got, map[string]time.Time{"a.jpg": t1}) {
		t.Fatalf("Gone() = %v, %v", got, err)
	}
	if err := f.Delete("a.jpg"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Gone(); err != nil || len(got) != 0 {
		t.Fatalf("after Delete: %v, %v", got, err)
	}
	if got, err := s.Folder("never-written").Gone(); err != nil || len(got) != 0 {
		t.Fatalf("unwritten folder: %v, %v", got, err)
	}
}

func TestFolderReset(t *testing.T) {
	s := openTest(t)
	f, other := s.Folder("f"), s.Folder("g")
	mustPut(t, f, sampleRecord("a.jpg"))
	mustPut(t, other, sampleRecord("b.jpg"))
	if err := f.SetMeta(Meta{Root: "/r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddIntent(Intent{Op: OpUpload, Path: "a.jpg"}); err != nil {
		t.Fatal(err)
	}
	if err := f.MarkGone([]string{"a.jpg"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.Reset(); err != nil {
		t.Fatal(err)
	}
	n, _ := f.Len()
	_, ok, _ := f.Meta()
	ins, _ := f.Intents()
	gone, _ := f.Gone()
	if n != 0 || ok || len(ins) != 0 || len(gone) != 0 {
		t.Fatalf("after Reset: %d records, meta %v, %d intents, %d marks", n, ok, len(ins), len(gone))
	}
	if n, _ := other.Len(); n != 1 {
		t.Fatalf("another folder lost its records: %d", n)
	}
}
