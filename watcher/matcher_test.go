package watcher

import (
	"strconv"
	"strings"
	"testing"
)

func TestMatcherDefaults(t *testing.T) {
	m, err := NewMatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{"boots.jpg", false, false},
		{"shop/boots.jpg", false, false},
		{"shop", true, false},
		{"a/b/c/d.png", false, false},
		{"", true, false},
		{".", true, false},

		// Hidden names, at any depth and as an ancestor.
		{".hidden.jpg", false, true},
		{".git", true, true},
		{".git/config", false, true},
		{"shop/.cache/a.jpg", false, true},
		{"shop/.boots.jpg.Xy12Zq", false, true}, // rsync temp file
		{".DS_Store", false, true},
		{"shop/.DS_Store", false, true},
		{"._boots.jpg", false, true},
		{".#boots.jpg", false, true},
		{".cfimgsync-folder", false, true},
		{"shop/.cfimgsync-folder", false, true},

		// Editor and download temp files.
		{"boots.jpg.swp", false, true},
		{"shop/.boots.jpg.swp", false, true},
		{"boots.jpg.swx", false, true},
		{"boots.jpg~", false, true},
		{"boots.tmp", false, true},
		{"BOOTS.TMP", false, true},
		{"boots.jpg.part", false, true},
		{"boots.jpg.crdownload", false, true},
		{"#boots.jpg#", false, true},
		{"shop/#boots.jpg#", false, true},
		{"#", false, false},
		{"#boots.jpg", false, false},
		{"boots#.jpg", false, false},

		// OS litter.
		{"Thumbs.db", false, true},
		{"shop/thumbs.db", false, true},
		{"desktop.ini", false, true},
		{"Desktop.ini", false, true},

		// Near misses stay visible.
		{"tmp", true, false},
		{"tmp/a.jpg", false, false},
		{"parts/a.jpg", false, false},
		{"a.partial.jpg", false, false},
		{"my.swpx", false, false},
		{"thumbs.db.jpg", false, false},
		{"x.", false, false},
	}
	for _, tt := range tests {
		if got := m.Match(tt.rel, tt.isDir); got != tt.want {
			t.Errorf("Match(%q, isDir=%v) = %v, want %v", tt.rel, tt.isDir, got, tt.want)
		}
	}
	// The zero Matcher and a nil one apply the defaults as well.
	var nilM *Matcher
	for _, m := range []*Matcher{{}, nilM} {
		if !m.Match("a/.git", true) || m.Match("a/b.jpg", false) {
			t.Errorf("%#v does not apply exactly the defaults", m)
		}
	}
}

func TestMatcherPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		rel     string
		isDir   bool
		want    bool
	}{
		// Base-name patterns match at any depth, files and directories alike.
		{"*.psd", "a.psd", false, true},
		{"*.psd", "shop/deep/a.psd", false, true},
		{"*.psd", "a.psd.jpg", false, false},
		{"*.psd", "a.PSD", false, false}, // case-sensitive
		{"raw", "raw", true, true},
		{"raw", "raw", false, true},
		{"raw", "shop/raw", true, true},
		{"raw", "shop/raw/a.jpg", false, true}, // inside an ignored directory
		{"raw", "shop/rawer/a.jpg", false, false},
		{"draft-?.jpg", "draft-1.jpg", false, true},
		{"draft-?.jpg", "draft-12.jpg", false, false},
		{"[ab].jpg", "x/b.jpg", false, true},
		{"[ab].jpg", "x/c.jpg", false, false},

		// Directory-only patterns.
		{"cache/", "cache", true, true},
		{"cache/", "cache", false, false},
		{"cache/", "x/cache", true, true},
		{"cache/", "x/cache/a.jpg", false, true},
		{"cache/", "cache.jpg", false, false},

		// Patterns with a "/" match the whole relative path.
		{"shop/drafts", "shop/drafts", true, true},
		{"shop/drafts", "shop/drafts/a.jpg", false, true},
		{"shop/drafts", "other/shop/drafts", true, false},
		{"/shop/drafts", "shop/drafts/a.jpg", false, true},
		{"/*.tif", "a.tif", false, true},
		{"/*.tif", "shop/a.tif", false, false},
		{"/raw", "raw/a.jpg", false, true},
		{"/raw", "shop/raw/a.jpg", false, false},
		{"shop/*.png", "shop/a.png", false, true},
		{"shop/*.png", "shop/sub/a.png", false, false}, // "*" stops at "/"
		{"shop/*.png", "a.png", false, false},
		{"*/tmp/*.jpg", "a/tmp/b.jpg", false, true},
		{"*/tmp/*.jpg", "tmp/b.jpg", false, false},
		{"shop/drafts/", "shop/drafts", true, true},
		{"shop/drafts/", "shop/drafts", false, false},

		// "**/" prefix: any depth, including the top.
		{"**/drafts/*.jpg", "drafts/a.jpg", false, true},
		{"**/drafts/*.jpg", "x/y/drafts/a.jpg", false, true},
		{"**/drafts/*.jpg", "x/drafts/a.png", false, false},
		{"**/drafts/*.jpg", "x/mydrafts/a.jpg", false, false},
		{"**/build", "a/b/build", true, true},
		{"**/build/", "a/b/build", false, false},
		{"**/build/", "a/b/build/c.jpg", false, true},

		// "/**" suffix: everything inside, not the directory itself.
		{"raw/**", "raw/a.jpg", false, true},
		{"raw/**", "raw/x/a.jpg", false, true},
		{"raw/**", "raw", true, false},
		{"raw/**", "shop/raw/a.jpg", false, false},
		{"shop/raw/**", "shop/raw/a/b.jpg", false, true},
		{"**/raw/**", "shop/raw/a.jpg", false, true},
		{"**/raw/**", "raw/a.jpg", false, true},

		// Defaults still apply with user patterns.
		{"*.psd", ".git/x", false, true},
	}
	for _, tt := range tests {
		m, err := NewMatcher([]string{tt.pattern})
		if err != nil {
			t.Fatalf("NewMatcher(%q): %v", tt.pattern, err)
		}
		if got := m.Match(tt.rel, tt.isDir); got != tt.want {
			t.Errorf("pattern %q: Match(%q, isDir=%v) = %v, want %v", tt.pattern, tt.rel, tt.isDir, got, tt.want)
		}
	}
}

func TestMatcherSeveralPatterns(t *testing.T) {
	m, err := NewMatcher([]string{"*.psd", "drafts/", "shop/old/*"})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		"a.psd":            true,
		"drafts/a.jpg":     true,
		"shop/old/a.jpg":   true,
		"shop/new/a.jpg":   false,
		"shop/old":         false,
		"shop/boots.jpeg":  false,
		"x/y/z/drafts/a.j": true,
	} {
		if got := m.Match(rel, false); got != want {
			t.Errorf("Match(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestNewMatcherRejects(t *testing.T) {
	for _, p := range []string{
		"",
		"   ",
		"!keep.jpg",
		"[",
		"shop/[a-",
		`shop\raw`,
		"a/**/b",
		"**",
		"**/",
		"/",
		"a//b",
	} {
		_, err := NewMatcher([]string{"*.psd", p})
		if err == nil {
			t.Errorf("NewMatcher accepted %q", p)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(p)) {
			t.Errorf("error for %q does not name it: %v", p, err)
		}
	}
}
