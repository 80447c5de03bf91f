package emulator

import (
	"os"
	"path/filepath"
	"testing"
)

const corpusDir = "../../../shared/corpus"

func corpusFiles(t *testing.T, sub string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, sub, "*"))
	if err != nil || len(files) == 0 {
		t.Skipf("image corpus not found at %s", filepath.Join(corpusDir, sub))
	}
	return files
}

// TestCorpus uploads every corpus file with the name it has and checks the documented
// outcome: valid/ accepted, invalid/ refused as not an image (415/5455), limits/ refused
// for a pixel limit (400/5400) except the file exactly at the edge.
func TestCorpus(t *testing.T) {
	s := newServer(t, Options{})
	want := map[string]struct{ status, code int }{
		"valid":   {200, 0},
		"invalid": {415, 5455},
		"limits":  {400, 5400},
	}
	for sub, w := range want {
		for _, f := range corpusFiles(t, sub) {
			name := filepath.Base(f)
			if name == "README.md" {
				continue
			}
			t.Run(sub+"/"+name, func(t *testing.T) {
				content, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				r := s.global(t).upload(fileField(name, content))
				if name == "edge-12000x8000.png" {
					r.want(t, 200, 0)
					img, _ := s.Emulator.Image(r.image(t).ID)
					if img.Width != 12000 || img.Height != 8000 {
						t.Errorf("size %dx%d", img.Width, img.Height)
					}
					return
				}
				r.want(t, w.status, w.code)
			})
		}
	}
}

func TestCorpusHEICAVIFConfigurable(t *testing.T) {
	no := false
	s := newServer(t, Options{AllowHEIC: &no, AllowAVIF: &no})
	c := s.global(t)
	// Generated containers first, so this holds without the corpus.
	c.upload(fileField("a.heic", heifBytes("heic", 10, 10))).want(t, 415, 5455)
	c.upload(fileField("a.avif", heifBytes("avif", 10, 10))).want(t, 415, 5455)
	for _, name := range []string{"rose.heic", "rose.avif"} {
		content, err := os.ReadFile(filepath.Join(corpusDir, "valid", name))
		if err != nil {
			t.Skipf("corpus: %v", err)
		}
		c.upload(fileField(name, content)).want(t, 415, 5455)
	}
}

func TestAnimationAreaOption(t *testing.T) {
	s := newServer(t, Options{MaxAnimationArea: 16 * 16 * 3})
	c := s.global(t)
	c.upload(fileField("a.gif", gifBytes(t, 16, 16, 3))).want(t, 200, 0)
	r := c.upload(fileField("b.gif", gifBytes(t, 16, 16, 4)))
	r.want(t, 400, 5400)
	if f, err := os.ReadFile(filepath.Join(corpusDir, "valid", "animated.webp")); err == nil {
		// 64x64, 3 frames: over a 16x16x3 budget.
		c.upload(fileField("a.webp", f)).want(t, 400, 5400)
	}
}
