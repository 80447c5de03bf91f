package emulator

import (
	"bytes"
	"compress/flate"
	"compress/lzw"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"image/gif"
	"image/jpeg"
	"io"
	"strconv"
	"strings"

	"golang.org/x/image/webp"
)

// Image formats as reported in Image.Format.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
	FormatGIF  = "gif"
	FormatWebP = "webp"
	FormatSVG  = "svg"
	FormatHEIC = "heic"
	FormatAVIF = "avif"
)

// Limits from the API reference (D-limits).
const (
	maxSide     = 12000
	maxSideAVIF = 1200
	maxArea     = 100_000_000
	// fullDecodeArea bounds the images handed to a full standard-library decoder (JPEG,
	// GIF, WebP). Above it the checks are structural, so a 96-megapixel upload never
	// allocates a 400 MB RGBA buffer. PNG and GIF data is always streamed to nowhere.
	fullDecodeArea = 4_000_000
)

// contentType is the Content-Type the delivery and blob routes answer for a format.
func contentType(format string) string {
	switch format {
	case FormatSVG:
		return "image/svg+xml"
	case "":
		return "application/octet-stream"
	}
	return "image/" + format
}

// imageInfo is what inspection learns from the bytes.
type imageInfo struct {
	format        string
	width, height int
	frames        int // 1 for still images
}

// inspectError is why content was refused. limit is true when the image decoded but is
// over a pixel limit (answered 5400), false when the content is not an acceptable image
// at all (answered 5455).
type inspectError struct {
	limit bool
	msg   string
}

func (e *inspectError) Error() string { return e.msg }

func unsupported(format string, args ...any) *inspectError {
	return &inspectError{msg: fmt.Sprintf(format, args...)}
}

// inspect sniffs the format from the content (never from a name), checks that the image
// is whole and decodable, and checks the pixel limits.
func (e *Emulator) inspect(data []byte) (imageInfo, *inspectError) {
	var (
		info imageInfo
		err  *inspectError
	)
	switch {
	case len(data) == 0:
		return info, unsupported("Uploaded image is empty")
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		info, err = e.inspectPNG(data)
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		info, err = inspectJPEG(data)
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		info, err = e.inspectGIF(data)
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		info, err = e.inspectWebP(data)
	case len(data) >= 12 && string(data[4:8]) == "ftyp":
		info, err = e.inspectHEIF(data)
	default:
		info, err = inspectSVG(data)
	}
	if err != nil {
		return info, err
	}
	return info, e.checkLimits(info)
}

func (e *Emulator) checkLimits(info imageInfo) *inspectError {
	if info.format == FormatSVG {
		return nil // vector: no pixel limits apply
	}
	side := maxSide
	if info.format == FormatAVIF {
		side = maxSideAVIF
	}
	if info.width <= 0 || info.height <= 0 {
		return unsupported("Uploaded image has no dimensions")
	}
	if info.width > side || info.height > side {
		return &inspectError{limit: true, msg: fmt.Sprintf(
			"Image dimensions %dx%d exceed the maximum of %d pixels per side", info.width, info.height, side)}
	}
	area := int64(info.width) * int64(info.height)
	if area > maxArea {
		return &inspectError{limit: true, msg: fmt.Sprintf(
			"Image area %dx%d = %d pixels exceeds the maximum of 100 megapixels", info.width, info.height, area)}
	}
	if info.frames > 1 {
		total := area * int64(info.frames)
		if total > e.opts.MaxAnimationArea {
			return &inspectError{limit: true, msg: fmt.Sprintf(
				"Animation area %dx%d x %d frames = %d pixels exceeds the maximum of %d pixels summed over all frames",
				info.width, info.height, info.frames, total, e.opts.MaxAnimationArea)}
		}
	}
	return nil
}

// ---- PNG ----

