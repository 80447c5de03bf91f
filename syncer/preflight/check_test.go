package preflight_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// strictReader is an io.ReaderAt over data that fails the test if asked for anything at or past
// size, the limit Check was given (data may be longer, to catch exactly that). It counts bytes.
type strictReader struct {
	t    testing.TB
	data []byte
	size int64
	read int64
}

func (r *strictReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > r.size {
		r.t.Errorf("ReadAt(len %d, off %d) reaches past size %d", len(p), off, r.size)
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	r.read += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func check(t testing.TB, data []byte, lim preflight.Limits) (preflight.Info, error) {
	r := &strictReader{t: t, data: data, size: int64(len(data))}
	return preflight.Check(r, int64(len(data)), lim)
}

// mutate returns a copy of b changed by fn.
func mutate(b []byte, fn func([]byte) []byte) []byte {
	return fn(bytes.Clone(b))
}

// findChunk returns the offset of the first PNG chunk of type typ.
func findChunk(b []byte, typ string) int {
	return bytes.Index(b, []byte(typ)) - 4
}

func TestCheckGenerated(t *testing.T) {
	def := preflight.DefaultLimits()
	smallAnim := def
	smallAnim.MaxAnimatedArea = 3 * 20 * 20
	noHEIF := def
	noHEIF.AllowHEIC, noHEIF.AllowAVIF = false, false

	pngOK := encodePNG(t, gradient(40, 30))
	jpegOK := encodeJPEG(t, gradient(40, 30))
	gifOK := encodeGIF(t, 20, 20, 1)
	gifAnim := encodeGIF(t, 20, 20, 4)
	gray := make([]byte, 10*(1+10))

	// interlacedRaw is the inflated size of an 8-bit gray Adam7 image: passes that are empty for
	// a small image contribute no filter bytes, which is what the check must get exactly right.
	interlacedRaw := func(w, h int) []byte {
		passes := [7][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
		n := 0
		for _, p := range passes {
			pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
			if pw > 0 && ph > 0 {
				n += ph * (1 + pw)
			}
		}
		return make([]byte, n)
	}

	cases := []struct {
		name string
		data []byte
		lim  preflight.Limits
		want want
	}{
		{"empty", nil, def, refuse(preflight.ReasonEmpty)},
		{"text", []byte("hello, world\n"), def, refuse(preflight.ReasonNotAnImage)},
		{"one byte", []byte{0xff}, def, refuse(preflight.ReasonNotAnImage)},

		// PNG
		{"png", pngOK, def, accept(preflight.PNG, 40, 30, 1)},
		{"png zero limits use defaults", pngOK, preflight.Limits{}, accept(preflight.PNG, 40, 30, 1)},
		{"png cut in half", pngOK[:len(pngOK)/2], def, refuse(preflight.ReasonCorrupt)},
		{"png signature only", pngOK[:8], def, refuse(preflight.ReasonCorrupt)},
		{"png no IEND", pngOK[:len(pngOK)-12], def, refuse(preflight.ReasonCorrupt)},
		{"png IHDR CRC flipped", mutate(pngOK, func(b []byte) []byte { b[29] ^= 1; return b }), def, refuse(preflight.ReasonCorrupt)},
		{"png IDAT CRC flipped", mutate(pngOK, func(b []byte) []byte {
			i := findChunk(b, "IDAT")
			n := binary.BigEndian.Uint32(b[i:])
			b[i+8+int(n)] ^= 0x80
			return b
		}), def, refuse(preflight.ReasonCorrupt)},
		{"png zlib broken, CRC fixed", mutate(pngOK, func(b []byte) []byte {
			i := findChunk(b, "IDAT")
			n := int(binary.BigEndian.Uint32(b[i:]))
			for j := i + 8 + 2; j < i+8+n-4; j++ { // keep the zlib header, smash the deflate data
				b[j] = 0xff
			}
			binary.BigEndian.PutUint32(b[i+8+n:], crc32.ChecksumIEEE(b[i+4:i+8+n]))
			return b
		}), def, refuse(preflight.ReasonCorrupt)},
		{"png gray", buildPNG(ihdr(10, 10, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, gray))), def, accept(preflight.PNG, 10, 10, 1)},
		{"png IDAT split in many chunks", buildPNG(ihdr(10, 10, 8, 0, 0), splitIDAT(zlibBytes(t, gray), 3)), def, accept(preflight.PNG, 10, 10, 1)},
		{"png IDAT not consecutive", buildPNG(ihdr(10, 10, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, gray)[:5]), pngChunk("tEXt", []byte("a\x00b")), pngChunk("IDAT", zlibBytes(t, gray)[5:])), def, refuse(preflight.ReasonCorrupt)},
		{"png no IDAT", buildPNG(ihdr(10, 10, 8, 0, 0)), def, refuse(preflight.ReasonCorrupt)},
		{"png data too short", buildPNG(ihdr(10, 10, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, gray[:50]))), def, refuse(preflight.ReasonCorrupt)},
		{"png data one byte too long", buildPNG(ihdr(10, 10, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, append(bytes.Clone(gray), 0)))), def, refuse(preflight.ReasonCorrupt)},
		{"png bomb: 10x10 inflating to 1 MiB", buildPNG(ihdr(10, 10, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, make([]byte, 1<<20)))), def, refuse(preflight.ReasonCorrupt)},
		{"png 1-bit row packing", buildPNG(ihdr(9, 2, 1, 0, 0), pngChunk("IDAT", zlibBytes(t, make([]byte, 2*(1+2))))), def, accept(preflight.PNG, 9, 2, 1)},
		{"png 16-bit RGBA", buildPNG(ihdr(3, 2, 16, 6, 0), pngChunk("IDAT", zlibBytes(t, make([]byte, 2*(1+3*8))))), def, accept(preflight.PNG, 3, 2, 1)},
		{"png interlaced 3x3", buildPNG(ihdr(3, 3, 8, 0, 1), pngChunk("IDAT", zlibBytes(t, interlacedRaw(3, 3)))), def, accept(preflight.PNG, 3, 3, 1)},
		{"png interlaced 13x7", buildPNG(ihdr(13, 7, 8, 0, 1), pngChunk("IDAT", zlibBytes(t, interlacedRaw(13, 7)))), def, accept(preflight.PNG, 13, 7, 1)},
		{"png interlaced with non-interlaced size", buildPNG(ihdr(13, 7, 8, 0, 1), pngChunk("IDAT", zlibBytes(t, make([]byte, 7*14)))), def, refuse(preflight.ReasonCorrupt)},
		{"png palette without PLTE", buildPNG(ihdr(10, 10, 8, 3, 0), pngChunk("IDAT", zlibBytes(t, gray))), def, refuse(preflight.ReasonCorrupt)},
		{"png bad colour type", buildPNG(ihdr(10, 10, 8, 5, 0), pngChunk("IDAT", zlibBytes(t, gray))), def, refuse(preflight.ReasonCorrupt)},
		{"png bad depth for RGB", buildPNG(ihdr(10, 10, 4, 2, 0), pngChunk("IDAT", zlibBytes(t, gray))), def, refuse(preflight.ReasonCorrupt)},
		{"png zero width", buildPNG(ihdr(0, 10, 8, 0, 0)), def, refuse(preflight.ReasonCorrupt)},
		{"png first chunk not IHDR", append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IEND", nil)...), def, refuse(preflight.ReasonCorrupt)},
		{"png chunk length past end", mutate(pngOK, func(b []byte) []byte { i := findChunk(b, "IDAT"); binary.BigEndian.PutUint32(b[i:], 1<<30); return b }), def, refuse(preflight.ReasonCorrupt)},
		{"png huge chunk length", mutate(pngOK, func(b []byte) []byte {
			i := findChunk(b, "IDAT")
			binary.BigEndian.PutUint32(b[i:], 0xffffffff)
			return b
		}), def, refuse(preflight.ReasonCorrupt)},
		{"png trailing bytes after IEND", append(bytes.Clone(pngOK), "junk"...), def, accept(preflight.PNG, 40, 30, 1)},
		{"png too wide", buildPNG(ihdr(12001, 1, 8, 0, 0)), def, refuse(preflight.ReasonSideTooLong)},
		{"png too tall", buildPNG(ihdr(1, 13000, 8, 0, 0)), def, refuse(preflight.ReasonSideTooLong)},
		{"png 12000 wide is fine", buildPNG(ihdr(12000, 1, 8, 0, 0), pngChunk("IDAT", zlibBytes(t, make([]byte, 12001)))), def, accept(preflight.PNG, 12000, 1, 1)},
		{"png too many pixels", buildPNG(ihdr(10001, 10001, 8, 0, 0)), def, refuse(preflight.ReasonTooManyPixels)},
		{"png 10000x10000 is exactly the area limit", buildPNG(ihdr(10000, 10000, 1, 0, 0)), preflight.Limits{MaxInflate: -1}, refuse(preflight.ReasonCorrupt) /* no IDAT: got past the limits */},
		{"apng 3 frames", apng(t, 20, 20, 3), def, accept(preflight.PNG, 20, 20, 3)},
		{"apng at the animation limit", apng(t, 20, 20, 3), smallAnim, accept(preflight.PNG, 20, 20, 3)},
		{"apng over the animation limit", apng(t, 20, 20, 4), smallAnim, refuse(preflight.ReasonAnimationTooLarge)},

		// JPEG
		{"jpeg", jpegOK, def, accept(preflight.JPEG, 40, 30, 1)},
		{"jpeg gray", encodeJPEG(t, image.NewGray(image.Rect(0, 0, 17, 9))), def, accept(preflight.JPEG, 17, 9, 1)},
		{"jpeg cut in half", jpegOK[:len(jpegOK)/2], def, refuse(preflight.ReasonCorrupt)},
		{"jpeg without EOI", jpegOK[:len(jpegOK)-2], def, refuse(preflight.ReasonCorrupt)},
		{"jpeg SOI only", jpegOK[:3], def, refuse(preflight.ReasonCorrupt)},
		{"jpeg trailing data after EOI", append(bytes.Clone(jpegOK), 0, 0, 0), def, accept(preflight.JPEG, 40, 30, 1)},
		{"jpeg SOS before SOF", []byte{0xff, 0xd8, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0xff, 0xd9}, def, refuse(preflight.ReasonCorrupt)},
		{"jpeg EOI without scan", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xd9}, def, refuse(preflight.ReasonCorrupt)},
		{"jpeg segment length past end", []byte{0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, 0, 0}, def, refuse(preflight.ReasonCorrupt)},
		{"jpeg garbage between segments", mutate(jpegOK, func(b []byte) []byte { b[2+2+int(binary.BigEndian.Uint16(b[4:]))] = 0x12; return b }), def, refuse(preflight.ReasonCorrupt)},
		{"jpeg too wide", mutate(jpegOK, func(b []byte) []byte { i := sofOffset(b); binary.BigEndian.PutUint16(b[i+7:], 12001); return b }), def, refuse(preflight.ReasonSideTooLong)},
		{"jpeg too many pixels", mutate(jpegOK, func(b []byte) []byte {
			i := sofOffset(b)
			binary.BigEndian.PutUint16(b[i+5:], 10001)
			binary.BigEndian.PutUint16(b[i+7:], 10001)
			return b
		}), def, refuse(preflight.ReasonTooManyPixels)},

		// GIF
		{"gif", gifOK, def, accept(preflight.GIF, 20, 20, 1)},
		{"gif animated", gifAnim, def, accept(preflight.GIF, 20, 20, 4)},
		{"gif animated at the limit", encodeGIF(t, 20, 20, 3), smallAnim, accept(preflight.GIF, 20, 20, 3)},
		{"gif animated over the limit", gifAnim, smallAnim, refuse(preflight.ReasonAnimationTooLarge)},
		{"gif no trailer", gifOK[:len(gifOK)-1], def, refuse(preflight.ReasonCorrupt)},
		{"gif cut in half", gifOK[:len(gifOK)/2], def, refuse(preflight.ReasonCorrupt)},
		{"gif header only", gifOK[:13], def, refuse(preflight.ReasonCorrupt)},
		{"gif no frames", append(bytes.Clone(gifOK[:13+3*256]), 0x3b), def, refuse(preflight.ReasonCorrupt)},
		{"gif unknown block", mutate(gifOK, func(b []byte) []byte { b[len(b)-1] = 0x99; return b }), def, refuse(preflight.ReasonCorrupt)},
		{"gif too wide", mutate(gifOK, func(b []byte) []byte { binary.LittleEndian.PutUint16(b[6:], 12001); return b }), def, refuse(preflight.ReasonSideTooLong)},

		// WebP (containers built by hand; the bitstreams are not decoded)
		{"webp lossless", riff(vp8l(70, 46)), def, accept(preflight.WebP, 70, 46, 1)},
		{"webp lossy", riff(vp8(300, 197)), def, accept(preflight.WebP, 300, 197, 1)},
		{"webp animated", animatedWebP(20, 20, 3), def, accept(preflight.WebP, 20, 20, 3)},
		{"webp animated over the limit", animatedWebP(20, 20, 4), smallAnim, refuse(preflight.ReasonAnimationTooLarge)},
		{"webp RIFF longer than the file", riff(vp8l(70, 46))[:20], def, refuse(preflight.ReasonCorrupt)},
		{"webp chunk longer than the RIFF", mutate(riff(vp8l(70, 46)), func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 99); return b }), def, refuse(preflight.ReasonCorrupt)},
		{"webp bad VP8L signature", mutate(riff(vp8l(70, 46)), func(b []byte) []byte { b[20] = 0; return b }), def, refuse(preflight.ReasonCorrupt)},
		{"webp bad VP8 start code", mutate(riff(vp8(70, 46)), func(b []byte) []byte { b[23] = 0; return b }), def, refuse(preflight.ReasonCorrupt)},
		{"webp unknown first chunk", riff(webpChunk("JUNK", []byte("abcd"))), def, refuse(preflight.ReasonCorrupt)},
		{"webp no chunks", riff(), def, refuse(preflight.ReasonCorrupt)},
		{"webp too wide", riff(vp8l(12001, 1)), def, refuse(preflight.ReasonSideTooLong)},
		{"webp animation flag without frames", mutate(animatedWebP(20, 20, 1), func(b []byte) []byte { return riff(b[12 : 12+18+14]) }), def, refuse(preflight.ReasonCorrupt)},

		// SVG
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="20.5px"><rect/></svg>`), def, accept(preflight.SVG, 10, 21, 1)},
		{"svg without size", []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>`), def, accept(preflight.SVG, 0, 0, 1)},
		{"svg percent size", []byte(`<svg width="100%" height="5mm"/>`), def, accept(preflight.SVG, 0, 0, 1)},
		{"svg with BOM, prolog, comment, doctype", []byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n<svg width=\"8\" height=\"8\"></svg>\n"), def, accept(preflight.SVG, 8, 8, 1)},
		{"svg Illustrator entities", []byte(`<?xml version="1.0"?><!DOCTYPE svg [ <!ENTITY ns_svg "http://www.w3.org/2000/svg"> ]><svg xmlns="&ns_svg;" width="3" height="4"><text>&ns_svg;</text></svg>`), def, accept(preflight.SVG, 3, 4, 1)},
		{"svg latin-1", []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><svg width=\"1\" height=\"1\"><title>caf\xe9</title></svg>"), def, accept(preflight.SVG, 1, 1, 1)},
		{"svg unknown encoding", []byte(`<?xml version="1.0" encoding="x-klingon"?><svg/>`), def, refuse(preflight.ReasonCorrupt)},
		{"svg prefixed root", []byte(`<svg:svg xmlns:svg="http://www.w3.org/2000/svg"><svg:g/></svg:svg>`), def, accept(preflight.SVG, 0, 0, 1)},
		{"svg truncated", []byte(`<svg width="10"><rect`), def, refuse(preflight.ReasonCorrupt)},
		{"svg unclosed", []byte(`<svg width="10" height="10"><g>`), def, refuse(preflight.ReasonCorrupt)},
		{"svg mismatched tags", []byte(`<svg><g></a></svg>`), def, refuse(preflight.ReasonCorrupt)},
		{"svg undefined entity", []byte(`<svg><text>&nbsp;</text></svg>`), def, refuse(preflight.ReasonCorrupt)},
		{"svg second root", []byte(`<svg></svg><svg></svg>`), def, refuse(preflight.ReasonCorrupt)},
		{"svg text after root", []byte(`<svg></svg>trailing`), def, refuse(preflight.ReasonCorrupt)},
		{"svg too deep", []byte(`<svg>` + strings.Repeat("<g>", 10000) + strings.Repeat("</g>", 10000) + `</svg>`), def, refuse(preflight.ReasonCorrupt)},
		{"html", []byte(`<!doctype html><html><body>hi</body></html>`), def, refuse(preflight.ReasonNotAnImage)},
		{"xml not svg", []byte(`<?xml version="1.0"?><rss/>`), def, refuse(preflight.ReasonNotAnImage)},
		{"angle bracket text", []byte(`< not xml at all`), def, refuse(preflight.ReasonNotAnImage)},

		// HEIC / AVIF
		{"heic", heif("heic", 640, 480), def, accept(preflight.HEIC, 640, 480, 1)},
		{"avif", heif("avif", 640, 480), def, accept(preflight.AVIF, 640, 480, 1)},
		{"avif at its side limit", heif("avif", 1200, 10), def, accept(preflight.AVIF, 1200, 10, 1)},
		{"avif over its side limit", heif("avif", 1201, 10), def, refuse(preflight.ReasonSideTooLong)},
		{"heic 2000 wide is fine", heif("heic", 2000, 10), def, accept(preflight.HEIC, 2000, 10, 1)},
		{"heic without ipma takes the largest ispe", mutate(heif("heic", 640, 480), func(b []byte) []byte { copy(b[bytes.Index(b, []byte("ipma")):], "free"); return b }), def, accept(preflight.HEIC, 1280, 960, 1)},
		{"heic turned off", heif("heic", 64, 64), noHEIF, refuse(preflight.ReasonUnsupportedFormat)},
		{"avif turned off", heif("avif", 64, 64), noHEIF, refuse(preflight.ReasonUnsupportedFormat)},
		{"heif mif1 with heic compatible", mutate(heif("heic", 64, 64), func(b []byte) []byte { copy(b[8:], "mif1"); return b }), def, accept(preflight.HEIC, 64, 64, 1)},
		{"mp4 is not an image", bmffBox("ftyp", []byte("isom"), make([]byte, 4), []byte("isomiso2")), def, refuse(preflight.ReasonNotAnImage)},
		{"heic truncated", heif("heic", 64, 64)[:60], def, refuse(preflight.ReasonCorrupt)},
		{"heic without meta", append(bmffBox("ftyp", []byte("heic"), make([]byte, 4), []byte("mif1heic")), bmffBox("mdat")...), def, refuse(preflight.ReasonCorrupt)},
		{"heic without ispe", append(bmffBox("ftyp", []byte("heic"), make([]byte, 4)), bmffBox("meta", make([]byte, 4), bmffBox("iprp", bmffBox("ipco")))...), def, refuse(preflight.ReasonCorrupt)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := check(t, c.data, c.lim)
			checkOutcome(t, info, err, c.want)
		})
	}
}

