package watcher

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Matcher decides which paths are ignored: the built-in defaults plus user patterns.
//
// Defaults, applied to every component of a path, case-insensitively:
//   - hidden names, starting with "." (dot directories, rsync's ".name.a1B2c3" temp files,
//     ".DS_Store", "._*" AppleDouble files, Emacs ".#*" locks, our own ".cfimgsync-folder");
//   - editor and download temp files: "*.swp", "*.swx", "*~", "*.tmp", "*.part",
//     "*.crdownload", "#*#";
//   - OS litter: "Thumbs.db", "desktop.ini".
//
// User patterns are a subset of gitignore, matched case-sensitively with [path.Match]:
//   - a pattern without "/" ("*.psd", "raw") matches a file or directory base name at any
//     depth;
//   - a pattern containing "/" ("shop/drafts", "*/tmp/*.jpg", "/*.tif") is matched against
//     the whole relative path, so a leading "/" anchors a pattern at the root;
//   - a trailing "/" ("cache/") makes a pattern match directories only;
//   - a leading "**/" matches at any depth ("**/drafts/*.jpg" matches "drafts/a.jpg" and
//     "x/y/drafts/a.jpg"), and a trailing "/**" matches everything inside a directory.
//
// Anything inside an ignored directory is ignored too. Negation ("!pattern"), comments and
// "**" anywhere else are not supported and are refused by NewMatcher, so that a pattern never
// silently means something other than what its author expected.
//
// A Matcher is immutable and safe for concurrent use.
type Matcher struct {
	patterns []pattern
}

type pattern struct {
	text     string // as the user wrote it, for messages
	glob     string // path.Match pattern, without the "**/" or "/**" decoration
	base     bool   // no "/": match against one name only
	anyDepth bool   // "**/" prefix: match glob against every suffix of the path
	inside   bool   // "/**" suffix: the glob names a directory whose contents match
	dirOnly  bool   // trailing "/"
}

// NewMatcher returns a Matcher for the defaults plus patterns. An invalid pattern is an
// error naming it.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, text := range patterns {
		p, err := parsePattern(text)
		if err != nil {
			return nil, fmt.Errorf("ignore pattern %q: %w", text, err)
		}
		m.patterns = append(m.patterns, p)
	}
	return m, nil
}

func parsePattern(text string) (pattern, error) {
	p := pattern{text: text}
	s := strings.TrimSpace(text)
	switch {
	case s == "":
		return p, errors.New("empty pattern")
	case strings.HasPrefix(s, "!"):
		return p, errors.New("negation is not supported")
	case strings.Contains(s, `\`):
		// path.Match would take it as an escape, gitignore users may mean a Windows separator:
		// refuse rather than guess.
		return p, errors.New(`backslash is not supported; use "/" to separate directories`)
	}
	if strings.HasSuffix(s, "/") {
		p.dirOnly = true
		s = strings.TrimRight(s, "/")
	}
	if strings.HasPrefix(s, "**/") {
		p.anyDepth = true
		s = strings.TrimPrefix(s, "**/")
	}
	if strings.HasSuffix(s, "/**") {
		p.inside = true
		s = strings.TrimSuffix(s, "/**")
	}
	anchored := strings.HasPrefix(s, "/")
	s = strings.TrimPrefix(s, "/")
	switch {
	case s == "" || s == "**":
		return p, errors.New("pattern matches everything")
	case strings.Contains(s, "**"):
		return p, errors.New(`"**" is only supported as a leading "**/" or a trailing "/**"`)
	case strings.Contains(s, "//"):
		return p, errors.New("empty path component")
	}
	if _, err := path.Match(s, ""); err != nil {
		return p, err
	}
	p.glob = s
	// "dir/**" is anchored like any pattern with a "/", even though its glob has none.
	p.base = !strings.Contains(s, "/") && !anchored && (!p.inside || p.anyDepth)
	return p, nil
}

// Match reports whether rel is ignored. rel is slash-separated and relative to the folder
// root; isDir says whether rel itself is a directory (its ancestors are directories by
// definition). The root itself ("" or ".") is never ignored.
func (m *Matcher) Match(rel string, isDir bool) bool {
	rel = strings.TrimPrefix(strings.Trim(rel, "/"), "./")
	if rel == "" || rel == "." {
		return false
	}
	// Every ancestor is checked as a directory, so a path inside an ignored directory is
	// ignored even when the caller did not skip the directory itself.
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		if j < 0 {
			return m.matchOne(rel, rel[i:], isDir)
		}
		if m.matchOne(rel[:i+j], rel[i:i+j], true) {
			return true
		}
		i += j + 1
	}
}

// matchOne matches one path (not its ancestors); name is its last component.
func (m *Matcher) matchOne(rel, name string, isDir bool) bool {
	if ignoredByDefault(name) {
		return true
	}
	if m == nil {
		return false
	}
	for i := range m.patterns {
		if m.patterns[i].match(rel, name, isDir) {
			return true
		}
	}
	return false
}

func (p *pattern) match(rel, name string, isDir bool) bool {
	if p.inside {
		// "dir/**" matches what is inside dir, so rel must be strictly below a match. The
		// ancestor loop in Match calls us for each directory above rel; matching the parent
		// here is enough.
		parent, _, ok := cutLast(rel)
		if !ok {
			return false
		}
		q := *p
		q.inside, q.dirOnly = false, false
		pname := parent
		if _, n, ok := cutLast(parent); ok {
			pname = n
		}
		return q.match(parent, pname, true)
	}
	if p.dirOnly && !isDir {
		return false
	}
	if p.base {
		ok, _ := path.Match(p.glob, name)
		return ok
	}
	if ok, _ := path.Match(p.glob, rel); ok {
		return true
	}
	if p.anyDepth {
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' {
				if ok, _ := path.Match(p.glob, rel[i+1:]); ok {
					return true
				}
			}
		}
	}
	return false
}

// cutLast splits "a/b/c" into "a/b" and "c"; ok is false when there is no "/".
func cutLast(rel string) (dir, name string, ok bool) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel, false
	}
	return rel[:i], rel[i+1:], true
}

// tempSuffixes are the endings editors and browsers give to files that are still being
// written; the finished file appears under its real name by a rename.
var tempSuffixes = [...]string{".swp", ".swx", "~", ".tmp", ".part", ".crdownload"}

func ignoredByDefault(name string) bool {
	if name == "" {
		return false
	}
	// Hidden names also cover .DS_Store, ._* (AppleDouble), .#* (Emacs locks), rsync's
	// .name.a1B2c3 and our own .cfimgsync-folder marker.
	if name[0] == '.' {
		return true
	}
	if len(name) >= 2 && name[0] == '#' && name[len(name)-1] == '#' {
		return true // Emacs auto-save
	}
	lower := strings.ToLower(name)
	if lower == "thumbs.db" || lower == "desktop.ini" {
		return true
	}
	for _, s := range tempSuffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}
