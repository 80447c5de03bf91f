package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi"
)

// TestSyncMatchesFolderAfterRandomChanges applies random creates, rewrites, copies, deletes
// and renames (of files and directories) between passes, and after each pass checks that the
// remote side is exactly the folder: one image per file, with its content, and nothing else.
func TestSyncMatchesFolderAfterRandomChanges(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			e := newEnv(t)
			m := &model{t: t, e: e, rng: rand.New(rand.NewPCG(seed, 42)), next: 1000}
			for round := range 6 {
				for range 8 {
					m.step()
				}
				if _, err := e.syncer(func(c *Config) { c.MaxDelete = 1000 }).SyncOnce(t.Context()); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if diff := m.mismatch(); diff != "" {
					t.Fatalf("round %d: %s", round, diff)
				}
			}
		})
	}
}

// model makes random changes to an env's folder and compares the remote side with it.
type model struct {
	t    *testing.T
	e    *env
	rng  *rand.Rand
	next int
}

var modelDirs = [...]string{"", "a/", "a/b/", "c/"}

// files lists the folder's files (the marker excluded).
func (m *model) files() []string {
	var out []string
	filepath.WalkDir(m.e.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != markerName {
			rel, _ := filepath.Rel(m.e.root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func (m *model) dir() string { return modelDirs[m.rng.IntN(len(modelDirs))] }

// step makes one random change: create, rewrite, delete, rename a file or a directory, or
// copy a file.
func (m *model) step() {
	e, t := m.e, m.t
	fs := m.files()
	m.next++
	switch op := m.rng.IntN(6); {
	case op == 0 || len(fs) == 0:
		e.write(fmt.Sprintf("%sf%d.png", m.dir(), m.next), pngBytes(m.next))
	case op == 1:
		e.write(fs[m.rng.IntN(len(fs))], pngBytes(m.next))
	case op == 2:
		e.remove(fs[m.rng.IntN(len(fs))])
	case op == 3:
		to := fmt.Sprintf("%sr%d.png", m.dir(), m.next)
		os.MkdirAll(filepath.Dir(e.abs(to)), 0o755)
		if err := os.Rename(e.abs(fs[m.rng.IntN(len(fs))]), e.abs(to)); err != nil {
			t.Fatal(err)
		}
	case op == 4:
		if _, err := os.Stat(e.abs("a")); err == nil {
			if err := os.Rename(e.abs("a"), e.abs(fmt.Sprintf("d%d", m.next))); err != nil {
				t.Fatal(err)
			}
		}
	case op == 5:
		e.write(fmt.Sprintf("%sc%d.png", m.dir(), m.next), mustRead(t, e.abs(fs[m.rng.IntN(len(fs))])))
	}
}

// mismatch says how the remote side and the index differ from the folder ("" if not).
func (m *model) mismatch() string {
	want := m.files()
	var got []string
	for _, img := range m.e.em.Images() {
		got = append(got, img.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Sprintf("images\n  %v\nfolder\n  %v", got, want)
	}
	for _, rel := range want {
		b, err := os.ReadFile(m.e.abs(rel))
		if err != nil || !m.e.hasContent(rel, b) {
			return rel + " holds other content"
		}
	}
	if n, _ := m.e.st.Folder("default").Len(); n != len(want) {
		return fmt.Sprintf("%d records for %d files", n, len(want))
	}
	return ""
}

// TestRunMatchesFolderAfterRandomChanges makes the random changes while the daemon runs
// with a real watcher, and waits for the remote side to match the folder after each burst.
func TestRunMatchesFolderAfterRandomChanges(t *testing.T) {
	e := newEnv(t)
	hints := startWatcher(t, e)
	startRun(t, e, hints, func(c *Config) { c.MaxDelete = 1000 })
	m := &model{t: t, e: e, rng: rand.New(rand.NewPCG(7, 42)), next: 1000}
	for round := range 4 {
		for range 10 {
			m.step()
		}
		settled(t, fmt.Sprintf("round %d", round), m.mismatch)
	}
}

// crashRemote makes some calls that reached the API look interrupted, as a crash right
// after the call would: the change is made, the answer is lost, the intent stays.
type crashRemote struct {
	Remote
	mu  sync.Mutex
	rng *rand.Rand
	p   float64
}

func (c *crashRemote) crash() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Float64() < c.p
}

func (c *crashRemote) Upload(ctx context.Context, req batchapi.UploadRequest) (batchapi.Image, error) {
	img, err := c.Remote.Upload(ctx, req)
	if err == nil && c.crash() {
		return batchapi.Image{}, context.Canceled
	}
	return img, err
}

func (c *crashRemote) Delete(ctx context.Context, id string) error {
	err := c.Remote.Delete(ctx, id)
	if err == nil && c.crash() {
		return context.Canceled
	}
	return err
}

// TestSyncConvergesThroughCrashesAndFaults interleaves random changes with passes that
// meet server errors and "crashes" after calls; a final clean pass must leave the remote
// side exactly the folder, with no journal left.
func TestSyncConvergesThroughCrashesAndFaults(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			e := newEnv(t)
			m := &model{t: t, e: e, rng: rand.New(rand.NewPCG(seed, 99)), next: 1000}
			flaky := &crashRemote{Remote: e.client, rng: rand.New(rand.NewPCG(seed, 7)), p: 0.3}
			e.em.SetFailRate("", 0.2)
			for range 5 {
				for range 6 {
					m.step()
				}
				// Errors are expected here; the state must stay recoverable.
				e.syncerWith(flaky, func(c *Config) { c.MaxDelete = 1000 }).SyncOnce(t.Context())
			}
			e.em.SetFailRate("", 0)
			e.syncOnce(func(c *Config) { c.MaxDelete = 1000 })
			if diff := m.mismatch(); diff != "" {
				t.Fatal(diff)
			}
			if ins, _ := e.st.Folder("default").Intents(); len(ins) != 0 {
				t.Fatalf("intents left: %+v", ins)
			}
		})
	}
}