// sofOffset finds the SOF0 marker of a baseline JPEG written by image/jpeg.
func sofOffset(b []byte) int { return bytes.Index(b, []byte{0xff, 0xc0}) }

func TestTooLargeReadsNothing(t *testing.T) {
	r := &strictReader{t: t, size: 0} // any read fails the test
	_, err := preflight.Check(r, 10<<20+1, preflight.DefaultLimits())
	if preflight.ReasonOf(err) != preflight.ReasonTooLarge {
		t.Fatalf("got %v, want too-large", err)
	}
	if want := "too large: 10.0 MiB (10,485,761 bytes) exceeds the 10 MiB limit"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if r.read != 0 {
		t.Errorf("read %d bytes of a file refused for its size", r.read)
	}
}

func TestTooLargeRealPNG(t *testing.T) {
	// A real PNG over 10 MiB, as the corpus README suggests. Stored uncompressed, its content
	// does not matter, so a blank image is as good as noise and much quicker to make.
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if err := enc.Encode(&b, image.NewGray(image.Rect(0, 0, 3300, 3300))); err != nil {
		t.Fatal(err)
	}
	if b.Len() <= 10<<20 {
		t.Fatalf("test PNG is only %d bytes", b.Len())
	}
	_, err := check(t, b.Bytes(), preflight.DefaultLimits())
	if preflight.ReasonOf(err) != preflight.ReasonTooLarge || !strings.Contains(err.Error(), "10 MiB") {
		t.Fatalf("got %v, want too-large naming the 10 MiB limit", err)
	}
	lim := preflight.DefaultLimits()
	lim.MaxBytes = 20 << 20
	if info, err := check(t, b.Bytes(), lim); err != nil || info.Width != 3300 {
		t.Fatalf("with a 20 MiB limit: %+v, %v", info, err)
	}
}

