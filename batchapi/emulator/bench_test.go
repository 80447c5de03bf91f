package emulator

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkUpload measures uploads/s of a small PNG from parallel clients over loopback,
// on the batch host with one token and no rate limit. Run:
//
//	go test -run '^$' -bench Upload -benchtime 20000x -cpu 2 ./batchapi/emulator/
func BenchmarkUpload(b *testing.B) {
	s := newServer(b, Options{TokenRate: -1})
	tok := s.batchClient(b).token
	body, ct := multipartForm(b, fileField("small.png", pngBytes(b, 16, 16)),
		field{name: "metadata", value: `{"path":"bench/small.png","sha256":"0123456789abcdef"}`},
		field{name: "creator", value: "cfimgsync:bench:folder"})
	payload := body.Bytes()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	url := s.BatchURL() + "/images/v1"

	b.SetParallelism(4) // 4 x GOMAXPROCS clients keep the server busy while others wait
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("upload: %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "uploads/s")
	if n := len(s.Emulator.Images()); n != b.N {
		b.Errorf("%d images stored after %d uploads", n, b.N)
	}
}

// BenchmarkInspectEdgePNG measures the stream check of a PNG at the pixel limits
// (12000x8000 gray, 96 MB of pixel data), the costliest upload to check. Run:
//
//	go test -run '^$' -bench InspectEdgePNG ./batchapi/emulator/
func BenchmarkInspectEdgePNG(b *testing.B) {
	content := grayPNG(b, 12000, 8000)
	e := New(Options{})
	b.SetBytes(12000 * 8000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.inspect(content); err != nil {
			b.Fatal(err)
		}
	}
}
