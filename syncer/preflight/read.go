package preflight

import (
	"errors"
	"fmt"
	"io"
)

// source is the file being checked: an io.ReaderAt that is never asked for bytes at or past size.
type source struct {
	r    io.ReaderAt
	size int64
}

// readAt fills p from offset off. A range past size is errTruncated (the structure claims more
// than the file holds); a short read inside size means the file shrank under us, which says
// nothing about the content, so it is an ordinary error.
func (s *source) readAt(p []byte, off int64) error {
	if off < 0 || off > s.size || int64(len(p)) > s.size-off {
		return errTruncated
	}
	n, err := s.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("read %d bytes at offset %d: got %d: file is shorter than its size of %d bytes (changed while being checked?)", len(p), off, n, s.size)
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}

// bufSize is the sequential reader's buffer: the one allocation per check that is not O(1) small.
const bufSize = 32 << 10

// seqReader reads a source front to back through a fixed buffer. Skips past the buffer cost no
// read at all, so walking a file's structure reads little more than its headers.
type seqReader struct {
	src  *source
	buf  []byte
	base int64 // file offset of buf[0]
	r, w int   // buf[r:w] is read from the file and not yet consumed
}

func newSeqReader(src *source, off int64) *seqReader {
	// A file smaller than the buffer fits whole in a buffer of its size; fill never needs more
	// than what is left in the file.
	n := max(min(bufSize, src.size-off), 1)
	return &seqReader{src: src, buf: make([]byte, n), base: off}
}

// pos is the file offset of the next unconsumed byte.
func (s *seqReader) pos() int64 { return s.base + int64(s.r) }

// remaining is how many bytes are left in the file after pos.
func (s *seqReader) remaining() int64 { return s.src.size - s.pos() }

// fill makes at least n bytes available in buf[r:w]. n may exceed the buffer only when the file
// has fewer than n bytes left, which is errTruncated anyway.
func (s *seqReader) fill(n int) error {
	if s.w-s.r >= n {
		return nil
	}
	if len(s.buf)-s.r < n {
		copy(s.buf, s.buf[s.r:s.w])
		s.base += int64(s.r)
		s.w -= s.r
		s.r = 0
	}
	next := s.base + int64(s.w)
	want := min(int64(len(s.buf)-s.w), s.src.size-next)
	if int64(s.w-s.r)+want < int64(n) {
		return errTruncated
	}
	if err := s.src.readAt(s.buf[s.w:s.w+int(want)], next); err != nil {
		return err
	}
	s.w += int(want)
	return nil
}

// next consumes n bytes (n ≤ bufSize) and returns them; the slice is valid until the next call.
func (s *seqReader) next(n int) ([]byte, error) {
	if err := s.fill(n); err != nil {
		return nil, err
	}
	b := s.buf[s.r : s.r+n]
	s.r += n
	return b, nil
}

func (s *seqReader) readByte() (byte, error) {
	if s.r == s.w {
		if err := s.fill(1); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.r]
	s.r++
	return b, nil
}

// ReadByte implements io.ByteReader (so encoding/xml reads without its own buffer), ending with
// io.EOF at the end of the file.
func (s *seqReader) ReadByte() (byte, error) {
	if s.r == s.w && s.remaining() == 0 {
		return 0, io.EOF
	}
	return s.readByte()
}

// discard skips n bytes without reading those past the buffer.
func (s *seqReader) discard(n int64) error {
	if n < 0 {
		return errTruncated
	}
	if n <= int64(s.w-s.r) {
		s.r += int(n)
		return nil
	}
	to := s.pos() + n
	if to > s.src.size || to < 0 {
		return errTruncated
	}
	s.base, s.r, s.w = to, 0, 0
	return nil
}

// Read implements io.Reader, ending with io.EOF at the end of the file.
func (s *seqReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.r == s.w {
		if s.remaining() == 0 {
			return 0, io.EOF
		}
		if err := s.fill(1); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	return n, nil
}

// chunk consumes and returns the next min(n, bufSize) bytes, to stream a long payload in pieces.
func (s *seqReader) chunk(n int64) ([]byte, error) {
	return s.next(int(min(n, int64(len(s.buf)))))
}
