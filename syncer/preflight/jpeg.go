package preflight

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// checkJPEG walks the marker segments, skipping each by its length and scanning entropy-coded
// data only for the next marker, up to EOI. A file cut short never reaches EOI and is refused.
// Bytes after EOI are ignored (cameras and editors append data there).
//
// A file cut short and given a new EOI (truncated.jpeg in the corpus) is caught by checking that
// the scans, taken together, deliver every coefficient of every component to full precision: a
// progressive file that stops early lacks its later scans. Decoders show such a file blurred or
// grey rather than failing, so it would be uploaded as a broken picture.
func checkJPEG(src *source, lim Limits) (Info, error) {
	s := newSeqReader(src, 2) // past SOI
	var (
		info           Info
		sawSOF, sawSOS bool
		cov            jpegCoverage
	)
	for {
		off := s.pos()
		b, err := s.readByte()
		if err != nil {
			return Info{}, jpegEOF(err, sawSOS)
		}
		if b != 0xff {
			return Info{}, corrupt(JPEG, "expected a marker at offset %d, found byte 0x%02x", off, b)
		}
		for b == 0xff { // fill bytes
			if b, err = s.readByte(); err != nil {
				return Info{}, jpegEOF(err, sawSOS)
			}
		}
		switch m := b; {
		case m == 0xd9: // EOI
			if !sawSOS {
				return Info{}, corrupt(JPEG, "EOI at offset %d before any image data (no SOS)", off)
			}
			if err := cov.complete(); err != nil {
				return Info{}, err
			}
			return info, nil
		case m == 0x01 || 0xd0 <= m && m <= 0xd7: // TEM, RSTn: no length
			continue
		case m == 0x00 || m == 0xd8:
			return Info{}, corrupt(JPEG, "unexpected marker 0xff%02x at offset %d", m, off)
		default:
			lb, err := s.next(2)
			if err != nil {
				return Info{}, jpegEOF(err, sawSOS)
			}
			n := int64(binary.BigEndian.Uint16(lb)) - 2
			if n < 0 {
				return Info{}, corrupt(JPEG, "marker 0xff%02x at offset %d has bad length %d", m, off, n+2)
			}
			if n > s.remaining() {
				return Info{}, corrupt(JPEG, "marker 0xff%02x at offset %d claims %d bytes, only %d are left (truncated)", m, off, n, s.remaining())
			}
			switch {
			case isSOF(m):
				if n < 6 || n > 6+3*255 {
					return Info{}, corrupt(JPEG, "SOF segment at offset %d has bad length %d", off, n+2)
				}
				h, err := s.next(int(n))
				if err != nil {
					return Info{}, err
				}
				if sawSOF {
					continue // a second frame header (hierarchical JPEG): the first gives the size
				}
				sawSOF = true
				info.Height = int(binary.BigEndian.Uint16(h[1:]))
				info.Width = int(binary.BigEndian.Uint16(h[3:]))
				if info.Height == 0 {
					// The height would come in a DNL marker after the first scan; decoders
					// (Go's included) rarely support it.
					return Info{}, corrupt(JPEG, "SOF at offset %d has height 0 (DNL), which is not supported", off)
				}
				if err := checkDims(JPEG, info.Width, info.Height, 1, lim); err != nil {
					return Info{}, err
				}
				if err := cov.frame(m, h, off); err != nil {
					return Info{}, err
				}
			case m == 0xda: // SOS
				if !sawSOF {
					return Info{}, corrupt(JPEG, "SOS at offset %d comes before any SOF frame header", off)
				}
				sawSOS = true
				if n < 6 || n > 1+2*4+3 {
					return Info{}, corrupt(JPEG, "SOS segment at offset %d has bad length %d", off, n+2)
				}
				h, err := s.next(int(n))
				if err != nil {
					return Info{}, err
				}
				if err := cov.scan(h, off); err != nil {
					return Info{}, err
				}
				if err := skipEntropyData(s); err != nil {
					return Info{}, jpegEOF(err, true)
				}
			default:
				if err := s.discard(n); err != nil {
					return Info{}, err
				}
			}
		}
	}
}

