package watcher

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScenarios runs the scripts in testdata/scenarios against a real Watcher on a real
// temporary directory. Each line is one command; "#" starts a comment.
//
//	ignore PATTERN...     user ignore patterns (before start)
//	start                 start the watcher and wait until its root watch works
//	write REL [TEXT]      create or overwrite a file, making parent directories
//	mkdir REL             mkdir -p
//	rm REL                remove a file or an empty directory
//	rmall REL             rm -rf
//	mv FROM TO            rename inside the root
//	outside-write REL     write a file in a second directory, outside the root
//	mv-in OUTSIDE REL     move from outside into the root
//	mv-out REL OUTSIDE    move from the root to outside
//	cp-in OUTSIDE REL     copy a tree in the way cp -r does: each directory, then its files
//	expect REL...         wait until each path was reported exactly
//	covered REL...        wait until each path, or a directory above it, was reported
//	never REL...          after a barrier, no path at or below these was reported
//	rescan                wait until a Rescan was reported
//	norescan              no Rescan was reported
//	clear                 forget what was reported so far
//
// Paths are relative and slash-separated; OUTSIDE paths are relative to the second directory.
func TestScenarios(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) == 0 {
		t.Fatal("no scenarios in testdata/scenarios")
	}
	for _, script := range scripts {
		t.Run(strings.TrimSuffix(filepath.Base(script), ".txt"), func(t *testing.T) {
			t.Parallel()
			runScenario(t, script)
		})
	}
}

func runScenario(t *testing.T, script string) {
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	root, outside := t.TempDir(), t.TempDir()
	in := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	out := func(rel string) string { return filepath.Join(outside, filepath.FromSlash(rel)) }
	opts := fastOptions()
	var h *harness

	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		cmd, args := fields[0], fields[1:]
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("%s:%d: %s: "+format, append([]any{script, lineNo, line}, a...)...)
		}
		need := func(n int) {
			t.Helper()
			if len(args) < n {
				fail("want at least %d arguments", n)
			}
		}
		watching := func() {
			t.Helper()
			if h == nil {
				fail("the watcher is not started")
			}
		}
		check := func(err error) {
			t.Helper()
			if err != nil {
				fail("%v", err)
			}
		}

		switch cmd {
		case "ignore":
			need(1)
			if h != nil {
				fail("ignore after start")
			}
			m, err := NewMatcher(args)
			check(err)
			opts.Ignore = m
		case "start":
			h = startWatcher(t, root, opts, nil)
		case "write", "outside-write":
			need(1)
			text := strings.Join(args[1:], " ")
			if cmd == "write" {
				writeFile(t, in(args[0]), text)
			} else {
				writeFile(t, out(args[0]), text)
			}
		case "mkdir":
			need(1)
			check(os.MkdirAll(in(args[0]), 0o755))
		case "rm":
			need(1)
			check(os.Remove(in(args[0])))
		case "rmall":
			need(1)
			check(os.RemoveAll(in(args[0])))
		case "mv":
			need(2)
			check(os.Rename(in(args[0]), in(args[1])))
		case "mv-in":
			need(2)
			check(os.Rename(out(args[0]), in(args[1])))
		case "mv-out":
			need(2)
			check(os.Rename(in(args[0]), out(args[1])))
		case "cp-in":
			need(2)
			copyTree(t, out(args[0]), in(args[1]))
		case "expect":
			need(1)
			watching()
			h.waitFor(line, func() bool {
				for _, r := range args {
					if h.seen[r] == 0 {
						return false
					}
				}
				return true
			})
		case "covered":
			need(1)
			watching()
			h.waitCovered(args...)
		case "never":
			need(1)
			watching()
			h.neverSeen(args...)
		case "rescan":
			watching()
			h.waitFor(line, func() bool { return h.rescans > 0 })
		case "norescan":
			watching()
			if h.rescans != 0 {
				fail("%d rescans", h.rescans)
			}
		case "clear":
			watching()
			h.clear()
		default:
			fail("unknown command %q", cmd)
		}
	}
	check := sc.Err()
	if check != nil {
		t.Fatal(check)
	}
	if h == nil {
		t.Fatalf("%s never starts the watcher", script)
	}
}
