package store_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cfimgsync/cfimgsync/store"
)

// The write-ahead journal around one remote call: record the intent, make the call with no
// transaction open, then settle the intent and the record together.
func Example() {
	dir, err := os.MkdirTemp("", "cfimgsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if errors.Is(err, store.ErrLocked) {
		log.Fatal("another cfimgsync is running: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	photos := s.Folder("photos")

	id, err := photos.AddIntent(store.Intent{Op: store.OpUpload, Path: "shop/boots.jpg", ImageID: "shop/boots.jpg"})
	if err != nil {
		log.Fatal(err)
	}

	// ... the upload happens here. A crash now leaves the intent in the journal, and the
	// next start asks the API whether shop/boots.jpg exists before uploading again.

	rec := store.Record{Path: "shop/boots.jpg", ImageID: "shop/boots.jpg", State: store.StateSynced}
	if err := photos.Settle(id, &rec, ""); err != nil {
		log.Fatal(err)
	}

	pending, _ := photos.Intents()
	got, _, _ := photos.Get("shop/boots.jpg")
	fmt.Println(len(pending), got.ImageID, got.State)
	// Output: 0 shop/boots.jpg synced
}

// Walking part of a folder: collect inside the callback, act after it returns.
func ExampleFolder_ForEachUnder() {
	dir, err := os.MkdirTemp("", "cfimgsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	f := s.Folder("photos")
	if err := f.PutMany([]store.Record{{Path: "a/1.jpg"}, {Path: "a/2.jpg"}, {Path: "ab/3.jpg"}, {Path: "a.jpg"}}); err != nil {
		log.Fatal(err)
	}

	var under []string
	err = f.ForEachUnder("a", func(r store.Record) error {
		under = append(under, r.Path)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(under)
	// Output: [a/1.jpg a/2.jpg]
}
