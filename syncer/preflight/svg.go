package preflight

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxSVGDepth caps element nesting: real drawings stay far below it, and the decoder's stack of
// open elements is the one structure that would otherwise grow with hostile input.
const maxSVGDepth = 512

// entityDecl matches an entity declaration in a DOCTYPE's internal subset (Illustrator writes
// these for namespace URIs).
var entityDecl = regexp.MustCompile(`<!ENTITY\s+([^\s%"'<>]+)\s`)

// checkSVG checks that the whole file is well-formed XML with an <svg> root. Every byte is read
// (through encoding/xml, so at most MaxBytes), but nothing is kept beyond the open-element stack.
// SVG is vector: the pixel limits do not apply, and the width/height attributes are reported only
// when they are plain pixel numbers.
func checkSVG(src *source, head []byte) (Info, error) {
	start := int64(0)
	if bytes.HasPrefix(head, []byte(bom)) {
		start = int64(len(bom)) // encoding/xml does not skip a byte order mark
	}
	d := xml.NewDecoder(newSeqReader(src, start))
	d.CharsetReader = charsetReader
	// Declared entities are expanded to nothing: only well-formedness matters here, and expanding
	// them for real would open the door to entity-expansion bombs.
	d.Entity = map[string]string{}
	var (
		info  Info
		stack []string
		done  bool
	)
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) || errors.Is(err, errTruncated) {
				return Info{}, err
			}
			var se *xml.SyntaxError
			if !errors.As(err, &se) && !strings.HasPrefix(err.Error(), "xml: ") {
				return Info{}, err // a read error from the file
			}
			if stack == nil && !done {
				return Info{}, refuse(ReasonNotAnImage, "not SVG: XML error before the root element: %v", err)
			}
			return Info{}, corrupt(SVG, "%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := qname(t.Name)
			if done {
				return Info{}, corrupt(SVG, "element <%s> after the end of the root element", name)
			}
			if stack == nil {
				if t.Name.Local != "svg" {
					return Info{}, refuse(ReasonNotAnImage, "XML root element is <%s>, not <svg>", name)
				}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "width":
						info.Width = svgPixels(a.Value)
					case "height":
						info.Height = svgPixels(a.Value)
					}
				}
				stack = make([]string, 0, 16)
			}
			if len(stack) >= maxSVGDepth {
				return Info{}, corrupt(SVG, "elements nested deeper than %d levels", maxSVGDepth)
			}
			stack = append(stack, name)
		case xml.EndElement:
			name := qname(t.Name)
			if len(stack) == 0 || stack[len(stack)-1] != name {
				line, _ := d.InputPos()
				return Info{}, corrupt(SVG, "line %d: unexpected end tag </%s>", line, name)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				done = true
			}
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
				if done {
					return Info{}, corrupt(SVG, "text after the end of the root element")
				}
				return Info{}, refuse(ReasonNotAnImage, "not SVG: text before the root element")
			}
		case xml.Directive:
			if stack == nil && !done {
				for _, m := range entityDecl.FindAllSubmatch(t, -1) {
					d.Entity[string(m[1])] = ""
				}
			}
		}
	}
	switch {
	case stack == nil && !done:
		return Info{}, refuse(ReasonNotAnImage, "no root element")
	case !done:
		return Info{}, corrupt(SVG, "file ends inside <%s> (truncated)", stack[len(stack)-1])
	}
	return info, nil
}

// qname renders a raw (prefix:local) name as written.
func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// svgPixels parses a width or height attribute in user units or px; anything else (%, mm, em) is
// 0, "unknown".
func svgPixels(v string) int {
	v = strings.TrimSuffix(strings.TrimSpace(v), "px")
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f <= 0 || f > math.MaxInt32 {
		return 0
	}
	return int(math.Ceil(f))
}

// charsetReader lets the XML declaration name a charset. UTF-8 and ASCII pass through; Latin-1
// (and its common labels) is widened to UTF-8 byte by byte. Anything else is refused: we could
// not check it, and the API's SVG sanitiser is unlikely to do better.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252":
		return &latin1Reader{r: r}, nil
	}
	return nil, refuse(ReasonCorrupt, "SVG: unsupported character encoding %q", label)
}

// latin1Reader converts ISO-8859-1 to UTF-8. (Windows-1252 differs only in 0x80–0x9f, which is
// irrelevant to well-formedness.)
type latin1Reader struct {
	r    io.Reader
	in   [512]byte
	conv [1024]byte // each Latin-1 byte is at most 2 bytes of UTF-8
	out  []byte     // unread part of conv
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(l.out) == 0 {
		n, err := l.r.Read(l.in[:])
		if n == 0 {
			return 0, err
		}
		l.out = l.conv[:0]
		for _, c := range l.in[:n] {
			l.out = utf8.AppendRune(l.out, rune(c))
		}
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}
