package preflight

import "encoding/binary"

// checkGIF walks the block structure (extensions, image descriptors and their data sub-blocks)
// to the trailer, counting frames without decoding any LZW data.
func checkGIF(src *source, lim Limits) (Info, error) {
	s := newSeqReader(src, 6) // past "GIF8?a"
	lsd, err := s.next(7)
	if err != nil {
		return Info{}, err
	}
	info := Info{Width: int(binary.LittleEndian.Uint16(lsd[0:])), Height: int(binary.LittleEndian.Uint16(lsd[2:]))}
	if lsd[4]&0x80 != 0 {
		if err := s.discard(3 << (lsd[4]&7 + 1)); err != nil {
			return Info{}, err
		}
	}
	// A 0×0 logical screen is taken by decoders to be the first frame's size.
	screenless := info.Width == 0 || info.Height == 0
	if !screenless {
		if err := checkDims(GIF, info.Width, info.Height, 1, lim); err != nil {
			return Info{}, err
		}
	}
	var frames int64
	for {
		off := s.pos()
		b, err := s.readByte()
		if err != nil {
			return Info{}, gifEOF(err)
		}
		switch b {
		case 0x3b: // trailer
			if frames == 0 {
				return Info{}, corrupt(GIF, "no image in the file")
			}
			info.Frames = int(frames)
			return info, checkDims(GIF, info.Width, info.Height, frames, lim)
		case 0x21: // extension: label, then sub-blocks
			if _, err := s.readByte(); err != nil {
				return Info{}, gifEOF(err)
			}
			if err := skipSubBlocks(s); err != nil {
				return Info{}, gifEOF(err)
			}
		case 0x2c: // image descriptor
			d, err := s.next(9)
			if err != nil {
				return Info{}, gifEOF(err)
			}
			fw, fh := int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			if screenless && frames == 0 {
				info.Width, info.Height = fw, fh
				if err := checkDims(GIF, info.Width, info.Height, 1, lim); err != nil {
					return Info{}, err
				}
			}
			if d[8]&0x80 != 0 {
				if err := s.discard(3 << (d[8]&7 + 1)); err != nil {
					return Info{}, gifEOF(err)
				}
			}
			lzw, err := s.readByte()
			if err != nil {
				return Info{}, gifEOF(err)
			}
			if lzw < 1 || lzw > 11 {
				return Info{}, corrupt(GIF, "frame at offset %d: bad LZW minimum code size %d", off, lzw)
			}
			if err := skipSubBlocks(s); err != nil {
				return Info{}, gifEOF(err)
			}
			frames++
		default:
			return Info{}, corrupt(GIF, "unknown block 0x%02x at offset %d", b, off)
		}
	}
}

// skipSubBlocks skips a chain of data sub-blocks up to its zero-length terminator.
func skipSubBlocks(s *seqReader) error {
	for {
		n, err := s.readByte()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if err := s.discard(int64(n)); err != nil {
			return err
		}
	}
}

func gifEOF(err error) error {
	if err == errTruncated {
		return corrupt(GIF, "file ends before the trailer (truncated)")
	}
	return err
}
