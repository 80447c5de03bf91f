package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestEncodeManifest(t *testing.T) {
	ents := []manifestEntry{
		{Folder: "f", Path: "a, \"b\".png", ImageID: "p/a, \"b\".png", URLs: map[string]string{"thumbnail": "https://x/t", "public": "https://x/p"}},
		{Folder: "f", Path: "c.png", ImageID: "c.png", URLs: map[string]string{}},
	}
	var b bytes.Buffer
	if err := encodeManifest(&b, ents, "json"); err != nil {
		t.Fatal(err)
	}
	var back []manifestEntry
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 2 || back[0].URLs["public"] != "https://x/p" {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
	b.Reset()
	if err := encodeManifest(&b, ents, "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"folder", "path", "image_id", "variant", "url"},
		{"f", "a, \"b\".png", "p/a, \"b\".png", "public", "https://x/p"},
		{"f", "a, \"b\".png", "p/a, \"b\".png", "thumbnail", "https://x/t"},
		{"f", "c.png", "c.png", "", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %v", rows)
	}
	for i := range want {
		for j := range want[i] {
			if rows[i][j] != want[i][j] {
				t.Errorf("row %d col %d: %q, want %q", i, j, rows[i][j], want[i][j])
			}
		}
	}
	if err := encodeManifest(io.Discard, ents, "xml"); err == nil {
		t.Error("format xml accepted")
	}
	if code, _, _ := runCLI(t, "manifest", "--format", "xml"); code != exitUsage {
		t.Errorf("manifest --format xml: exit %d", code)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves the old file and no temporary file.
	boom := errors.New("boom")
	if err := writeAtomic(p, func(w io.Writer) error { _, _ = io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file is %q after a failed write", b)
	}
	if err := writeAtomic(p, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("file is %q", b)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the manifest", len(entries))
	}
	if err := writeAtomic(filepath.Join(dir, "missing", "m.json"), func(io.Writer) error { return nil }); err == nil {
		t.Error("no error for a missing directory")
	}
}
