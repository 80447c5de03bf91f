package preflight_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// Builders for test images: the stdlib encoders where they exist, hand-made containers where
// they do not (WebP, HEIF) or where the encoder cannot make the shape we need (APNG, interlaced
// PNG, decompression bombs).

// gradient is a small RGBA image with some detail, so encoders produce real data.
func gradient(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), uint8(x ^ y), 255})
		}
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeGIF(t testing.TB, w, h, frames int) []byte {
	t.Helper()
	g := &gif.GIF{}
	for i := range frames {
		p := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for y := range h {
			for x := range w {
				p.SetColorIndex(x, y, uint8(x+y+i*16))
			}
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngChunk frames data as a PNG chunk with a correct CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

func ihdr(w, h uint32, depth, ctype, interlace byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, w)
	b = binary.BigEndian.AppendUint32(b, h)
	return append(b, depth, ctype, 0, 0, interlace)
}

func zlibBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// buildPNG assembles signature, IHDR, the given chunks (already framed) and IEND.
func buildPNG(hdr []byte, chunks ...[]byte) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", hdr)...)
	for _, c := range chunks {
		b = append(b, c...)
	}
	return append(b, pngChunk("IEND", nil)...)
}

// splitIDAT frames z as several IDAT chunks of at most n bytes, as encoders do.
func splitIDAT(z []byte, n int) []byte {
	var b []byte
	for len(z) > 0 {
		k := min(n, len(z))
		b = append(b, pngChunk("IDAT", z[:k])...)
		z = z[k:]
	}
	return b
}

// apng builds an animated PNG of frames w×h gray frames (the default image is frame 0). Above a
// megapixel the image data is a dummy, for tests that turn zlib verification off.
func apng(t testing.TB, w, h uint32, frames int) []byte {
	t.Helper()
	z := []byte("dummy")
	if w*h <= 1e6 {
		z = zlibBytes(t, make([]byte, int(h)*(1+int(w))))
	}
	fctl := func(seq uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, seq)
		b = binary.BigEndian.AppendUint32(b, w)
		b = binary.BigEndian.AppendUint32(b, h)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 0)
		return append(b, 0, 1, 0, 10, 0, 0) // delay 1/10, dispose none, blend source
	}
	actl := binary.BigEndian.AppendUint32(nil, uint32(frames))
	actl = binary.BigEndian.AppendUint32(actl, 0)
	chunks := [][]byte{pngChunk("acTL", actl), pngChunk("fcTL", fctl(0)), pngChunk("IDAT", z)}
	seq := uint32(1)
	for range frames - 1 {
		chunks = append(chunks, pngChunk("fcTL", fctl(seq)))
		fdat := binary.BigEndian.AppendUint32(nil, seq+1)
		chunks = append(chunks, pngChunk("fdAT", append(fdat, z...)))
		seq += 2
	}
	return buildPNG(ihdr(w, h, 8, 0, 0), chunks...)
}

// riff builds a WebP file from chunks (FourCC + payload), padding odd payloads.
func riff(chunks ...[]byte) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c...)
	}
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(body)))
	b = append(b, "WEBP"...)
	return append(b, body...)
}

func webpChunk(fourCC string, payload []byte) []byte {
	b := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))...)
	b = append(b, payload...)
	if len(payload)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// vp8l is a lossless bitstream header for a w×h image followed by some (not decodable) data.
func vp8l(w, h int) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14
	return webpChunk("VP8L", append([]byte{0x2f}, binary.LittleEndian.AppendUint32(nil, bits)...))
}

// vp8 is a lossy key-frame header for a w×h image.
func vp8(w, h int) []byte {
	b := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}
	b = binary.LittleEndian.AppendUint16(b, uint16(w))
	b = binary.LittleEndian.AppendUint16(b, uint16(h))
	return webpChunk("VP8 ", append(b, 0, 0))
}

func le24(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }

// animatedWebP has frames w×h frames on a w×h canvas.
func animatedWebP(w, h, frames int) []byte {
	x := append([]byte{0x02, 0, 0, 0}, le24(w-1)...)
	x = append(x, le24(h-1)...)
	chunks := [][]byte{webpChunk("VP8X", x), webpChunk("ANIM", make([]byte, 6))}
	for range frames {
		f := append(le24(0), le24(0)...)
		f = append(f, le24(w-1)...)
		f = append(f, le24(h-1)...)
		f = append(f, le24(100)...)
		f = append(f, 0)
		chunks = append(chunks, webpChunk("ANMF", append(f, vp8l(w, h)...)))
	}
	return riff(chunks...)
}

func bmffBox(typ string, payload ...[]byte) []byte {
	var body []byte
	for _, p := range payload {
		body = append(body, p...)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

// heif builds a minimal HEIF file of the given brand: a primary item 1 whose ispe is w×h, and a
// second item with a larger ispe, which must not be taken for the primary's size.
func heif(brand string, w, h uint32) []byte {
	ftyp := bmffBox("ftyp", []byte(brand), []byte{0, 0, 0, 0}, []byte("mif1"), []byte(brand))
	fullBox := []byte{0, 0, 0, 0}
	ispe := func(w, h uint32) []byte {
		b := binary.BigEndian.AppendUint32(append([]byte{}, fullBox...), w)
		return bmffBox("ispe", binary.BigEndian.AppendUint32(b, h))
	}
	pitm := bmffBox("pitm", fullBox, []byte{0, 1})
	ipco := bmffBox("ipco", ispe(2*w, 2*h), ispe(w, h))
	// item 1 → property 2 (w×h); item 2 → property 1.
	ipma := bmffBox("ipma", fullBox, []byte{0, 0, 0, 2, 0, 1, 1, 0x82, 0, 2, 1, 0x81})
	meta := bmffBox("meta", fullBox, bmffBox("hdlr", make([]byte, 21)), pitm, bmffBox("iprp", ipco, ipma))
	return append(append(ftyp, meta...), bmffBox("mdat", make([]byte, 16))...)
}
