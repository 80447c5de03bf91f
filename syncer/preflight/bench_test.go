package preflight_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// BenchmarkCheck measures Check on every corpus file held in memory (so the figure is parsing
// cost, not disk), plus a generated 16 MP PNG when the corpus is missing.
//
//	go test -run '^$' -bench Check -benchmem ./syncer/preflight/
func BenchmarkCheck(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*", "*"))
	type input struct {
		name string
		data []byte
	}
	var inputs []input
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		rel, _ := filepath.Rel(corpusDir, p)
		inputs = append(inputs, input{filepath.ToSlash(rel), data})
	}
	inputs = append(inputs, input{"generated/gray-4000x4000.png",
		buildPNG(ihdr(4000, 4000, 8, 0, 0), splitIDAT(zlibBytes(b, make([]byte, 4000*4001)), 8192))})
	lim := preflight.DefaultLimits()
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			r := bytes.NewReader(in.data)
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				preflight.Check(r, int64(len(in.data)), lim)
			}
		})
	}
}
