package syncer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBuildMetadata(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	t.Run("fields and static", func(t *testing.T) {
		m, err := buildMetadata(map[string]any{"site": "shop", "sha256": "spoof"}, "a/b.png", sum, 42)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"site": "shop", "path": "a/b.png", "sha256": sum, "size": int64(42)}
		if !metadataEqual(m, want) {
			t.Fatalf("metadata = %v; want %v (our keys win over static ones)", m, want)
		}
	})
	t.Run("path dropped first", func(t *testing.T) {
		rel := strings.Repeat("d/", 450) + "x.png" // ~900 bytes
		static := map[string]any{"note": strings.Repeat("n", 200)}
		m, err := buildMetadata(static, rel, sum, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["path"]; ok {
			t.Fatal("path kept although the object is over 1024 bytes with it")
		}
		b, _ := json.Marshal(m)
		if len(b) > maxMetadataBytes || m["sha256"] != sum {
			t.Fatalf("metadata %d bytes: %s", len(b), b)
		}
	})
	t.Run("refused when static is too big", func(t *testing.T) {
		_, err := buildMetadata(map[string]any{"note": strings.Repeat("n", 1000)}, "x.png", sum, 1)
		var me *MetadataError
		if !errors.As(err, &me) || me.Size <= maxMetadataBytes {
			t.Fatalf("err = %v; want a MetadataError over the limit", err)
		}
	})
	t.Run("unencodable static", func(t *testing.T) {
		if _, err := buildMetadata(map[string]any{"f": func() {}}, "x.png", sum, 1); err == nil {
			t.Fatal("no error for a value JSON cannot encode")
		}
	})
}

func TestMetadataEqualAfterJSON(t *testing.T) {
	want := map[string]any{"size": int64(7), "path": "a.png"}
	var got map[string]any
	b, _ := json.Marshal(want)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !metadataEqual(got, want) {
		t.Fatalf("decoded %v not equal to %v", got, want)
	}
	got["size"] = 8.0
	if metadataEqual(got, want) {
		t.Fatal("different size compared equal")
	}
}