func (e *Emulator) inspectPNG(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{format: FormatPNG, frames: 1}
	var (
		idat                   [][]byte
		sawIHDR, sawIEND       bool
		depth, ctype, interlac byte
	)
	p := data[8:]
	for len(p) > 0 {
		if len(p) < 12 {
			return info, unsupported("Error during decoding: PNG chunk truncated")
		}
		n := binary.BigEndian.Uint32(p[0:4])
		if uint64(n)+12 > uint64(len(p)) {
			return info, unsupported("Error during decoding: PNG chunk truncated")
		}
		typ := string(p[4:8])
		body := p[8 : 8+n]
		if crc32.ChecksumIEEE(p[4:8+n]) != binary.BigEndian.Uint32(p[8+n:12+n]) {
			return info, unsupported("Error during decoding: PNG chunk %q has a bad checksum", typ)
		}
		p = p[12+n:]
		if !sawIHDR && typ != "IHDR" {
			return info, unsupported("Error during decoding: PNG does not start with IHDR")
		}
		switch typ {
		case "IHDR":
			if sawIHDR || n != 13 {
				return info, unsupported("Error during decoding: bad PNG IHDR")
			}
			sawIHDR = true
			info.width = int(binary.BigEndian.Uint32(body[0:4]))
			info.height = int(binary.BigEndian.Uint32(body[4:8]))
			depth, ctype, interlac = body[8], body[9], body[12]
		case "IDAT":
			idat = append(idat, body)
		case "IEND":
			sawIEND = true
		case "acTL":
			// APNG: an animated PNG. Count frames for the summed-area limit.
			if n >= 4 {
				info.frames = max(1, int(binary.BigEndian.Uint32(body[0:4])))
			}
		}
		if sawIEND {
			break
		}
	}
	if !sawIHDR || !sawIEND {
		return info, unsupported("Error during decoding: PNG has no IEND chunk (truncated)")
	}
	if len(idat) == 0 {
		return info, unsupported("Error during decoding: PNG has no image data")
	}
	bpp, ok := pngBitsPerPixel(ctype, depth)
	if !ok || interlac > 1 {
		return info, unsupported("Error during decoding: unsupported PNG color type %d, bit depth %d", ctype, depth)
	}
	if info.width <= 0 || info.height <= 0 {
		return info, unsupported("Error during decoding: PNG has zero dimensions")
	}
	// Limits first: a refused image need not be decompressed at all.
	if info.width > maxSide || info.height > maxSide || int64(info.width)*int64(info.height) > maxArea {
		return info, nil
	}
	rows := &pngRows{runs: pngRowRuns(info.width, info.height, bpp, interlac == 1)}
	if err := e.inflateCheck(bytes.Join(idat, nil), rows); err != nil {
		return info, unsupported("Error during decoding: PNG image data: %v", err)
	}
	return info, nil
}

// inflateCheck inflates a zlib stream into w, which checks the data, and checks the
// Adler-32 trailer when the data is small enough for that to be cheap. Above that the
// trailer must be present but is not recomputed: the chunk CRCs already cover every
// byte, and summing 100 MB byte by byte would dominate the check.
func (e *Emulator) inflateCheck(z []byte, w *pngRows) error {
	if len(z) < 2+4 || (uint16(z[0])<<8|uint16(z[1]))%31 != 0 || z[0]&0x0f != 8 || z[1]&0x20 != 0 {
		return errors.New("bad zlib header")
	}
	br := bytes.NewReader(z[2:])
	// Inflaters are pooled: each holds a 32 KiB window, which would otherwise be most of
	// the garbage a small upload makes.
	fr, _ := e.inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(br)
	} else if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
		return err
	}
	defer e.inflaters.Put(fr)
	var sum hash.Hash32
	var dst io.Writer = w
	if w.total() <= 32<<20 {
		sum = adler32.New()
		dst = io.MultiWriter(w, sum)
	}
	if _, err := io.Copy(dst, fr); err != nil {
		return err
	}
	if !w.complete() {
		return fmt.Errorf("image data is short (%d bytes)", w.n)
	}
	var trailer [4]byte
	if _, err := io.ReadFull(br, trailer[:]); err != nil {
		return errors.New("zlib stream has no checksum (truncated)")
	}
	if sum != nil && binary.BigEndian.Uint32(trailer[:]) != sum.Sum32() {
		return errors.New("zlib: invalid checksum")
	}
	return nil
}

// rowRun is a run of scanlines of one length (filter byte included).
type rowRun struct {
	length int64
	count  int64
}

