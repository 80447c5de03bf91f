package preflight_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// FuzzCheck: Check never panics, never reads at or past the size it is given (the data beyond a
// cut is still there, so a stray read would be seen), and with a reader that cannot fail every
// error is a refusal; an accepted file has a format and, unless SVG, a positive size.
func FuzzCheck(f *testing.F) {
	for _, dir := range []string{"../../testdata/sample", "../../testdata/bad"} {
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b, uint16(0))
				}
			}
			return nil
		})
	}
	f.Add(apng(f, 8, 8, 2), uint16(0))
	f.Add(animatedWebP(8, 8, 2), uint16(0))
	f.Add(riff(vp8(8, 8)), uint16(0))
	f.Add(heif("avif", 8, 8), uint16(0))
	f.Add(heif("heic", 8, 8), uint16(9))
	f.Add(encodeGIF(f, 8, 8, 2), uint16(5))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "b">]><svg width="2"><g>&a;</g></svg>`), uint16(0))

	lim := preflight.DefaultLimits()
	lim.MaxInflate = 1 << 20 // keep each run quick; the cap is tested on its own
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		size := int64(len(data))
		if cut > 0 && int64(cut) < size {
			size -= int64(cut)
		}
		r := &strictReader{t: t, data: data, size: size}
		info, err := preflight.Check(r, size, lim)
		if err != nil {
			var pe *preflight.Error
			if !errors.As(err, &pe) {
				t.Fatalf("in-memory input gave a non-refusal error: %v", err)
			}
			if pe.Reason == "" || pe.Detail == "" && pe.Reason != preflight.ReasonEmpty {
				t.Fatalf("refusal without reason or detail: %#v", pe)
			}
			return
		}
		if info.Format == "" || info.ContentType == "" || info.Frames < 1 {
			t.Fatalf("accepted with incomplete info %+v", info)
		}
		if info.Format != preflight.SVG && (info.Width <= 0 || info.Height <= 0) {
			t.Fatalf("accepted %s with size %dx%d", info.Format, info.Width, info.Height)
		}
	})
}
