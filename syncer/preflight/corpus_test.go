package preflight_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// want is the expected outcome for one file: an Info (Reason "") or a refusal.
type want struct {
	format        preflight.Format
	width, height int
	frames        int
	reason        preflight.Reason
}

func accept(f preflight.Format, w, h, frames int) want {
	return want{format: f, width: w, height: h, frames: frames}
}

func refuse(r preflight.Reason) want { return want{reason: r} }

// corpusDir is the shared corpus, at ../shared/corpus from the repository root.
const corpusDir = "../../../shared/corpus"

// corpusWant is what the corpus README says of every file it holds.
var corpusWant = map[string]want{
	"valid/basn0g01.png":                 accept(preflight.PNG, 32, 32, 1),
	"valid/basn2c08.png":                 accept(preflight.PNG, 32, 32, 1),
	"valid/basn3p08-trns.png":            accept(preflight.PNG, 32, 32, 1),
	"valid/basn3p08.png":                 accept(preflight.PNG, 32, 32, 1),
	"valid/basn6a08.png":                 accept(preflight.PNG, 32, 32, 1),
	"valid/basn6a16.png":                 accept(preflight.PNG, 32, 32, 1),
	"valid/gray-gradient.interlaced.png": accept(preflight.PNG, 1, 16, 1),
	"valid/baseline.jpeg":                accept(preflight.JPEG, 150, 103, 1),
	"valid/progressive.jpeg":             accept(preflight.JPEG, 150, 103, 1),
	"valid/cmyk.jpeg":                    accept(preflight.JPEG, 150, 103, 1),
	"valid/gray.jpeg":                    accept(preflight.JPEG, 150, 103, 1),
	"valid/static.gif":                   accept(preflight.GIF, 150, 103, 1),
	"valid/interlaced.gif":               accept(preflight.GIF, 150, 103, 1),
	"valid/animated.gif":                 accept(preflight.GIF, 64, 64, 3),
	"valid/photo.webp":                   accept(preflight.WebP, 300, 197, 1),
	"valid/lossless.webp":                accept(preflight.WebP, 70, 46, 1),
	"valid/alpha.webp":                   accept(preflight.WebP, 320, 240, 1),
	"valid/animated.webp":                accept(preflight.WebP, 64, 64, 3),
	"valid/icon.svg":                     accept(preflight.SVG, 16, 16, 1),
	"valid/rose.heic":                    accept(preflight.HEIC, 70, 46, 1),
	"valid/rose.avif":                    accept(preflight.AVIF, 70, 46, 1),

	"invalid/empty.png":         refuse(preflight.ReasonEmpty),
	"invalid/text-named.jpg":    refuse(preflight.ReasonNotAnImage),
	"invalid/html-named.png":    refuse(preflight.ReasonNotAnImage),
	"invalid/noise.webp":        refuse(preflight.ReasonNotAnImage),
	"invalid/broken.svg":        refuse(preflight.ReasonCorrupt),
	"invalid/truncated.jpeg":    refuse(preflight.ReasonCorrupt),
	"invalid/cut-in-half.jpeg":  refuse(preflight.ReasonCorrupt),
	"invalid/invalid-crc32.png": refuse(preflight.ReasonCorrupt),
	"invalid/invalid-noend.png": refuse(preflight.ReasonCorrupt),
	"invalid/invalid-trunc.png": refuse(preflight.ReasonCorrupt),
	"invalid/invalid-zlib.png":  refuse(preflight.ReasonCorrupt),

	"limits/too-wide-13000x10.png":             refuse(preflight.ReasonSideTooLong),
	"limits/too-tall-10x12001.png":             refuse(preflight.ReasonSideTooLong),
	"limits/too-many-pixels-10001x10001.png":   refuse(preflight.ReasonTooManyPixels),
	"limits/edge-12000x8000.png":               accept(preflight.PNG, 12000, 8000, 1),
	"limits/animated-120-frames-1000x1000.gif": refuse(preflight.ReasonAnimationTooLarge),
}

// repoWant is what testdata/README.md says of the repository's own sample and bad images.
var repoWant = map[string]want{
	"sample/shop/boots.jpg":                 accept(preflight.JPEG, 150, 103, 1),
	"sample/shop/hat.png":                   accept(preflight.PNG, 32, 32, 1),
	"sample/logos/cfimgsync.svg":            accept(preflight.SVG, 64, 64, 1),
	"sample/banners/spring sale.webp":       accept(preflight.WebP, 300, 197, 1),
	"sample/animated/spinner.gif":           accept(preflight.GIF, 64, 64, 3),
	"sample/animated/dots.webp":             accept(preflight.WebP, 64, 64, 3),
	"sample/gallery/caf\u00e9.png":          accept(preflight.PNG, 32, 32, 1),
	"sample/gallery/lossless.webp":          accept(preflight.WebP, 70, 46, 1),
	"sample/gallery/nested/deeper/gray.jpg": accept(preflight.JPEG, 150, 103, 1),

	"bad/not-a-photo.jpg":      refuse(preflight.ReasonNotAnImage),
	"bad/truncated.jpg":        refuse(preflight.ReasonCorrupt),
	"bad/empty.png":            refuse(preflight.ReasonEmpty),
	"bad/broken.svg":           refuse(preflight.ReasonCorrupt),
	"bad/bad-crc.png":          refuse(preflight.ReasonCorrupt),
	"bad/too-wide-12001x1.png": refuse(preflight.ReasonSideTooLong),
}

func TestCorpus(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		t.Skipf("shared corpus not found at %s: %v", corpusDir, err)
	}
	checkTree(t, corpusDir, []string{"valid", "invalid", "limits"}, corpusWant)
}

func TestRepoTestdata(t *testing.T) {
	checkTree(t, "../../testdata", []string{"sample", "bad"}, repoWant)
}

// checkTree runs CheckFile on every file under root/dirs and compares with wants. A file with no
// expectation fails the test, so new test images cannot go unchecked.
func checkTree(t *testing.T, root string, dirs []string, wants map[string]want) {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			seen[rel] = true
			w, ok := wants[rel]
			if !ok {
				t.Errorf("%s: no expected outcome in the test table", rel)
				return nil
			}
			t.Run(rel, func(t *testing.T) {
				info, err := preflight.CheckFile(path, preflight.DefaultLimits())
				checkOutcome(t, info, err, w)
			})
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", d, err)
		}
	}
	for rel := range wants {
		if !seen[rel] {
			t.Errorf("%s: expected in %s but missing", rel, root)
		}
	}
}

func checkOutcome(t *testing.T, info preflight.Info, err error, w want) {
	t.Helper()
	if w.reason != "" {
		if got := preflight.ReasonOf(err); got != w.reason {
			t.Fatalf("got reason %q (err %v, info %+v), want %q", got, err, info, w.reason)
		}
		var pe *preflight.Error
		if !errors.As(err, &pe) || pe.Detail == "" {
			t.Fatalf("refusal %v carries no detail", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("refused: %v (reason %q), want accepted", err, preflight.ReasonOf(err))
	}
	got := want{format: info.Format, width: info.Width, height: info.Height, frames: info.Frames}
	if got != w {
		t.Fatalf("got %+v, want %+v", got, w)
	}
	if info.ContentType != info.Format.ContentType() || info.ContentType == "" {
		t.Fatalf("content type %q for format %q", info.ContentType, info.Format)
	}
}
