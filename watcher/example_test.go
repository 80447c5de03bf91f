package watcher_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cfimgsync/cfimgsync/watcher"
)

func ExampleMatcher() {
	m, err := watcher.NewMatcher([]string{"*.psd", "drafts/", "shop/old/*", "**/raw/**"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, rel := range []string{
		"shop/boots.jpg",
		"shop/.boots.jpg.Xq91az", // rsync temp file: hidden
		"shop/boots.jpg.part",    // download in progress
		"shop/layers.psd",
		"drafts/new.jpg",
		"shop/old/boots.jpg",
		"a/raw/b/c.jpg",
	} {
		fmt.Printf("%-24s ignored=%v\n", rel, m.Match(rel, false))
	}
	_, err = watcher.NewMatcher([]string{"!keep.psd"})
	fmt.Println(err)
	// Output:
	// shop/boots.jpg           ignored=false
	// shop/.boots.jpg.Xq91az   ignored=true
	// shop/boots.jpg.part      ignored=true
	// shop/layers.psd          ignored=true
	// drafts/new.jpg           ignored=true
	// shop/old/boots.jpg       ignored=true
	// a/raw/b/c.jpg            ignored=true
	// ignore pattern "!keep.psd": negation is not supported
}

func ExampleWatcher_Run() {
	ignore, err := watcher.NewMatcher([]string{"*.psd"})
	if err != nil {
		panic(err)
	}
	w, err := watcher.New("/srv/images", watcher.Options{
		Settle: 2 * time.Second,
		Ignore: ignore,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan watcher.Batch)
	go func() {
		for b := range batches {
			if b.Rescan {
				fmt.Println("scan everything")
				continue
			}
			fmt.Println("look at", b.Paths)
		}
	}()
	// Run returns when ctx is done, or at once if fsnotify cannot start.
	if err := w.Run(ctx, batches); err != nil && ctx.Err() == nil {
		fmt.Println(err)
	}
}
