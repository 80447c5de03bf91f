package syncer

import (
	"errors"
	"strings"
	"testing"
)

func TestPathSchemeID(t *testing.T) {
	long := strings.Repeat("a", 1020) + ".png" // 1024 characters: allowed
	tests := []struct {
		name, prefix, rel string
		want              string
		rule              string // substring of the IDError rule; "" = valid
	}{
		{"plain", "", "shop/boots.jpg", "shop/boots.jpg", ""},
		{"prefix", "cdn/", "boots.JPG", "cdn/boots.JPG", ""},
		{"nfd to nfc", "", "cafe\u0301.png", "caf\u00e9.png", ""},
		{"no extension", "", "README", "README", ""},
		{"every image extension", "", "a.jpeg", "a.jpeg", ""},
		{"svg", "", "icons/x.SVG", "icons/x.SVG", ""},
		{"heic", "", "x.heic", "x.heic", ""},
		{"heif", "", "x.HEIF", "x.HEIF", ""},
		{"avif", "", "x.avif", "x.avif", ""},
		{"webp gif", "", "x.webp", "x.webp", ""},
		{"odd characters", "", "a b/%?#+é.png", "a b/%?#+é.png", ""},
		{"dotted directory", "", "v1.2/a.png", "v1.2/a.png", ""},
		{"exactly 1024", "", long, long, ""},
		{"too long", "", "x" + long, "", "longer than 1024"},
		{"too long in runes", "", strings.Repeat("é", 1021) + ".png", "", "longer than 1024"},
		{"uuid", "", "107b9558-dd06-4bbd-5fef-9c2c16bb7900", "", "UUID"},
		{"uuid upper", "", "107B9558-DD06-4BBD-5FEF-9C2C16BB7900", "", "UUID"},
		{"uuid with extension is fine", "", "107b9558-dd06-4bbd-5fef-9c2c16bb7900.png", "107b9558-dd06-4bbd-5fef-9c2c16bb7900.png", ""},
		{"non-image extension", "", "notes.txt", "", `extension ".txt"`},
		{"tarball", "", "a.tar.gz", "", `extension ".gz"`},
		{"trailing dot", "", "a.", "", `extension "."`},
		{"invalid utf8", "", "a\xff.png", "", "UTF-8"},
		{"prefix ends in slash, empty rel", "cdn/", "", "", "ends with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewIDScheme("path", tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ID(tt.rel, "ignored")
			if tt.rule == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ID(%q) = %q, %v; want %q", tt.rel, got, err, tt.want)
				}
				return
			}
			var ie *IDError
			if !errors.As(err, &ie) || !strings.Contains(ie.Rule, tt.rule) {
				t.Fatalf("ID(%q) = %q, %v; want an IDError naming %q", tt.rel, got, err, tt.rule)
			}
		})
	}
}

func TestNewIDScheme(t *testing.T) {
	for _, tt := range []struct {
		name, prefix string
		ok           bool
		want         string
		stable       bool
	}{
		{"path", "", true, "path", true},
		{"", "a/", true, "path", true},
		{"path", "/a", false, "", false},
		{"path", "a//b", false, "", false},
		{"versioned", "", true, "versioned", false},
		{"versioned", "shop/", true, "versioned", false},
		{"versioned", "/shop", false, "", false},
		{"auto", "", true, "auto", false},
		{"auto", "shop/", false, "", false},
		{"bogus", "", false, "", false},
	} {
		s, err := NewIDScheme(tt.name, tt.prefix)
		if (err == nil) != tt.ok {
			t.Errorf("NewIDScheme(%q, %q) = %v, %v; want ok=%v", tt.name, tt.prefix, s, err, tt.ok)
		}
		if err == nil && (s.Name() != tt.want || s.StableID() != tt.stable) {
			t.Errorf("NewIDScheme(%q) = %s stable=%v; want %s stable=%v", tt.name, s.Name(), s.StableID(), tt.want, tt.stable)
		}
	}
}

