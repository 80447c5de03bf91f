package preflight

import (
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// pngChunk is a chunk header: its type, payload length and the file offset of the header.
type pngChunk struct {
	typ string
	n   uint32
	off int64
}

// pngWalker walks a PNG's chunks in order, verifying each one's length and CRC-32.
type pngWalker struct {
	s       *seqReader
	pending *pngChunk // a header read by the IDAT reader that belongs to the main loop
}

// header reads the next chunk header and checks that the chunk fits in the file.
func (p *pngWalker) header() (pngChunk, error) {
	if c := p.pending; c != nil {
		p.pending = nil
		return *c, nil
	}
	off := p.s.pos()
	if p.s.remaining() == 0 {
		return pngChunk{}, corrupt(PNG, "no IEND chunk: the file ends after %d bytes", off)
	}
	b, err := p.s.next(8)
	if err != nil {
		return pngChunk{}, err
	}
	c := pngChunk{typ: string(b[4:8]), n: binary.BigEndian.Uint32(b), off: off}
	for _, ch := range b[4:8] {
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z') {
			return pngChunk{}, corrupt(PNG, "bad chunk type %q at offset %d", b[4:8], off)
		}
	}
	if c.n > 1<<31-1 {
		return pngChunk{}, corrupt(PNG, "chunk %s at offset %d: length %d exceeds 2^31-1", c.typ, off, c.n)
	}
	if left := p.s.remaining(); int64(c.n)+4 > left {
		return pngChunk{}, corrupt(PNG, "chunk %s at offset %d claims %d bytes plus CRC, but only %d bytes are left (truncated)", c.typ, off, c.n, left)
	}
	return c, nil
}

// body streams n payload bytes through the running CRC.
func (p *pngWalker) body(crc uint32, n uint32) (uint32, error) {
	for n > 0 {
		b, err := p.s.chunk(int64(n))
		if err != nil {
			return crc, err
		}
		crc = crc32.Update(crc, crc32.IEEETable, b)
		n -= uint32(len(b))
	}
	return crc, nil
}

// endChunk reads the stored CRC of chunk c and compares it with the computed one.
func (p *pngWalker) endChunk(c pngChunk, crc uint32) error {
	b, err := p.s.next(4)
	if err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(b); got != crc {
		return corrupt(PNG, "chunk %s at offset %d: CRC-32 mismatch (stored %08x, computed %08x)", c.typ, c.off, got, crc)
	}
	return nil
}

func crcOfType(typ string) uint32 {
	var b [4]byte
	copy(b[:], typ)
	return crc32.Update(0, crc32.IEEETable, b[:])
}

// pngChannels returns a colour type's channel count, or 0 if the type does not allow depth.
func pngChannels(ctype, depth int) int {
	switch {
	case ctype == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16):
		return 1 // gray
	case ctype == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8):
		return 1 // palette index
	case depth != 8 && depth != 16:
		return 0
	case ctype == 2:
		return 3 // RGB
	case ctype == 4:
		return 2 // gray + alpha
	case ctype == 6:
		return 4 // RGBA
	}
	return 0
}

func checkPNG(src *source, lim Limits) (Info, error) {
	p := &pngWalker{s: newSeqReader(src, int64(len(sigPNG)))}
	c, err := p.header()
	if err != nil {
		return Info{}, err
	}
	if c.typ != "IHDR" || c.n != 13 {
		return Info{}, corrupt(PNG, "first chunk is %s of %d bytes, want IHDR of 13", c.typ, c.n)
	}
	ihdr, err := p.s.next(13)
	if err != nil {
		return Info{}, err
	}
	crc := crc32.Update(crcOfType("IHDR"), crc32.IEEETable, ihdr)
	w, h := binary.BigEndian.Uint32(ihdr[0:]), binary.BigEndian.Uint32(ihdr[4:])
	depth, ctype, interlace := int(ihdr[8]), int(ihdr[9]), ihdr[12]
	if err := p.endChunk(c, crc); err != nil {
		return Info{}, err
	}
	if w == 0 || h == 0 || w > 1<<31-1 || h > 1<<31-1 {
		return Info{}, corrupt(PNG, "IHDR: bad image size %dx%d", w, h)
	}
	channels := pngChannels(ctype, depth)
	if channels == 0 {
		return Info{}, corrupt(PNG, "IHDR: bad colour type %d with bit depth %d", ctype, depth)
	}
	if ihdr[10] != 0 || ihdr[11] != 0 || interlace > 1 {
		return Info{}, corrupt(PNG, "IHDR: unknown compression %d, filter %d or interlace %d method", ihdr[10], ihdr[11], interlace)
	}
	info := Info{Width: int(w), Height: int(h)}
	if err := checkDims(PNG, info.Width, info.Height, 1, lim); err != nil {
		return Info{}, err
	}
	raw := pngRawSize(int64(w), int64(h), int64(depth*channels), interlace == 1)

	var (
		sawPLTE, sawIDAT, idatDone bool
		animated                   bool
		acFrames, fcFrames         int64
	)
	for {
		c, err := p.header()
		if err != nil {
			return Info{}, err
		}
		if sawIDAT && c.typ != "IDAT" {
			idatDone = true
		}
		crc := crcOfType(c.typ)
		switch c.typ {
		case "IEND":
			if err := p.endChunk(c, crc); err != nil {
				return Info{}, err
			}
			if !sawIDAT {
				return Info{}, corrupt(PNG, "no IDAT chunk")
			}
			// Bytes after IEND are ignored, as decoders do.
			frames := int64(1)
			if animated {
				frames = max(acFrames, fcFrames, 1)
			}
			if err := checkDims(PNG, info.Width, info.Height, frames, lim); err != nil {
				return Info{}, err
			}
			info.Frames = int(frames) // within the area limit, so it fits
			return info, nil
		case "IDAT":
			if idatDone {
				return Info{}, corrupt(PNG, "IDAT chunk at offset %d is not next to the other IDAT chunks", c.off)
			}
			if ctype == 3 && !sawPLTE {
				return Info{}, corrupt(PNG, "palette image has no PLTE chunk before its IDAT")
			}
			sawIDAT = true
			if err := p.idat(c, raw, lim.MaxInflate); err != nil {
				return Info{}, err
			}
			continue // idat consumed the whole IDAT run, CRCs included
		case "acTL":
			if c.n != 8 {
				return Info{}, corrupt(PNG, "acTL chunk of %d bytes, want 8", c.n)
			}
			b, err := p.s.next(8)
			if err != nil {
				return Info{}, err
			}
			crc = crc32.Update(crc, crc32.IEEETable, b)
			animated, acFrames = true, int64(binary.BigEndian.Uint32(b))
		case "fcTL":
			fcFrames++
			if crc, err = p.body(crc, c.n); err != nil {
				return Info{}, err
			}
		case "PLTE":
			sawPLTE = true
			fallthrough
		default:
			if crc, err = p.body(crc, c.n); err != nil {
				return Info{}, err
			}
		}
		if err := p.endChunk(c, crc); err != nil {
			return Info{}, err
		}
	}
}

