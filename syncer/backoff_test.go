package syncer

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/batchapi/emulator"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// TestRunBackoffDoubles runs the daemon loop on a fake clock (the emulator served in
// process) and checks when a file that keeps failing transiently is tried again: after
// RetryBackoff, then twice that, and so on, without any file event.
func TestRunBackoffDoubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		em := emulator.New(emulator.Options{TokenRate: -1, GlobalBudget: -1})
		client, err := batchapi.New(batchapi.Config{
			AccountID:   "023e105f4ecef8ad9ca31a8372d0c353",
			APIToken:    "emulator-api-token",
			APIURL:      "http://127.0.0.1/client/v4",
			BatchURL:    "http://127.0.0.1",
			HTTPClient:  &http.Client{Transport: em.Transport()},
			MaxAttempts: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		root := filepath.Join(dir, "folder")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := os.WriteFile(filepath.Join(root, "a.png"), pngBytes(1), 0o644); err != nil {
			t.Fatal(err)
		}
		em.FailNext(emulator.RouteUpload, 4, http.StatusServiceUnavailable)

		var mu sync.Mutex
		var failures []time.Duration
		start := time.Now()
		uploaded := make(chan struct{})
		s, err := New(Config{
			Root: root, OwnerTag: testOwner, AccountID: "023e105f4ecef8ad9ca31a8372d0c353",
			RetryBackoff: 30 * time.Second,
			Progress: func(ev Event) {
				switch {
				case ev.Kind == EventFail && ev.Path == "a.png":
					mu.Lock()
					failures = append(failures, time.Since(start))
					mu.Unlock()
				case ev.Kind == EventUpload && ev.Path == "a.png":
					close(uploaded)
				}
			},
		}, st.Folder("default"), client)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx, make(chan watcher.Batch)) }()
		<-uploaded
		if d := time.Since(start); d != (30+60+120+240)*time.Second {
			t.Errorf("uploaded after %v; want 7m30s", d)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{0, 30 * time.Second, 90 * time.Second, 210 * time.Second}
		if len(failures) != len(want) {
			t.Fatalf("failures at %v; want %v", failures, want)
		}
		for i := range want {
			if failures[i] != want[i] {
				t.Fatalf("failures at %v; want %v", failures, want)
			}
		}
	})
}