// pngRowRuns lists the scanlines of an image: one run, or one per Adam7 pass.
func pngRowRuns(w, h, bpp int, interlaced bool) []rowRun {
	run := func(w, h int) []rowRun {
		if w <= 0 || h <= 0 {
			return nil
		}
		return []rowRun{{length: 1 + (int64(w)*int64(bpp)+7)/8, count: int64(h)}}
	}
	if !interlaced {
		return run(w, h)
	}
	passes := [7][4]int{ // x0, y0, dx, dy of Adam7
		{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
	}
	var runs []rowRun
	for _, p := range passes {
		runs = append(runs, run((w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3])...)
	}
	return runs
}

// pngRows receives decompressed PNG data and checks the filter type at the start of
// every scanline, without keeping any of it.
type pngRows struct {
	runs []rowRun
	pos  int64 // offset in the current row
	n    int64 // bytes written
}

func (r *pngRows) total() int64 {
	var t int64
	for _, run := range r.runs {
		t += run.length * run.count
	}
	return t
}

func (r *pngRows) complete() bool { return len(r.runs) == 0 }

func (r *pngRows) Write(p []byte) (int, error) {
	written := len(p)
	r.n += int64(len(p))
	for len(p) > 0 && len(r.runs) > 0 {
		cur := &r.runs[0]
		if r.pos == 0 && p[0] > 4 {
			return 0, fmt.Errorf("bad filter type %d", p[0])
		}
		take := min(int64(len(p)), cur.length-r.pos)
		r.pos += take
		p = p[take:]
		if r.pos == cur.length {
			r.pos = 0
			if cur.count--; cur.count == 0 {
				r.runs = r.runs[1:]
			}
		}
	}
	// Data past the last row is ignored, as decoders do.
	return written, nil
}

// discard hides io.Discard's ReaderFrom so io.Copy uses its own 32 KiB buffer rather than
// many small reads.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func pngBitsPerPixel(ctype, depth byte) (int, bool) {
	valid := func(ds ...byte) bool {
		for _, d := range ds {
			if d == depth {
				return true
			}
		}
		return false
	}
	switch ctype {
	case 0:
		return int(depth), valid(1, 2, 4, 8, 16)
	case 2:
		return 3 * int(depth), valid(8, 16)
	case 3:
		return int(depth), valid(1, 2, 4, 8)
	case 4:
		return 2 * int(depth), valid(8, 16)
	case 6:
		return 4 * int(depth), valid(8, 16)
	}
	return 0, false
}

// ---- JPEG ----

func inspectJPEG(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{format: FormatJPEG, frames: 1}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return info, unsupported("Error during decoding: %v", err)
	}
	info.width, info.height = cfg.Width, cfg.Height
	if err := jpegStructure(data); err != nil {
		return info, unsupported("Error during decoding: %v", err)
	}
	if info.width > maxSide || info.height > maxSide || int64(info.width)*int64(info.height) > fullDecodeArea {
		return info, nil // structure checked above; too big to decode cheaply
	}
	if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
		return info, unsupported("Error during decoding: %v", err)
	}
	return info, nil
}