// pngRawSize is the exact size of the inflated image data: each row is a filter byte plus the
// packed pixels, summed over the seven Adam7 passes when interlaced.
func pngRawSize(w, h, bpp int64, interlaced bool) int64 {
	row := func(w int64) int64 { return 1 + (mulSat(w, bpp)+7)/8 }
	if !interlaced {
		return mulSat(h, row(w))
	}
	passes := [7][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	var total int64
	for _, ps := range passes {
		pw := (w - ps[0] + ps[2] - 1) / ps[2]
		ph := (h - ps[1] + ps[3] - 1) / ps[3]
		if pw <= 0 || ph <= 0 {
			continue
		}
		total += mulSat(ph, row(pw))
	}
	return total
}

// idatReader yields the payload of a run of consecutive IDAT chunks, checking each one's CRC, and
// ends (io.EOF) at the first other chunk, which it leaves for the main loop.
type idatReader struct {
	p    *pngWalker
	c    pngChunk
	left uint32
	crc  uint32
	done bool
}

func (r *idatReader) Read(b []byte) (int, error) {
	for r.left == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.p.endChunk(r.c, r.crc); err != nil {
			return 0, err
		}
		c, err := r.p.header()
		if err != nil {
			return 0, err
		}
		if c.typ != "IDAT" {
			r.p.pending, r.done = &c, true
			return 0, io.EOF
		}
		r.c, r.left, r.crc = c, c.n, crcOfType(c.typ)
	}
	d, err := r.p.s.chunk(int64(min(r.left, uint32(len(b)))))
	if err != nil {
		return 0, err
	}
	n := copy(b, d)
	r.crc = crc32.Update(r.crc, crc32.IEEETable, d)
	r.left -= uint32(n)
	return n, nil
}

// idat verifies the IDAT run that starts with chunk c: the zlib stream must inflate to exactly
// raw bytes (checked for the first maxInflate bytes; beyond that only CRCs are checked).
// Inflated data goes to io.Discard, so memory stays constant whatever the pixel count.
func (p *pngWalker) idat(c pngChunk, raw, maxInflate int64) error {
	r := &idatReader{p: p, c: c, left: c.n, crc: crcOfType(c.typ)}
	if maxInflate >= 0 {
		if err := inflateCheck(r, raw, maxInflate); err != nil {
			return err
		}
	}
	// The rest of the run (all of it when not inflating): CRCs only.
	_, err := io.Copy(io.Discard, r)
	return err
}

func inflateCheck(r io.Reader, raw, maxInflate int64) error {
	zr, err := zlib.NewReader(r)
	if err != nil {
		return zlibError(err, "zlib header")
	}
	want := min(raw, maxInflate)
	n, err := io.CopyN(io.Discard, zr, want)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return corrupt(PNG, "image data inflates to %d bytes, the IHDR size needs %d", n, raw)
		}
		return zlibError(err, "image data")
	}
	if want < raw {
		return nil // capped: trust the CRCs for the rest
	}
	// Exactly raw bytes so far: the stream must end here (this also checks its Adler-32).
	// More data is the decompression-bomb shape, or at best a broken file.
	if n, err := io.CopyN(io.Discard, zr, 1); n > 0 {
		return corrupt(PNG, "image data inflates to more than the %d bytes the IHDR size allows", raw)
	} else if !errors.Is(err, io.EOF) {
		return zlibError(err, "end of image data")
	}
	return nil
}

// zlibError turns a zlib/flate failure into a refusal and passes our own errors through.
func zlibError(err error, what string) error {
	var pe *Error
	var ce flate.CorruptInputError
	switch {
	case errors.As(err, &pe), errors.Is(err, errTruncated):
		return err
	case errors.As(err, &ce), errors.Is(err, zlib.ErrChecksum), errors.Is(err, zlib.ErrHeader),
		errors.Is(err, zlib.ErrDictionary), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return corrupt(PNG, "%s: bad zlib stream: %v", what, err)
	}
	return err
}