func TestMessagesNameLimitAndValue(t *testing.T) {
	lim := preflight.DefaultLimits()
	lim.MaxAnimatedArea = 50_000_000
	lim.MaxInflate = -1 // the big APNG below carries a dummy IDAT
	cases := []struct {
		data []byte
		want string
	}{
		{buildPNG(ihdr(13000, 10, 8, 0, 0)), "side too long: 13000x10 px: width 13,000 exceeds the 12,000 px limit"},
		{buildPNG(ihdr(10001, 10001, 8, 0, 0)), "too many pixels: 10001x10001 is 100,020,001 px, over the 100,000,000 px limit"},
		{heif("avif", 1300, 800), "side too long: 1300x800 px: width 1,300 exceeds the AVIF 1,200 px limit"},
		{apng(t, 5000, 5000, 3), "animation too large: 3 frames of 5000x5000 are 75,000,000 px, over the 50,000,000 px limit for animations"},
		{nil, "empty file: 0 bytes"},
	}
	for _, c := range cases {
		_, err := check(t, c.data, lim)
		if err == nil || err.Error() != c.want {
			t.Errorf("got %v\nwant %s", err, c.want)
		}
	}
}

func TestReasonOfWrapped(t *testing.T) {
	_, err := check(t, []byte("plain text"), preflight.DefaultLimits())
	wrapped := fmt.Errorf("upload shop/a.jpg: %w", err)
	if got := preflight.ReasonOf(wrapped); got != preflight.ReasonNotAnImage {
		t.Errorf("ReasonOf(wrapped) = %q", got)
	}
	if got := preflight.ReasonOf(errors.New("other")); got != "" {
		t.Errorf("ReasonOf(other) = %q, want empty", got)
	}
	if got := preflight.ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q, want empty", got)
	}
}