func TestVersionedID(t *testing.T) {
	const sum = "3fa9c1d2e4b5a6978877665544332211ffeeddccbbaa99887766554433221100"
	s, err := NewIDScheme("versioned", "shop/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ rel, want, rule string }{
		{"boots.jpg", "shop/boots.3fa9c1d2.jpg", ""},
		{"a/b.tar.png", "shop/a/b.tar.3fa9c1d2.png", ""},
		{"dir.d/file", "shop/dir.d/file-3fa9c1d2", ""},
		{"cafe\u0301.png", "shop/caf\u00e9.3fa9c1d2.png", ""},
		{"notes.txt", "", "extension"},
		{"bad\xff.png", "", "UTF-8"},
	} {
		id, err := s.ID(tt.rel, sum)
		switch {
		case tt.rule != "":
			if err == nil || !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("ID(%q) = %q, %v; want an error naming %q", tt.rel, id, err, tt.rule)
			}
		case err != nil || id != tt.want:
			t.Errorf("ID(%q) = %q, %v; want %q", tt.rel, id, err, tt.want)
		}
	}
	// Each version of a path has its own ID, and the same content the same one.
	a, _ := s.ID("x.png", sum)
	b, _ := s.ID("x.png", "00"+sum[2:])
	if a == b {
		t.Errorf("two versions share the ID %q", a)
	}
	if _, err := s.ID("x.png", ""); err == nil {
		t.Error("ID without a content hash succeeded")
	}
}

func TestAutoID(t *testing.T) {
	s, err := NewIDScheme("auto", "")
	if err != nil {
		t.Fatal(err)
	}
	// Any path is fine: the ID is generated and the path goes in the metadata.
	for _, rel := range []string{"a.png", "00000000-0000-0000-0000-000000000000", "x.txt", strings.Repeat("d/", 600) + "a.png"} {
		if id, err := s.ID(rel, "ab"); id != "" || err != nil {
			t.Errorf("ID(%q) = %q, %v; want \"\", nil", rel, id, err)
		}
	}
}

func TestDeliveryURL(t *testing.T) {
	base := "https://imagedelivery.net/Vi7wi5KSItxGFsWRG2Us6Q"
	tests := []struct{ id, want string }{
		{"a.png", base + "/a.png/public"},
		{"shop/boots.jpg", base + "/shop/boots.jpg/public"},
		{"100% real.png", base + "/100%25%20real.png/public"},
		{"what?.png", base + "/what%3F.png/public"},
		{"#1.png", base + "/%231.png/public"},
		{"a+b.png", base + "/a+b.png/public"},
		{"tab\tnl\n.png", base + "/tab%09nl%0A.png/public"},
		{"café/ü.png", base + "/caf%C3%A9/%C3%BC.png/public"},
	}
	for _, tt := range tests {
		if got := DeliveryURL(base, tt.id, "public"); got != tt.want {
			t.Errorf("DeliveryURL(%q) = %q; want %q", tt.id, got, tt.want)
		}
	}
	if got := DeliveryURL(base+"/", "a;b,c.png", "w=400,sharpen=1"); got != base+"/a;b,c.png/w=400,sharpen=1" {
		t.Errorf("trailing slash base: %q", got)
	}
}

func TestDeliveryBase(t *testing.T) {
	tests := []struct {
		name, url, id string
		base, variant string
		ok            bool
	}{
		{"raw id", "https://imagedelivery.net/H/shop/a b.png/public", "shop/a b.png", "https://imagedelivery.net/H", "public", true},
		{"escaped id", "https://imagedelivery.net/H/shop/a%20b%3F.png/thumbnail", "shop/a b?.png", "https://imagedelivery.net/H", "thumbnail", true},
		{"slash escaped", "http://127.0.0.1:1/cdn-cgi/imagedelivery/H/shop%2Fa.png/public", "shop/a.png", "", "", false},
		{"custom domain", "http://127.0.0.1:8080/cdn-cgi/imagedelivery/H/a/b.png/public", "a/b.png", "http://127.0.0.1:8080/cdn-cgi/imagedelivery/H", "public", true},
		{"generated id", "https://imagedelivery.net/H/107b9558-dd06-4bbd-5fef-9c2c16bb7900/public", "107b9558-dd06-4bbd-5fef-9c2c16bb7900", "https://imagedelivery.net/H", "public", true},
		{"other id", "https://imagedelivery.net/H/x.png/public", "y.png", "", "", false},
		{"no base", "https://imagedelivery.net/x.png/public", "x.png", "", "", false},
		{"not a url", "::", "x.png", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, variant, ok := deliveryBase(tt.url, tt.id)
			if ok != tt.ok || base != tt.base || variant != tt.variant {
				t.Fatalf("deliveryBase = %q, %q, %v; want %q, %q, %v", base, variant, ok, tt.base, tt.variant, tt.ok)
			}
			if ok {
				// What DeliveryURL builds must parse back to the same parts.
				b2, v2, ok2 := deliveryBase(DeliveryURL(base, tt.id, variant), tt.id)
				if !ok2 || b2 != base || v2 != variant {
					t.Errorf("round trip: %q, %q, %v", b2, v2, ok2)
				}
			}
		})
	}
}
