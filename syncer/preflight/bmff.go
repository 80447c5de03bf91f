package preflight

import (
	"encoding/binary"
)

// HEIC and AVIF are HEIF files: ISO base media file format (ISO-BMFF) boxes. The image size is in
// the 'ispe' (image spatial extents) property under meta/iprp/ipco, tied to items by 'ipma'.

// bmffBrand maps an ftyp box at the start of head to HEIC or AVIF ("" if neither). The major
// brand decides; for the generic HEIF brands (mif1, msf1) the compatible brands do.
func bmffBrand(head []byte) Format {
	if len(head) < 16 {
		return ""
	}
	n := int(binary.BigEndian.Uint32(head))
	if n < 16 || n > len(head) {
		n = len(head) // brands past the first bytes are read again by checkBMFF
	}
	brands := [][]byte{head[8:12]}
	for i := 16; i+4 <= n; i += 4 {
		brands = append(brands, head[i:i+4])
	}
	return brandFormat(brands)
}

func brandFormat(brands [][]byte) Format {
	kind := func(b []byte) Format {
		switch string(b) {
		case "avif", "avis":
			return AVIF
		case "heic", "heix", "heim", "heis", "hevc", "hevx":
			return HEIC
		}
		return ""
	}
	if f := kind(brands[0]); f != "" {
		return f
	}
	for _, b := range brands[1:] {
		if f := kind(b); f != "" {
			return f
		}
	}
	switch string(brands[0]) {
	case "mif1", "msf1", "heif":
		return HEIC // a HEIF still or sequence of unnamed codec: the API knows it as HEIC if at all
	}
	return ""
}

// maxMeta caps the 'meta' box we read into memory: it holds item and property tables, normally a
// few KiB even for a large gridded photo.
const maxMeta = 4 << 20

// box is an ISO-BMFF box: its type and the payload's [start, end) in the file or buffer.
type box struct {
	typ        string
	start, end int64
}

// nextBox reads the box header at off within [off, end) of the file.
func nextBox(src *source, off, end int64, f Format) (box, error) {
	var h [16]byte
	if end-off < 8 {
		return box{}, corrupt(f, "%d stray bytes at offset %d where a box header should be", end-off, off)
	}
	if err := src.readAt(h[:8], off); err != nil {
		return box{}, err
	}
	size, hl := int64(binary.BigEndian.Uint32(h[:])), int64(8)
	switch size {
	case 0: // to the end of the file
		size = end - off
	case 1:
		if err := src.readAt(h[8:16], off+8); err != nil {
			return box{}, err
		}
		size, hl = int64(binary.BigEndian.Uint64(h[8:])), 16
	}
	if size < hl || size > end-off {
		return box{}, corrupt(f, "box %q at offset %d has size %d, but %d bytes are left (truncated?)", h[4:8], off, size, end-off)
	}
	return box{typ: string(h[4:8]), start: off + hl, end: off + size}, nil
}

func checkBMFF(src *source, f Format, lim Limits) (Info, error) {
	var meta box
	for off := int64(0); off < src.size; {
		b, err := nextBox(src, off, src.size, f)
		if err != nil {
			return Info{}, err
		}
		if off == 0 && b.typ != "ftyp" {
			return Info{}, corrupt(f, "first box is %q, not ftyp", b.typ)
		}
		if b.typ == "meta" && meta.typ == "" {
			meta = b
		}
		off = b.end
	}
	if meta.typ == "" {
		return Info{}, corrupt(f, "no meta box")
	}
	if n := meta.end - meta.start; n > maxMeta {
		return Info{}, corrupt(f, "meta box of %d bytes exceeds the %d byte cap", n, maxMeta)
	}
	buf := make([]byte, meta.end-meta.start)
	if err := src.readAt(buf, meta.start); err != nil {
		return Info{}, err
	}
	w, h, err := heifSize(buf, f)
	if err != nil {
		return Info{}, err
	}
	info := Info{Width: w, Height: h, Frames: 1}
	return info, checkDims(f, w, h, 1, lim)
}

