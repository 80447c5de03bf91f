package syncer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSyncMatchesFolderAfterRandomChanges applies random creates, rewrites, copies, deletes
// and renames (of files and directories) between passes, and after each pass checks that the
// remote side is exactly the folder: one image per file, with its content, and nothing else.
func TestSyncMatchesFolderAfterRandomChanges(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			e := newEnv(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			dirs := []string{"", "a/", "a/b/", "c/"}
			next := 1000
			files := func() []string {
				var out []string
				filepath.WalkDir(e.root, func(p string, d os.DirEntry, err error) error {
					if err == nil && !d.IsDir() && d.Name() != markerName {
						rel, _ := filepath.Rel(e.root, p)
						out = append(out, filepath.ToSlash(rel))
					}
					return nil
				})
				return out
			}
			for round := range 6 {
				for range 8 {
					fs := files()
					switch op := rng.IntN(6); {
					case op == 0 || len(fs) == 0: // create
						next++
						e.write(fmt.Sprintf("%sf%d.png", dirs[rng.IntN(len(dirs))], next), pngBytes(next))
					case op == 1: // rewrite
						next++
						e.write(fs[rng.IntN(len(fs))], pngBytes(next))
					case op == 2: // delete
						e.remove(fs[rng.IntN(len(fs))])
					case op == 3: // rename a file
						from := fs[rng.IntN(len(fs))]
						next++
						to := fmt.Sprintf("%sr%d.png", dirs[rng.IntN(len(dirs))], next)
						os.MkdirAll(filepath.Dir(e.abs(to)), 0o755)
						if err := os.Rename(e.abs(from), e.abs(to)); err != nil {
							t.Fatal(err)
						}
					case op == 5: // copy a file: two paths, one content
						from := fs[rng.IntN(len(fs))]
						next++
						e.write(fmt.Sprintf("%sc%d.png", dirs[rng.IntN(len(dirs))], next), mustRead(t, e.abs(from)))
					case op == 4: // rename a directory
						if _, err := os.Stat(e.abs("a")); err == nil {
							next++
							if err := os.Rename(e.abs("a"), e.abs(fmt.Sprintf("d%d", next))); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				if _, err := e.syncer(func(c *Config) { c.MaxDelete = 1000 }).SyncOnce(t.Context()); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				want := files()
				var got []string
				for _, img := range e.em.Images() {
					got = append(got, img.ID)
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: images\n  %v\nfolder\n  %v", round, got, want)
				}
				for _, rel := range want {
					if !e.hasContent(rel, mustRead(t, e.abs(rel))) {
						t.Fatalf("round %d: %s holds other content", round, rel)
					}
				}
				if n, _ := e.st.Folder("default").Len(); n != len(want) {
					t.Fatalf("round %d: %d records for %d files", round, n, len(want))
				}
			}
		})
	}
}
