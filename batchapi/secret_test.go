package batchapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-t0ken-value"
	s := Secret(value)
	cfg := Config{AccountID: "acct", APIToken: s}
	bt := BatchToken{Token: s}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, bt), fmt.Sprintf(verb, &cfg))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())

	j, err := json.Marshal(map[string]any{"token": cfg.APIToken, "batch": bt, "s": s})
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j))

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("token", "secret", s, "cfg", cfg, "batch", bt, slog.Any("any", s), slog.Group("g", "s", s))
	}
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if !strings.Contains(buf.String(), redacted) {
		t.Errorf("log output does not say redacted: %s", buf.String())
	}
	// The one sanctioned way to the value.
	if string(s) != value {
		t.Error("conversion lost the value")
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want string // "" = refused
	}{
		{"https://api.cloudflare.com/client/v4", "https://api.cloudflare.com/client/v4"},
		{"https://batch.imagedelivery.net/", "https://batch.imagedelivery.net"},
		{"http://127.0.0.1:8080/client/v4", "http://127.0.0.1:8080/client/v4"},
		{"http://localhost:1234", "http://localhost:1234"},
		{"http://[::1]:1234", "http://[::1]:1234"},
		{"http://api.cloudflare.com/client/v4", ""},
		{"http://10.0.0.1/", ""},
		{"http://127.0.0.1.example.com/", ""},
		{"ftp://127.0.0.1/", ""},
		{"https://user:pw@api.cloudflare.com/", ""},
		{"https://api.cloudflare.com/?x=1", ""},
		{"https:///nohost", ""},
		{"::", ""},
	}
	for _, tt := range tests {
		got, err := baseURL("APIURL", tt.raw)
		if tt.want == "" {
			if err == nil {
				t.Errorf("baseURL(%q) = %q, want refused", tt.raw, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
}

func TestImagePathIsOneSegment(t *testing.T) {
	tests := []struct{ id, want string }{
		{"boots.jpg", "/images/v1/boots.jpg"},
		{"shop/boots.jpg", "/images/v1/shop%2Fboots.jpg"},
		{"a b/c?d#e%f", "/images/v1/a%20b%2Fc%3Fd%23e%25f"},
		{"ünï/çødé.png", "/images/v1/%C3%BCn%C3%AF%2F%C3%A7%C3%B8d%C3%A9.png"},
	}
	for _, tt := range tests {
		if got := imagePath(tt.id); got != tt.want {
			t.Errorf("imagePath(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}