// memBoxes walks the boxes in b (a payload held in memory), calling fn for each.
func memBoxes(b []byte, f Format, fn func(typ string, payload []byte) error) error {
	for len(b) > 0 {
		if len(b) < 8 {
			return corrupt(f, "%d stray bytes where a box header should be", len(b))
		}
		size, hl := uint64(binary.BigEndian.Uint32(b)), uint64(8)
		typ := string(b[4:8])
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return corrupt(f, "box %q: short 64-bit size", typ)
			}
			size, hl = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hl || size > uint64(len(b)) {
			return corrupt(f, "box %q has size %d, but %d bytes are left", typ, size, len(b))
		}
		if err := fn(typ, b[hl:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}

// heifSize finds the primary item's ispe in the meta payload, or the largest ispe when the
// primary item has none (or the tables cannot tie one to it).
func heifSize(meta []byte, f Format) (w, h int, err error) {
	if len(meta) < 4 {
		return 0, 0, corrupt(f, "meta box too short")
	}
	type extent struct{ w, h uint32 }
	var (
		primary    uint32
		hasPrimary bool
		props      []extent // ipco properties in order; zero for non-ispe
		assoc      = map[uint32][]uint16{}
	)
	err = memBoxes(meta[4:], f, func(typ string, p []byte) error {
		switch typ {
		case "pitm":
			if len(p) < 6 {
				return corrupt(f, "pitm box too short")
			}
			if p[0] == 0 {
				primary = uint32(binary.BigEndian.Uint16(p[4:]))
			} else if len(p) >= 8 {
				primary = binary.BigEndian.Uint32(p[4:])
			}
			hasPrimary = true
		case "iprp":
			return memBoxes(p, f, func(typ string, p []byte) error {
				switch typ {
				case "ipco":
					return memBoxes(p, f, func(typ string, p []byte) error {
						var e extent
						if typ == "ispe" {
							if len(p) < 12 {
								return corrupt(f, "ispe box too short")
							}
							e = extent{binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint32(p[8:])}
						}
						props = append(props, e)
						return nil
					})
				case "ipma":
					return parseIPMA(p, f, assoc)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var best extent
	if hasPrimary {
		for _, idx := range assoc[primary] {
			if int(idx) >= 1 && int(idx) <= len(props) && props[idx-1].w > 0 {
				best = props[idx-1]
				break
			}
		}
	}
	if best.w == 0 {
		for _, e := range props {
			if uint64(e.w)*uint64(e.h) > uint64(best.w)*uint64(best.h) {
				best = e
			}
		}
	}
	if best.w == 0 || best.h == 0 {
		return 0, 0, corrupt(f, "no image size (ispe property) in the meta box")
	}
	if best.w > 1<<31-1 || best.h > 1<<31-1 {
		return 0, 0, corrupt(f, "image size %dx%d out of range", best.w, best.h)
	}
	return int(best.w), int(best.h), nil
}

// parseIPMA reads item→property associations (1-based property indices) into assoc.
func parseIPMA(p []byte, f Format, assoc map[uint32][]uint16) error {
	short := corrupt(f, "ipma box too short")
	if len(p) < 8 {
		return short
	}
	version, flags := p[0], p[3]
	n := binary.BigEndian.Uint32(p[4:])
	p = p[8:]
	for range n {
		var item uint32
		if version < 1 {
			if len(p) < 3 {
				return short
			}
			item, p = uint32(binary.BigEndian.Uint16(p)), p[2:]
		} else {
			if len(p) < 5 {
				return short
			}
			item, p = binary.BigEndian.Uint32(p), p[4:]
		}
		k := int(p[0])
		p = p[1:]
		for range k {
			var idx uint16
			if flags&1 != 0 {
				if len(p) < 2 {
					return short
				}
				idx, p = binary.BigEndian.Uint16(p)&0x7fff, p[2:]
			} else {
				if len(p) < 1 {
					return short
				}
				idx, p = uint16(p[0]&0x7f), p[1:]
			}
			assoc[item] = append(assoc[item], idx)
		}
	}
	return nil
}
