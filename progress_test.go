package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/syncer"
)

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	p := newProgressBar(&out)
	p.now = func() time.Time { return now }
	step := func(ev syncer.Event) {
		now = now.Add(time.Second)
		p.event(ev)
	}
	for _, name := range []string{"a.png", "b.png", "c.png", "d.png"} {
		step(syncer.Event{Kind: syncer.EventScan, Path: name, Bytes: 1 << 20})
	}
	if !strings.Contains(out.String(), "\rreading: 4 changed files, 4.0 MiB") {
		t.Errorf("scan phase: %q", out.String())
	}
	step(syncer.Event{Kind: syncer.EventUpload, Path: "a.png", Bytes: 1 << 20})
	step(syncer.Event{Kind: syncer.EventUpload, Path: "b.png", Bytes: 1 << 20})
	step(syncer.Event{Kind: syncer.EventFail, Path: "c.png", Err: errors.New("too big")})
	step(syncer.Event{Kind: syncer.EventUpload, Path: "d.png", Bytes: 1 << 20})
	last := out.String()[strings.LastIndex(out.String(), "\r")+1:]
	if !strings.Contains(last, "4/4 files") || !strings.Contains(last, "3.0 MiB/4.0 MiB") || !strings.Contains(last, "MiB/s") {
		t.Errorf("bar after the last upload: %q", last)
	}
	if !strings.Contains(out.String(), "fail     c.png: too big\n") {
		t.Errorf("the failure is not on a line of its own:\n%q", out.String())
	}
	// Two uploads of 1 MiB over 1 s after the first: ETA for the last MiB is shown.
	if !strings.Contains(out.String(), "ETA ") {
		t.Errorf("no ETA in %q", out.String())
	}
	step(syncer.Event{Kind: syncer.EventDone})
	if !strings.HasSuffix(out.String(), "\r") {
		t.Errorf("done did not blank the bar: %q", out.String()[max(0, out.Len()-40):])
	}
}

func TestProgressBarRedrawsAtMostEveryInterval(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	p := newProgressBar(&out)
	p.now = func() time.Time { return now }
	for range 100 {
		p.event(syncer.Event{Kind: syncer.EventScan, Bytes: 10})
	}
	if n := strings.Count(out.String(), "\r"); n != 1 {
		t.Errorf("%d redraws for 100 events at one instant, want 1", n)
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}} {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