// failingReader fails every read at or after off.
type failingReader struct {
	data []byte
	off  int64
	err  error
}

func (r *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.off {
		n := copy(p, r.data[off:max(off, r.off)])
		return n, r.err
	}
	return copy(p, r.data[off:]), nil
}

// A read error, or a file shorter than its stated size, says nothing about the content: it must
// not come back as a refusal (which would park the file until it changes).
func TestReadErrorsAreNotRefusals(t *testing.T) {
	ioErr := errors.New("input/output error")
	pngOK := encodePNG(t, gradient(40, 30))
	jpegOK := encodeJPEG(t, gradient(40, 30))
	for _, data := range [][]byte{pngOK, jpegOK, encodeGIF(t, 9, 9, 2), animatedWebP(9, 9, 2), heif("heic", 9, 9), []byte(`<svg>` + strings.Repeat(" ", 5000) + `</svg>`)} {
		for _, err := range []error{ioErr, io.EOF} {
			r := &failingReader{data: data, off: int64(len(data)) / 2, err: err}
			_, got := preflight.Check(r, int64(len(data)), preflight.DefaultLimits())
			if got == nil || preflight.ReasonOf(got) != "" {
				t.Errorf("%q… with %v at the end: got %v, want a plain error", data[:4], err, got)
			}
			if err == ioErr && !errors.Is(got, ioErr) {
				t.Errorf("%q…: %v does not wrap the read error", data[:4], got)
			}
		}
	}
}