// jpegStructure walks the marker segments and the entropy-coded data up to EOI, so a
// file cut short is refused without decoding any pixels. It also checks that the scans
// cover every component and, for a progressive JPEG, every coefficient down to the last
// bit: a progressive file cut after a few scans (with an EOI appended) decodes to a
// blurry picture in lenient decoders, but its data is incomplete.
func jpegStructure(data []byte) error {
	var (
		progressive bool
		comps       []byte            // component ids from SOF
		done        map[byte][64]int8 // per component and coefficient: lowest Al seen, -1 = none
	)
	p := 2 // past SOI
	for {
		if p+2 > len(data) {
			return errors.New("JPEG truncated: no EOI marker")
		}
		if data[p] != 0xff {
			return fmt.Errorf("JPEG marker expected at offset %d", p)
		}
		m := data[p+1]
		switch {
		case m == 0xff: // fill byte
			p++
			continue
		case m == 0xd9: // EOI
			return jpegComplete(progressive, comps, done)
		case m == 0x01 || (m >= 0xd0 && m <= 0xd7):
			p += 2
			continue
		}
		if p+4 > len(data) {
			return errors.New("JPEG truncated in a segment header")
		}
		n := int(binary.BigEndian.Uint16(data[p+2 : p+4]))
		if n < 2 || p+2+n > len(data) {
			return errors.New("JPEG truncated in a segment")
		}
		seg := data[p+4 : p+2+n]
		p += 2 + n
		switch {
		case m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc: // SOFn
			if len(seg) < 6 || len(seg) < 6+3*int(seg[5]) {
				return errors.New("JPEG frame header is short")
			}
			progressive = m == 0xc2 || m == 0xc6 || m == 0xca || m == 0xce
			done = make(map[byte][64]int8)
			comps = nil
			for i := 0; i < int(seg[5]); i++ {
				id := seg[6+3*i]
				comps = append(comps, id)
				var a [64]int8
				for k := range a {
					a[k] = -1
				}
				done[id] = a
			}
		case m == 0xda: // SOS
			if done == nil {
				return errors.New("JPEG scan before frame header")
			}
			if len(seg) < 1 || len(seg) < 1+2*int(seg[0])+3 {
				return errors.New("JPEG scan header is short")
			}
			ns := int(seg[0])
			ss, se, al := int(seg[1+2*ns]), int(seg[2+2*ns]), int8(seg[3+2*ns]&0x0f)
			if !progressive {
				ss, se, al = 0, 63, 0
			}
			if ss > se || se > 63 {
				return errors.New("JPEG scan has a bad spectral range")
			}
			for i := 0; i < ns; i++ {
				id := seg[1+2*i]
				a, ok := done[id]
				if !ok {
					return fmt.Errorf("JPEG scan names unknown component %d", id)
				}
				for k := ss; k <= se; k++ {
					if a[k] < 0 || al < a[k] {
						a[k] = al
					}
				}
				done[id] = a
			}
		}
		if m != 0xda {
			continue
		}
		// Entropy-coded data runs until a marker that is neither a stuffed zero nor RST.
		for {
			i := bytes.IndexByte(data[p:], 0xff)
			if i < 0 || p+i+1 >= len(data) {
				return errors.New("JPEG truncated in entropy-coded data: no EOI marker")
			}
			p += i
			next := data[p+1]
			if next == 0x00 || next == 0xff || (next >= 0xd0 && next <= 0xd7) {
				p++
				continue
			}
			break
		}
	}
}

func jpegComplete(progressive bool, comps []byte, done map[byte][64]int8) error {
	if len(comps) == 0 {
		return errors.New("JPEG has no frame header")
	}
	for _, id := range comps {
		a := done[id]
		for k, al := range a {
			if al < 0 || (progressive && al != 0) {
				return fmt.Errorf("JPEG truncated: component %d coefficient %d was never fully coded (missing scans)", id, k)
			}
		}
	}
	return nil
}

// ---- GIF ----

