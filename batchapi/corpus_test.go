package batchapi_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
)

// TestCorpus streams the shared test images from disk through the client: valid images are
// stored, and anything the API refuses comes back as one permanent error after exactly one
// attempt, never a retry loop.
func TestCorpus(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "corpus")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("corpus not found at %s: %v", root, err)
	}
	e := newEnv(t, emulator.Options{}, batchapi.Config{})
	tests := []struct {
		dir    string
		accept map[string]bool // file -> must be accepted; absent: must be refused
		either map[string]bool // the API may accept or refuse (header fine, data broken)
	}{
		{dir: "valid"},
		{dir: "invalid", either: map[string]bool{
			"truncated.jpeg": true, "cut-in-half.jpeg": true, "broken.svg": true,
			"invalid-crc32.png": true, "invalid-noend.png": true, "invalid-trunc.png": true, "invalid-zlib.png": true,
		}},
		{dir: "limits", accept: map[string]bool{"edge-12000x8000.png": true}},
	}
	for _, tt := range tests {
		entries, err := os.ReadDir(filepath.Join(root, tt.dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			name := ent.Name()
			t.Run(tt.dir+"/"+name, func(t *testing.T) {
				f, err := os.Open(filepath.Join(root, tt.dir, name))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				before := e.emu.Calls()[emulator.RouteUpload]
				id := "corpus/" + tt.dir + "/" + name
				_, err = e.client.Upload(t.Context(), batchapi.UploadRequest{ID: id, Content: f, Size: fi.Size()})
				if n := e.emu.Calls()[emulator.RouteUpload] - before; n != 1 {
					t.Errorf("sent %d times, want once", n)
				}
				wantOK := tt.dir == "valid" || tt.accept[name]
				switch {
				case tt.either[name]:
					if err != nil && !batchapi.IsPermanent(err) {
						t.Errorf("refusal is not permanent: %v", err)
					}
				case wantOK && err != nil:
					t.Errorf("refused: %v", err)
				case !wantOK && (err == nil || !batchapi.IsPermanent(err)):
					t.Errorf("err = %v, want a permanent refusal", err)
				}
				if err == nil {
					if img, ok := e.emu.Image(id); !ok || img.Size != fi.Size() {
						t.Errorf("stored %+v, want %d bytes", img, fi.Size())
					}
				}
			})
		}
	}
}