// The walk skips segments it does not need by offset, without reading them.
func TestSkipsWithoutReading(t *testing.T) {
	jpegOK := encodeJPEG(t, gradient(40, 30))
	// An APP15 segment of 60 KiB right after SOI.
	pad := append([]byte{0xff, 0xef, 0xff, 0xff}, bytes.Repeat([]byte{0xaa}, 0xffff-2)...)
	data := append(append(bytes.Clone(jpegOK[:2]), pad...), jpegOK[2:]...)
	r := &strictReader{t: t, data: data, size: int64(len(data))}
	if _, err := preflight.Check(r, r.size, preflight.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if r.read >= int64(len(pad)) {
		t.Errorf("read %d bytes of a %d-byte file; the %d-byte APP segment should be skipped", r.read, len(data), len(pad))
	}
}

// Memory stays flat whatever the pixel count: a 2000×2000 PNG inflates to 4 MB but is
// checked in a small constant amount of memory.
func TestPNGMemoryIsConstant(t *testing.T) {
	data := buildPNG(ihdr(2000, 2000, 8, 0, 0), splitIDAT(zlibBytes(t, make([]byte, 2000*2001)), 8192))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := check(t, data, preflight.DefaultLimits())
	runtime.ReadMemStats(&after)
	if err != nil || info.Width != 2000 {
		t.Fatalf("%+v, %v", info, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("checking a 4 MP PNG allocated %d bytes", alloc)
	}
}

// Past MaxInflate only CRCs are checked: a broken stream tail goes unnoticed, by design.
func TestMaxInflateCap(t *testing.T) {
	raw := make([]byte, 1000*1001)
	z := zlibBytes(t, raw)
	binary.BigEndian.PutUint32(z[len(z)-4:], 0xdeadbeef) // bad Adler-32 at the very end
	data := buildPNG(ihdr(1000, 1000, 8, 0, 0), pngChunk("IDAT", z))
	lim := preflight.DefaultLimits()
	if _, err := check(t, data, lim); preflight.ReasonOf(err) != preflight.ReasonCorrupt {
		t.Errorf("full verification: got %v, want corrupt", err)
	}
	for _, cap := range []int64{1000, -1} {
		lim.MaxInflate = cap
		if _, err := check(t, data, lim); err != nil {
			t.Errorf("MaxInflate %d: got %v, want accepted (only CRCs checked past the cap)", cap, err)
		}
	}
}

// A file that grows while being checked (a writer appending) is checked as of the size the
// caller saw: the bytes past it are never read.
func TestReadsOnlyUpToSize(t *testing.T) {
	for _, img := range [][]byte{encodePNG(t, gradient(9, 9)), encodeJPEG(t, gradient(9, 9)), encodeGIF(t, 9, 9, 2), animatedWebP(9, 9, 2), heif("avif", 9, 9), []byte(`<svg width="9" height="9"/>`)} {
		grown := append(bytes.Clone(img), bytes.Repeat([]byte{0xff}, 4096)...)
		r := &strictReader{t: t, data: grown, size: int64(len(img))}
		if info, err := preflight.Check(r, r.size, preflight.DefaultLimits()); err != nil || info.Width != 9 {
			t.Errorf("%s: %+v, %v", info.Format, info, err)
		}
	}
}