func (e *Emulator) inspectGIF(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{format: FormatGIF}
	fail := func(format string, args ...any) (imageInfo, *inspectError) {
		return info, unsupported("Error during decoding: GIF: "+format, args...)
	}
	if len(data) < 13 {
		return fail("truncated header")
	}
	info.width = int(binary.LittleEndian.Uint16(data[6:8]))
	info.height = int(binary.LittleEndian.Uint16(data[8:10]))
	flags := data[10]
	p := 13
	if flags&0x80 != 0 {
		p += 3 << (flags&7 + 1)
	}
	// subBlocks returns the concatenated data of the sub-block chain starting at p, and the
	// offset after its terminator.
	subBlocks := func(p int, collect bool) ([]byte, int, bool) {
		var out []byte
		for {
			if p >= len(data) {
				return nil, 0, false
			}
			n := int(data[p])
			p++
			if n == 0 {
				return out, p, true
			}
			if p+n > len(data) {
				return nil, 0, false
			}
			if collect {
				out = append(out, data[p:p+n]...)
			}
			p += n
		}
	}
	type frame struct {
		w, h     int
		litWidth int
		lzwData  []byte
	}
	var frames []frame
	for {
		if p >= len(data) {
			return fail("truncated: no trailer")
		}
		switch data[p] {
		case 0x3b: // trailer
			info.frames = len(frames)
			if len(frames) == 0 {
				return fail("no image data")
			}
			if err := e.checkLimits(info); err != nil {
				return info, nil // the caller reports the limit; no need to decode
			}
			for i, f := range frames {
				if f.litWidth < 2 || f.litWidth > 8 {
					return fail("frame %d: bad LZW code size %d", i, f.litWidth)
				}
				zr := lzw.NewReader(bytes.NewReader(f.lzwData), lzw.LSB, f.litWidth)
				n, err := io.CopyN(discard{}, zr, int64(f.w)*int64(f.h))
				zr.Close()
				if err != nil && !(errors.Is(err, io.EOF) && n == int64(f.w)*int64(f.h)) {
					return fail("frame %d: %v", i, err)
				}
			}
			if int64(info.width)*int64(info.height)*int64(len(frames)) <= fullDecodeArea {
				if _, err := gif.DecodeAll(bytes.NewReader(data)); err != nil {
					return info, unsupported("Error during decoding: %v", err)
				}
			}
			return info, nil
		case 0x21: // extension
			if p+2 > len(data) {
				return fail("truncated extension")
			}
			_, next, ok := subBlocks(p+2, false)
			if !ok {
				return fail("truncated extension")
			}
			p = next
		case 0x2c: // image descriptor
			if p+10 > len(data) {
				return fail("truncated image descriptor")
			}
			f := frame{
				w: int(binary.LittleEndian.Uint16(data[p+5 : p+7])),
				h: int(binary.LittleEndian.Uint16(data[p+7 : p+9])),
			}
			fl := data[p+9]
			p += 10
			if fl&0x80 != 0 {
				p += 3 << (fl&7 + 1)
			}
			if p >= len(data) {
				return fail("truncated image data")
			}
			f.litWidth = int(data[p])
			d, next, ok := subBlocks(p+1, true)
			if !ok {
				return fail("truncated image data")
			}
			f.lzwData = d
			p = next
			frames = append(frames, f)
		default:
			return fail("unexpected block 0x%02x at offset %d", data[p], p)
		}
	}
}

// ---- WebP ----

func (e *Emulator) inspectWebP(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{format: FormatWebP, frames: 1}
	fail := func(format string, args ...any) (imageInfo, *inspectError) {
		return info, unsupported("Error during decoding: WebP: "+format, args...)
	}
	riffLen := int64(binary.LittleEndian.Uint32(data[4:8]))
	if riffLen+8 > int64(len(data)) || riffLen < 4 {
		return fail("truncated RIFF container")
	}
	chunks, ok := riffChunks(data[12 : 8+riffLen])
	if !ok || len(chunks) == 0 {
		return fail("malformed RIFF chunks")
	}
	first := chunks[0]
	switch first.id {
	case "VP8 ":
		w, h, ok := vp8Size(first.body)
		if !ok {
			return fail("bad VP8 header")
		}
		info.width, info.height = w, h
	case "VP8L":
		w, h, ok := vp8lSize(first.body)
		if !ok {
			return fail("bad VP8L header")
		}
		info.width, info.height = w, h
	case "VP8X":
		if len(first.body) < 10 {
			return fail("bad VP8X header")
		}
		b := first.body
		info.width = 1 + int(uint32(b[4])|uint32(b[5])<<8|uint32(b[6])<<16)
		info.height = 1 + int(uint32(b[7])|uint32(b[8])<<8|uint32(b[9])<<16)
		if b[0]&0x02 != 0 {
			return e.inspectAnimatedWebP(info, chunks)
		}
	default:
		return fail("unknown first chunk %q", first.id)
	}
	if err := e.checkLimits(info); err != nil {
		return info, nil
	}
	if int64(info.width)*int64(info.height) <= fullDecodeArea {
		if _, err := webp.Decode(bytes.NewReader(data)); err != nil {
			return info, unsupported("Error during decoding: %v", err)
		}
	} else if _, err := webp.DecodeConfig(bytes.NewReader(data)); err != nil {
		return info, unsupported("Error during decoding: %v", err)
	}
	return info, nil
}