// isSOF reports whether m is a start-of-frame marker (SOF0–SOF15 less DHT, JPG and DAC).
func isSOF(m byte) bool {
	return 0xc0 <= m && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc
}

// skipEntropyData consumes scan data up to (not including) the next real marker. Inside a scan,
// 0xff00 is an escaped data byte, 0xffd0–0xffd7 are restart markers, and 0xff may repeat as fill.
func skipEntropyData(s *seqReader) error {
	for {
		if err := s.fill(2); err != nil {
			return err
		}
		buf := s.buf[s.r:s.w]
		i := bytes.IndexByte(buf, 0xff)
		if i < 0 || i == len(buf)-1 {
			// No marker start in the buffer (or it is the last byte): keep that byte, refill.
			keep := len(buf)
			if i >= 0 {
				keep = i
			}
			s.r += keep
			continue
		}
		switch m := buf[i+1]; {
		case m == 0x00 || 0xd0 <= m && m <= 0xd7:
			s.r += i + 2
		case m == 0xff:
			s.r += i + 1
		default:
			s.r += i // leave 0xff for the marker loop
			return nil
		}
	}
}

func jpegEOF(err error, sawSOS bool) error {
	if err == errTruncated {
		if sawSOS {
			return corrupt(JPEG, "image data is cut short: no EOI marker at the end (truncated)")
		}
		return corrupt(JPEG, "file ends before the image data (truncated)")
	}
	return err
}

// jpegCoverage tracks which DCT coefficients of which components the scans have delivered to
// full precision (successive approximation bit Al = 0).
type jpegCoverage struct {
	progressive bool
	comps       []byte      // component ids of the frame, in order
	done        [256]uint64 // per component id: bit k set once coefficient k is final
	seen        [256]bool   // per component id: named by some scan
}

func (c *jpegCoverage) frame(m byte, sof []byte, off int64) error {
	nf := int(sof[5])
	if nf == 0 || len(sof) < 6+3*nf {
		return corrupt(JPEG, "SOF at offset %d: %d components in a %d-byte segment", off, nf, len(sof))
	}
	c.progressive = m == 0xc2 || m == 0xc6 || m == 0xca || m == 0xce
	c.comps = make([]byte, nf)
	for i := range nf {
		c.comps[i] = sof[6+3*i]
	}
	return nil
}

func (c *jpegCoverage) scan(sos []byte, off int64) error {
	ns := int(sos[0])
	if ns == 0 || ns > 4 || len(sos) != 1+2*ns+3 {
		return corrupt(JPEG, "SOS at offset %d: %d components in a %d-byte segment", off, ns, len(sos))
	}
	ss, se, al := int(sos[1+2*ns]), int(sos[2+2*ns]), sos[3+2*ns]&0x0f
	var bits uint64
	switch {
	case !c.progressive:
		bits = ^uint64(0) // a sequential scan carries whole blocks
	case ss > se || se > 63:
		return corrupt(JPEG, "SOS at offset %d: bad spectral selection %d..%d", off, ss, se)
	case al == 0:
		bits = (^uint64(0) >> (63 - se)) &^ (1<<ss - 1)
	}
	for i := range ns {
		id := sos[1+2*i]
		if !slices.Contains(c.comps, id) {
			return corrupt(JPEG, "SOS at offset %d names component %d, which the frame does not have", off, id)
		}
		c.done[id] |= bits
		c.seen[id] = true
	}
	return nil
}

func (c *jpegCoverage) complete() error {
	for _, id := range c.comps {
		if d := c.done[id]; d != ^uint64(0) {
			k := bits.TrailingZeros64(^d)
			if !c.seen[id] {
				return corrupt(JPEG, "component %d has no scan data (truncated?)", id)
			}
			return corrupt(JPEG, "progressive scans end early: coefficient %d of component %d never reaches full precision (truncated?)", k, id)
		}
	}
	return nil
}
