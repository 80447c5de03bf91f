package preflight

import (
	"encoding/binary"
)

// riffChunk is a RIFF chunk header: FourCC, payload size and the payload's file offset.
type riffChunk struct {
	fourCC string
	n      int64
	off    int64
}

// riffChunks walks the chunks in [off, end), calling fn for each. Every chunk must fit; the pad
// byte after an odd-sized payload may be missing at the very end, as libwebp allows.
func riffChunks(src *source, off, end int64, fn func(c riffChunk) error) error {
	var h [8]byte
	for off < end {
		if end-off < 8 {
			return corrupt(WebP, "%d stray bytes at offset %d where a chunk header should be", end-off, off)
		}
		if err := src.readAt(h[:], off); err != nil {
			return err
		}
		c := riffChunk{fourCC: string(h[:4]), n: int64(binary.LittleEndian.Uint32(h[4:])), off: off + 8}
		if c.n > end-c.off {
			return corrupt(WebP, "chunk %q at offset %d claims %d bytes, only %d are left (truncated)", h[:4], off, c.n, end-c.off)
		}
		if err := fn(c); err != nil {
			return err
		}
		off = c.off + c.n + c.n&1
	}
	return nil
}

// checkWebP reads the canvas size from the first chunk (VP8, VP8L or VP8X) and walks the rest,
// counting ANMF frames of an animation. The compressed bitstreams are not decoded.
func checkWebP(src *source, lim Limits) (Info, error) {
	var h [4]byte
	if err := src.readAt(h[:], 4); err != nil {
		return Info{}, err
	}
	end := 8 + int64(binary.LittleEndian.Uint32(h[:]))
	if end > src.size {
		return Info{}, corrupt(WebP, "RIFF header claims %d bytes, the file has %d (truncated)", end, src.size)
	}
	// A RIFF shorter than the file leaves trailing bytes, which libwebp ignores; so do we.
	var (
		info              Info
		first             = true
		vp8x, anim, image bool
		frames            int64
	)
	err := riffChunks(src, 12, end, func(c riffChunk) error {
		if first {
			first = false
			switch c.fourCC {
			case "VP8 ", "VP8L":
				w, h, err := webpBitstreamSize(src, c)
				if err != nil {
					return err
				}
				info.Width, info.Height, image = w, h, true
				return nil
			case "VP8X":
				if c.n < 10 {
					return corrupt(WebP, "VP8X chunk of %d bytes, want 10", c.n)
				}
				var b [10]byte
				if err := src.readAt(b[:], c.off); err != nil {
					return err
				}
				vp8x, anim = true, b[0]&0x02 != 0
				info.Width, info.Height = 1+int(le24(b[4:])), 1+int(le24(b[7:]))
				return nil
			}
			return corrupt(WebP, "first chunk is %q, want VP8, VP8L or VP8X", c.fourCC)
		}
		if !vp8x {
			return nil // a simple file has one image chunk; libwebp ignores the rest
		}
		switch c.fourCC {
		case "VP8 ", "VP8L":
			if _, _, err := webpBitstreamSize(src, c); err != nil {
				return err
			}
			image = true
		case "ANMF":
			frames++
			return checkANMF(src, c, info)
		}
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	if err := checkDims(WebP, info.Width, info.Height, 1, lim); err != nil {
		return Info{}, err
	}
	switch {
	case anim:
		if frames == 0 {
			return Info{}, corrupt(WebP, "animation flag set but no ANMF frames")
		}
		info.Frames = int(frames)
	case !image:
		return Info{}, corrupt(WebP, "no VP8 or VP8L image data")
	}
	return info, checkDims(WebP, info.Width, info.Height, max(frames, 1), lim)
}

// checkANMF checks that an animation frame lies inside the canvas and holds image data.
func checkANMF(src *source, c riffChunk, canvas Info) error {
	if c.n < 16 {
		return corrupt(WebP, "ANMF chunk at offset %d is %d bytes, too short", c.off-8, c.n)
	}
	var b [16]byte
	if err := src.readAt(b[:], c.off); err != nil {
		return err
	}
	x, y := 2*int64(le24(b[0:])), 2*int64(le24(b[3:]))
	w, h := 1+int64(le24(b[6:])), 1+int64(le24(b[9:]))
	if x+w > int64(canvas.Width) || y+h > int64(canvas.Height) {
		return corrupt(WebP, "animation frame at offset %d (%dx%d at %d,%d) lies outside the %dx%d canvas", c.off-8, w, h, x, y, canvas.Width, canvas.Height)
	}
	image := false
	err := riffChunks(src, c.off+16, c.off+c.n, func(f riffChunk) error {
		if f.fourCC == "VP8 " || f.fourCC == "VP8L" {
			image = true
			_, _, err := webpBitstreamSize(src, f)
			return err
		}
		return nil
	})
	if err == nil && !image {
		err = corrupt(WebP, "animation frame at offset %d has no image data", c.off-8)
	}
	return err
}

// webpBitstreamSize reads the frame size from a VP8 (lossy) or VP8L (lossless) bitstream header.
func webpBitstreamSize(src *source, c riffChunk) (w, h int, err error) {
	if c.fourCC == "VP8L" {
		var b [5]byte
		if c.n < 5 {
			return 0, 0, corrupt(WebP, "VP8L chunk of %d bytes, too short", c.n)
		}
		if err := src.readAt(b[:], c.off); err != nil {
			return 0, 0, err
		}
		bits := binary.LittleEndian.Uint32(b[1:])
		if b[0] != 0x2f || bits>>29 != 0 {
			return 0, 0, corrupt(WebP, "VP8L chunk at offset %d has a bad signature or version", c.off-8)
		}
		return 1 + int(bits&0x3fff), 1 + int(bits>>14&0x3fff), nil
	}
	var b [10]byte
	if c.n < 10 {
		return 0, 0, corrupt(WebP, "VP8 chunk of %d bytes, too short", c.n)
	}
	if err := src.readAt(b[:], c.off); err != nil {
		return 0, 0, err
	}
	if b[0]&1 != 0 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, corrupt(WebP, "VP8 chunk at offset %d is not a key frame with a start code", c.off-8)
	}
	w = int(binary.LittleEndian.Uint16(b[6:]) & 0x3fff)
	h = int(binary.LittleEndian.Uint16(b[8:]) & 0x3fff)
	if w == 0 || h == 0 {
		return 0, 0, corrupt(WebP, "VP8 frame at offset %d has size %dx%d", c.off-8, w, h)
	}
	return w, h, nil
}

func le24(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 }