func (e *Emulator) inspectAnimatedWebP(info imageInfo, chunks []riffChunk) (imageInfo, *inspectError) {
	var frames [][]riffChunk
	for _, c := range chunks[1:] {
		if c.id != "ANMF" {
			continue
		}
		if len(c.body) < 16 {
			return info, unsupported("Error during decoding: WebP: truncated ANMF frame")
		}
		sub, ok := riffChunks(c.body[16:])
		if !ok {
			return info, unsupported("Error during decoding: WebP: malformed ANMF frame")
		}
		frames = append(frames, sub)
	}
	if len(frames) == 0 {
		return info, unsupported("Error during decoding: WebP: animation without frames")
	}
	info.frames = len(frames)
	if err := e.checkLimits(info); err != nil {
		return info, nil
	}
	// x/image/webp does not decode animations; decode each frame's bitstream on its own
	// (alpha planes are not checked).
	for i, sub := range frames {
		var bits *riffChunk
		for j := range sub {
			if sub[j].id == "VP8 " || sub[j].id == "VP8L" {
				bits = &sub[j]
				break
			}
		}
		if bits == nil {
			return info, unsupported("Error during decoding: WebP: frame %d has no bitstream", i)
		}
		var buf bytes.Buffer
		buf.WriteString("RIFF")
		padded := len(bits.body) + len(bits.body)&1
		binary.Write(&buf, binary.LittleEndian, uint32(4+8+padded))
		buf.WriteString("WEBP")
		buf.WriteString(bits.id)
		binary.Write(&buf, binary.LittleEndian, uint32(len(bits.body)))
		buf.Write(bits.body)
		if len(bits.body)&1 == 1 {
			buf.WriteByte(0)
		}
		cfg, err := webp.DecodeConfig(bytes.NewReader(buf.Bytes()))
		if err != nil {
			return info, unsupported("Error during decoding: WebP frame %d: %v", i, err)
		}
		if int64(cfg.Width)*int64(cfg.Height) <= fullDecodeArea {
			if _, err := webp.Decode(bytes.NewReader(buf.Bytes())); err != nil {
				return info, unsupported("Error during decoding: WebP frame %d: %v", i, err)
			}
		}
	}
	return info, nil
}

type riffChunk struct {
	id   string
	body []byte
}

func riffChunks(p []byte) ([]riffChunk, bool) {
	var out []riffChunk
	for len(p) > 0 {
		if len(p) < 8 {
			return nil, false
		}
		n := int64(binary.LittleEndian.Uint32(p[4:8]))
		if n+8 > int64(len(p)) {
			return nil, false
		}
		out = append(out, riffChunk{id: string(p[0:4]), body: p[8 : 8+n]})
		next := 8 + n + n&1
		if next > int64(len(p)) {
			next = int64(len(p)) // a missing pad byte at the very end is tolerated
		}
		p = p[next:]
	}
	return out, true
}

func vp8Size(b []byte) (int, int, bool) {
	if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(b[6:8]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(b[8:10]) & 0x3fff)
	return w, h, true
}

func vp8lSize(b []byte) (int, int, bool) {
	if len(b) < 5 || b[0] != 0x2f {
		return 0, 0, false
	}
	bits := binary.LittleEndian.Uint32(b[1:5])
	return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, true
}

// ---- HEIC / AVIF (ISO BMFF) ----

// heifBrand maps an ISO BMFF brand to the image format it announces ("" if none).
func heifBrand(brand string) string {
	switch brand {
	case "avif", "avis":
		return FormatAVIF
	case "heic", "heix", "heim", "heis", "hevc", "hevx":
		return FormatHEIC
	}
	return ""
}

