package preflight_test

import (
	"fmt"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

func ExampleCheckFile() {
	lim := preflight.DefaultLimits()
	for _, p := range []string{
		"../../testdata/sample/animated/spinner.gif",
		"../../testdata/bad/not-a-photo.jpg",
		"../../testdata/bad/too-wide-12001x1.png",
	} {
		info, err := preflight.CheckFile(p, lim)
		if err != nil {
			fmt.Printf("skip (%s): %v\n", preflight.ReasonOf(err), err)
			continue
		}
		fmt.Printf("upload as %s: %dx%d, %d frames\n", info.ContentType, info.Width, info.Height, info.Frames)
	}
	// Output:
	// upload as image/gif: 64x64, 3 frames
	// skip (not-an-image): not an image: content is not PNG, JPEG, GIF, WebP, SVG, HEIC or AVIF (starts with "this")
	// skip (side-too-long): side too long: 12001x1 px: width 12,001 exceeds the 12,000 px limit
}
