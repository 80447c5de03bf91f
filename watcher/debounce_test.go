package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The timing rules run in a synctest bubble: advance (a sleep there) moves a fake clock once every
// goroutine is blocked, so the tests are exact and take no real time.

const (
	testSettle  = 2 * time.Second
	testMaxWait = 10 * time.Second
)

// loop is one debouncer under test.
type loop struct {
	t   *testing.T
	in  chan change
	out chan Batch
}

func startLoop(t *testing.T, maxPending int) *loop {
	t.Helper()
	l := &loop{t: t, in: make(chan change), out: make(chan Batch)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	a := newAggregator(testSettle, testMaxWait, maxPending)
	go func() {
		defer close(done)
		a.run(ctx, l.in, l.out, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *loop) touch(rels ...string) {
	for _, r := range rels {
		l.in <- change{rel: r}
	}
}

// batch returns the batch the loop is offering right now, if any.
func (l *loop) batch() (Batch, bool) {
	synctest.Wait()
	select {
	case b := <-l.out:
		return b, true
	default:
		return Batch{}, false
	}
}

func (l *loop) wantNothing(when string) {
	l.t.Helper()
	if b, ok := l.batch(); ok {
		l.t.Fatalf("%s: unexpected batch %+v", when, b)
	}
}

func (l *loop) want(when string, want Batch) {
	l.t.Helper()
	b, ok := l.batch()
	if !ok {
		l.t.Fatalf("%s: no batch, want %+v", when, want)
	}
	if b.Rescan != want.Rescan || !slices.Equal(b.Paths, want.Paths) {
		l.t.Fatalf("%s: got %+v, want %+v", when, b, want)
	}
}

func TestDebounceSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		l.touch("a.jpg")
		advance(testSettle - time.Millisecond)
		l.wantNothing("before settle")
		advance(time.Millisecond)
		l.want("at settle", Batch{Paths: []string{"a.jpg"}})
		advance(time.Minute)
		l.wantNothing("after hand-on")
	})
}

func TestDebounceCoalescesWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		start := time.Now()
		// A file written slowly in chunks: each write pushes its due time.
		for range 10 {
			l.touch("big.jpg")
			advance(testSettle / 4)
		}
		l.touch("big.jpg") // last chunk
		lastWrite := time.Now()
		advance(testSettle - time.Millisecond)
		l.wantNothing("before the last write settled")
		advance(time.Millisecond)
		l.want("once settled", Batch{Paths: []string{"big.jpg"}})
		if got := lastWrite.Sub(start) + testSettle; got >= testMaxWait {
			t.Fatalf("test is wrong: writes span %v, reaching MaxWait", got)
		}
		l.wantNothing("afterwards")
	})
}

func TestDebounceMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		start := time.Now()
		var got []time.Duration
		// A file that never settles is handed on every MaxWait.
		for time.Since(start) < 3*testMaxWait {
			l.touch("log.jpg")
			advance(testSettle / 2)
			if b, ok := l.batch(); ok {
				if !slices.Equal(b.Paths, []string{"log.jpg"}) || b.Rescan {
					t.Fatalf("batch %+v", b)
				}
				got = append(got, time.Since(start))
			}
		}
		if len(got) < 2 {
			t.Fatalf("handed on %d times in %v, want at least 2", len(got), 3*testMaxWait)
		}
		if got[0] != testMaxWait {
			t.Errorf("first hand-on after %v, want MaxWait %v", got[0], testMaxWait)
		}
		for i := 1; i < len(got); i++ {
			if d := got[i] - got[i-1]; d > testMaxWait+testSettle {
				t.Errorf("hand-on %d came %v after the previous one, want at most %v", i, d, testMaxWait+testSettle)
			}
		}
	})
}

func TestDebounceSeparateDueTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		l.touch("a.jpg")
		advance(testSettle / 2)
		l.touch("b.jpg", "c.jpg", "b.jpg")
		advance(testSettle / 2)
		l.want("a due", Batch{Paths: []string{"a.jpg"}})
		advance(testSettle/2 - time.Millisecond)
		l.wantNothing("b and c not yet due")
		advance(time.Millisecond)
		l.want("b and c due", Batch{Paths: []string{"b.jpg", "c.jpg"}})
	})
}

func TestDebounceDirectoryCollapse(t *testing.T) {
	tests := []struct {
		name  string
		steps []string // paths touched, one per tick of testSettle/4
		want  []string
	}{
		{"children then parent", []string{"a/x.jpg", "a/b/y.jpg", "a"}, []string{"a"}},
		{"parent then children", []string{"a", "a/x.jpg", "a/b/y.jpg"}, []string{"a"}},
		{"sibling names are not children", []string{"a", "a-b.jpg", "ab/x.jpg", "a/x.jpg"}, []string{"a", "a-b.jpg", "ab/x.jpg"}},
		{"deep parent", []string{"a/b/c/d.jpg", "a/b", "a/e.jpg"}, []string{"a/b", "a/e.jpg"}},
		{"grandparent swallows parent", []string{"a/b", "a/b/c.jpg", "a"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := startLoop(t, 100)
				for _, p := range tt.steps {
					l.touch(p)
					advance(testSettle / 4)
				}
				advance(testSettle)
				l.want("settled", Batch{Paths: tt.want})
			})
		})
	}
}

func TestDebounceChildEventsKeepParentPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		l.touch("new")
		for range 5 { // cp -r filling the new directory
			advance(testSettle / 2)
			l.touch("new/f.jpg")
		}
		advance(testSettle - time.Millisecond)
		l.wantNothing("subtree not quiet yet")
		advance(time.Millisecond)
		l.want("subtree quiet", Batch{Paths: []string{"new"}})
	})
}

func TestDebounceParentInheritsChildMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		start := time.Now()
		for time.Since(start) < testMaxWait-testSettle/2 {
			l.touch("a/x.jpg") // never settles
			advance(testSettle / 2)
		}
		l.wantNothing("child not settled")
		l.touch("a") // would be due at start+MaxWait+Settle/2 by its own clock
		advance(start.Add(testMaxWait).Sub(time.Now()) - time.Millisecond)
		l.wantNothing("before MaxWait")
		advance(time.Millisecond)
		l.want("MaxWait of the child", Batch{Paths: []string{"a"}})
	})
}

func TestDebounceSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		l.touch("a.jpg")
		advance(testSettle)
		// Nobody reads: the loop must keep taking events while it holds a due batch.
		l.touch("b.jpg", "a.jpg", "c/d.jpg")
		advance(time.Minute)
		l.touch("c") // covers c/d.jpg, which is already due
		advance(testSettle)
		l.want("late reader", Batch{Paths: []string{"a.jpg", "b.jpg", "c"}})
		l.wantNothing("everything handed on")
	})
}

func TestDebounceMaxPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxPending = 50
		l := startLoop(t, maxPending)
		for i := range maxPending {
			l.touch(fmt.Sprintf("f%03d.jpg", i))
		}
		advance(testSettle)
		// maxPending paths are fine; the consumer is not reading, so more accumulate.
		for i := range maxPending {
			l.touch(fmt.Sprintf("g%03d.jpg", i))
		}
		l.touch("f000.jpg") // already due; does not count twice
		l.touch("one-too-many.jpg")
		l.want("overflow", Batch{Rescan: true})
		l.touch("after.jpg")
		advance(testSettle)
		l.want("back to normal", Batch{Paths: []string{"after.jpg"}})
	})
}

func TestDebounceMaxPendingBeforeDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 10)
		for i := range 11 {
			l.touch(fmt.Sprintf("d/f%d.jpg", i))
		}
		l.want("overflow is handed on at once", Batch{Rescan: true})
		advance(time.Minute)
		l.wantNothing("nothing else pending")
	})
}

func TestDebounceRescan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, 100)
		l.touch("a.jpg")
		l.in <- change{rescan: true}
		l.touch("b.jpg") // covered by the rescan that is not yet taken
		l.want("rescan at once", Batch{Rescan: true})
		advance(time.Minute)
		l.wantNothing("the rescan covered a and b")
		l.in <- change{rescan: true}
		l.in <- change{rescan: true}
		l.want("rescans coalesce", Batch{Rescan: true})
		l.wantNothing("only one")
	})
}

func TestAggregatorHeapStaysSmall(t *testing.T) {
	a := newAggregator(testSettle, testMaxWait, 1_000_000)
	now := time.Unix(0, 0)
	// Build deep chains where each directory folds the paths below it: the folded entries
	// leave stale heap items, which must not pile up.
	for i := range 2_000 {
		dir := fmt.Sprintf("d%d", i)
		a.add(dir+"/x/y/z.jpg", now)
		a.add(dir+"/x/y", now)
		a.add(dir+"/x", now)
		a.add(dir, now)
	}
	if len(a.pending) != 2_000 {
		t.Fatalf("pending = %d, want 2000", len(a.pending))
	}
	if len(a.due) > 4*len(a.pending)+64 {
		t.Fatalf("heap holds %d items for %d pending paths", len(a.due), len(a.pending))
	}
	a.advance(now.Add(testSettle))
	b, ok := a.outgoing()
	if !ok || len(b.Paths) != 2_000 || len(a.below) != 0 {
		t.Fatalf("after settle: %d paths, ok=%v, below=%d", len(b.Paths), ok, len(a.below))
	}
}

func BenchmarkAggregatorAdd(b *testing.B) {
	a := newAggregator(testSettle, testMaxWait, 1<<30)
	paths := make([]string, 10_000)
	for i := range paths {
		paths[i] = fmt.Sprintf("shop/dir%d/file%d.jpg", i%100, i)
	}
	now := time.Unix(0, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		a.add(paths[i%len(paths)], now)
		if i%len(paths) == len(paths)-1 {
			a.advance(now.Add(testMaxWait))
			a.outgoing()
			a.sent()
		}
	}
}

// advance moves the synctest bubble's fake clock by d: inside a bubble a sleep returns once
// every goroutine is blocked and the clock has jumped, so it orders nothing by chance.
func advance(d time.Duration) { time.Sleep(d) }