func (e *Emulator) inspectHEIF(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{frames: 1}
	boxes, ok := isoBoxes(data)
	if !ok || len(boxes) == 0 || boxes[0].typ != "ftyp" || len(boxes[0].body) < 8 {
		return info, unsupported("Error during decoding: malformed ISO media file")
	}
	ftyp := boxes[0].body
	brands := []string{string(ftyp[0:4])}
	for i := 8; i+4 <= len(ftyp); i += 4 {
		brands = append(brands, string(ftyp[i:i+4]))
	}
	// AVIF wins if listed anywhere: files often carry mif1 as major brand.
	for _, b := range brands {
		if f := heifBrand(b); f == FormatAVIF {
			info.format = f
			break
		} else if f != "" && info.format == "" {
			info.format = f
		}
	}
	switch {
	case info.format == "":
		return info, unsupported("Uploaded image must have image/jpeg, image/png, image/webp, image/gif or image/svg+xml content-type (ISO brand %q)", brands[0])
	case info.format == FormatHEIC && !*e.opts.AllowHEIC:
		return info, unsupported("HEIC images are not accepted on this account")
	case info.format == FormatAVIF && !*e.opts.AllowAVIF:
		return info, unsupported("AVIF images are not accepted on this account")
	}
	var meta []byte
	hasData := false
	for _, b := range boxes[1:] {
		switch b.typ {
		case "meta":
			meta = b.body
		case "mdat":
			hasData = true
		}
	}
	if meta == nil || len(meta) < 4 || !hasData {
		return info, unsupported("Error during decoding: %s file has no meta or mdat box", info.format)
	}
	// Image sizes live in meta/iprp/ipco/ispe. Take the largest, so a grid image is judged
	// by its full size rather than a tile's.
	var walk func(p []byte) bool
	walk = func(p []byte) bool {
		bs, ok := isoBoxes(p)
		if !ok {
			return false
		}
		for _, b := range bs {
			switch b.typ {
			case "iprp", "ipco":
				if !walk(b.body) {
					return false
				}
			case "ispe":
				if len(b.body) < 12 {
					return false
				}
				w := int(binary.BigEndian.Uint32(b.body[4:8]))
				h := int(binary.BigEndian.Uint32(b.body[8:12]))
				if int64(w)*int64(h) > int64(info.width)*int64(info.height) {
					info.width, info.height = w, h
				}
			}
		}
		return true
	}
	if !walk(meta[4:]) {
		return info, unsupported("Error during decoding: malformed %s meta box", info.format)
	}
	if info.width == 0 {
		return info, unsupported("Error during decoding: %s file has no image size (ispe)", info.format)
	}
	return info, nil
}

type isoBox struct {
	typ  string
	body []byte
}

func isoBoxes(p []byte) ([]isoBox, bool) {
	var out []isoBox
	for len(p) > 0 {
		if len(p) < 8 {
			return nil, false
		}
		size := uint64(binary.BigEndian.Uint32(p[0:4]))
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(p))
		case 1:
			if len(p) < 16 {
				return nil, false
			}
			size, hdr = binary.BigEndian.Uint64(p[8:16]), 16
		}
		if size < hdr || size > uint64(len(p)) {
			return nil, false
		}
		out = append(out, isoBox{typ: string(p[4:8]), body: p[hdr:size]})
		p = p[size:]
	}
	return out, true
}

// ---- SVG ----

func inspectSVG(data []byte) (imageInfo, *inspectError) {
	info := imageInfo{format: FormatSVG, frames: 1}
	text := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(text) == 0 || text[0] != '<' {
		return info, unsupported("Uploaded image must have image/jpeg, image/png, image/webp, image/gif or image/svg+xml content-type")
	}
	d := xml.NewDecoder(bytes.NewReader(text))
	d.Strict = true
	depth := 0
	rootDone := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if depth == 0 && !rootDone && info.width == 0 {
				return info, unsupported("Uploaded image must have image/jpeg, image/png, image/webp, image/gif or image/svg+xml content-type")
			}
			return info, unsupported("Error during decoding: SVG: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if rootDone || t.Name.Local != "svg" {
					return info, unsupported("Uploaded image must have image/jpeg, image/png, image/webp, image/gif or image/svg+xml content-type (root element %q)", t.Name.Local)
				}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "width":
						info.width = svgLength(a.Value)
					case "height":
						info.height = svgLength(a.Value)
					}
				}
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				rootDone = true
			}
		}
	}
	if !rootDone {
		return info, unsupported("Error during decoding: SVG has no complete <svg> element")
	}
	return info, nil
}

func svgLength(v string) int {
	v = strings.TrimSuffix(strings.TrimSpace(v), "px")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e9 {
		return 0
	}
	return int(f + 0.5)
}
