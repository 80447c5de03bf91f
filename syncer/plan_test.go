package syncer

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer/preflight"
)

// Hashes for the plan tests: any lowercase hex of the right length.
var (
	sumA = strings.Repeat("a", 64)
	sumB = strings.Repeat("b", 64)
	sumC = strings.Repeat("c", 64)
)

var st1 = fileStat{Size: 10, ModTime: 1, ChangeTime: 1, Inode: 1}

func synced(p, sum string) store.Record {
	return store.Record{Path: p, ImageID: p, SHA256: sum, Size: 10, ModTime: 1, ChangeTime: 1, Inode: 1, State: store.StateSynced}
}

func read(p, sum string) localFile {
	return localFile{Rel: p, Stat: fileStat{Size: 10, ModTime: 2, ChangeTime: 2, Inode: 1}, Status: statusRead, SHA256: sum}
}

// planText renders what a plan does, one line per effect, for table comparison.
func planText(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		s := fmt.Sprintf("%s %s id=%s", op.Kind, op.Path, op.ImageID)
		if op.OldPath != "" || op.OldImageID != "" {
			s += fmt.Sprintf(" old=%s:%s", op.OldPath, op.OldImageID)
		}
		out = append(out, s)
	}
	for _, lo := range p.local {
		switch lo.kind {
		case localPut:
			r := lo.record
			out = append(out, fmt.Sprintf("put %s state=%s class=%s id=%s", lo.path, r.State, r.ErrorClass, r.ImageID))
		case localForget:
			out = append(out, "forget "+lo.path)
		}
	}
	for _, fe := range p.Failed {
		out = append(out, "failed "+fe.Path)
	}
	for _, fe := range p.Parked {
		out = append(out, "parked "+fe.Path)
	}
	for _, sk := range p.Skipped {
		out = append(out, "skipped "+sk.Path)
	}
	for _, c := range p.Changing {
		out = append(out, "changing "+c)
	}
	out = append(out, fmt.Sprintf("unchanged=%d deletes=%d", p.Unchanged, p.Deletes))
	return out
}

func TestMakePlan(t *testing.T) {
	scheme, _ := NewIDScheme("path", "")
	refusal := &preflight.Error{Reason: preflight.ReasonNotAnImage, Detail: "text"}
	failedRec := synced("bad.png", sumA)
	failedRec.State, failedRec.ErrorClass = store.StateFailed, classPreflight
	pending := synced("p.png", sumA)
	pending.State = store.StatePending
	neverUp := store.Record{Path: "n.png", State: store.StateFailed, ErrorClass: classTransient}

	tests := []struct {
		name   string
		files  []localFile
		index  []store.Record
		unseen []string
		keep   bool
		meta   bool
		static map[string]any
		want   []string
	}{
		{
			name:  "unchanged by stat",
			files: []localFile{{Rel: "a.png", Stat: st1, Status: statusUnchanged, SHA256: sumA}},
			index: []store.Record{synced("a.png", sumA)},
			want:  []string{"unchanged=1 deletes=0"},
		},
		{
			name:  "unchanged by stat, metadata changed",
			files: []localFile{{Rel: "a.png", Stat: st1, Status: statusUnchanged, SHA256: sumA}},
			index: []store.Record{synced("a.png", sumA)},
			meta:  true,
			want:  []string{"update a.png id=a.png", "unchanged=0 deletes=0"},
		},
		{
			name:   "parked, skipped, unreadable, changing",
			files:  []localFile{{Rel: "p.png", Status: statusParked, Reason: "empty"}, {Rel: "fifo", Status: statusSkipped, Reason: "named pipe"}, {Rel: "u.png", Status: statusUnreadable, Err: errors.New("permission denied")}, {Rel: "w.png", Status: statusChanging}},
			index:  []store.Record{failedRec},
			unseen: []string{"bad.png"},
			want:   []string{"failed u.png", "parked p.png", "skipped fifo", "changing w.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "seen but not regular is not deleted",
			files: []localFile{{Rel: "a.png", Status: statusSkipped, Reason: "symbolic link"}},
			index: []store.Record{synced("a.png", sumA)},
			want:  []string{"skipped a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "refused keeps the old image",
			files: []localFile{{Rel: "a.png", Stat: st1, Status: statusRefused, Class: classPreflight, Err: refusal}},
			index: []store.Record{synced("a.png", sumA)},
			want:  []string{"put a.png state=failed class=preflight id=a.png", "failed a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "new file",
			files: []localFile{read("new.png", sumA)},
			want:  []string{"upload new.png id=new.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "record without image",
			files: []localFile{read("n.png", sumA)},
			index: []store.Record{neverUp},
			want:  []string{"upload n.png id=n.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "touched: same hash, new stat",
			files: []localFile{read("a.png", sumA)},
			index: []store.Record{synced("a.png", sumA)},
			want:  []string{"put a.png state=synced class= id=a.png", "unchanged=1 deletes=0"},
		},
		{
			name:  "refused earlier, restored to the published content",
			files: []localFile{read("bad.png", sumA)},
			index: []store.Record{failedRec},
			want:  []string{"put bad.png state=synced class= id=bad.png", "unchanged=1 deletes=0"},
		},
		{
			name:  "same hash, metadata changed",
			files: []localFile{read("a.png", sumA)},
			index: []store.Record{synced("a.png", sumA)},
			meta:  true,
			want:  []string{"update a.png id=a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "content changed",
			files: []localFile{read("a.png", sumB)},
			index: []store.Record{synced("a.png", sumA)},
			want:  []string{"replace a.png id=a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "pending is replaced even with the same hash",
			files: []localFile{read("p.png", sumA)},
			index: []store.Record{pending},
			want:  []string{"replace p.png id=p.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "path cannot be an ID",
			files: []localFile{read("notes.txt", sumA)},
			want:  []string{"put notes.txt state=failed class=id id=", "failed notes.txt", "unchanged=0 deletes=0"},
		},
		{
			name:   "metadata does not fit",
			files:  []localFile{read("a.png", sumA)},
			static: map[string]any{"x": strings.Repeat("x", 1100)},
			want:   []string{"put a.png state=failed class=metadata id=", "failed a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "removed file",
			index: []store.Record{synced("gone.png", sumA)},
			want:  []string{"delete gone.png id=gone.png", "unchanged=0 deletes=1"},
		},
		{
			name:  "removed file, keep mode",
			index: []store.Record{synced("gone.png", sumA)},
			keep:  true,
			want:  []string{"forget gone.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "removed file that never had an image",
			index: []store.Record{neverUp},
			want:  []string{"forget n.png", "unchanged=0 deletes=0"},
		},
		{
			name:   "not seen: under a directory that could not be listed",
			index:  []store.Record{synced("locked/a.png", sumA), synced("lockedX.png", sumB)},
			unseen: []string{"locked"},
			want:   []string{"delete lockedX.png id=lockedX.png", "unchanged=0 deletes=1"},
		},
		{
			name:  "rename is a move",
			files: []localFile{read("new/a.png", sumA)},
			index: []store.Record{synced("old/a.png", sumA)},
			want:  []string{"move new/a.png id=new/a.png old=old/a.png:old/a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "rename in keep mode is an upload",
			files: []localFile{read("new/a.png", sumA)},
			index: []store.Record{synced("old/a.png", sumA)},
			keep:  true,
			want:  []string{"upload new/a.png id=new/a.png", "forget old/a.png", "unchanged=0 deletes=0"},
		},
		{
			name:  "two copies removed, one renamed",
			files: []localFile{read("c.png", sumA)},
			index: []store.Record{synced("a.png", sumA), synced("b.png", sumA)},
			want:  []string{"move c.png id=c.png old=a.png:a.png", "delete b.png id=b.png", "unchanged=0 deletes=1"},
		},
		{
			name:  "uploads before deletes",
			files: []localFile{read("z.png", sumC), read("b.png", sumB)},
			index: []store.Record{synced("a.png", sumA), synced("b.png", sumA)},
			want:  []string{"replace b.png id=b.png", "upload z.png id=z.png", "delete a.png id=a.png", "unchanged=0 deletes=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index := make(map[string]store.Record)
			for _, r := range tt.index {
				index[r.Path] = r
			}
			p := makePlan(planInput{scheme: scheme, files: tt.files, index: index, unseen: tt.unseen,
				keep: tt.keep, static: tt.static, metadataChanged: tt.meta})
			if got := planText(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestPlanRecordsStatOfRefusal(t *testing.T) {
	scheme, _ := NewIDScheme("path", "")
	lf := localFile{Rel: "x.png", Stat: st1, Status: statusRefused, Class: classPreflight, Err: errors.New("empty file")}
	p := makePlan(planInput{scheme: scheme, files: []localFile{lf}, index: map[string]store.Record{}})
	if len(p.local) != 1 {
		t.Fatalf("local ops = %d", len(p.local))
	}
	if r := p.local[0].record; recordStat(r) != st1 || r.LastError != "empty file" {
		t.Fatalf("parked record %+v lacks the stat or the reason", r)
	}
}

func TestDeleteLimit(t *testing.T) {
	for _, tt := range []struct{ max, indexed, want int }{
		{0, 0, minDeleteAllowance},
		{0, 4, minDeleteAllowance},
		{0, 100, 50},
		{0, 5000, 1000},
		{7, 100, 7},
	} {
		if got := deleteLimit(tt.max, tt.indexed); got != tt.want {
			t.Errorf("deleteLimit(%d, %d) = %d; want %d", tt.max, tt.indexed, got, tt.want)
		}
	}
}

func TestCheckDeleteGuard(t *testing.T) {
	for _, tt := range []struct {
		n, limit, approved int
		trip               bool
	}{
		{5, 10, 0, false},
		{10, 10, 0, false},
		{11, 10, 0, true},
		{11, 10, 10, true},
		{11, 10, 11, false},
	} {
		err := checkDeleteGuard(tt.n, tt.limit, tt.approved)
		if got := errors.Is(err, ErrDeleteGuard); got != tt.trip {
			t.Errorf("checkDeleteGuard(%d, %d, %d) = %v", tt.n, tt.limit, tt.approved, err)
		}
		if err != nil && !strings.Contains(err.Error(), "approve-deletes") {
			t.Errorf("guard error does not say how to approve: %v", err)
		}
	}
}

func TestHintScope(t *testing.T) {
	sc := hintScope([]string{"a/b", "a", "./c/d.png", "c/d.png/", "ab"})
	if want := []string{"a", "ab", "c/d.png"}; !slices.Equal(sc.paths, want) || sc.all {
		t.Fatalf("scope = %+v; want %v", sc, want)
	}
	for rel, in := range map[string]bool{"a": true, "a/x/y.png": true, "ab/z.png": true, "abc.png": false, "c/d.png": true, "c/e.png": false} {
		if sc.contains(rel) != in {
			t.Errorf("contains(%q) = %v", rel, !in)
		}
	}
	if !hintScope([]string{"x", "."}).all || !hintScope([]string{""}).all {
		t.Error("a root hint does not widen to a full scope")
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		want    string
	}{{1, "30s"}, {2, "1m0s"}, {3, "2m0s"}, {8, "1h0m0s"}, {50, "1h0m0s"}} {
		if got := retryDelay(defaultRetryBackoff, tt.attempt).String(); got != tt.want {
			t.Errorf("retryDelay(%d) = %s; want %s", tt.attempt, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	quota := &batchapi.APIError{Op: "upload", StatusCode: 403, Errors: []batchapi.ErrorDetail{{Code: 5453, Message: "limit"}}}
	refused := &batchapi.APIError{Op: "upload", StatusCode: 415, Errors: []batchapi.ErrorDetail{{Code: 5455}}}
	busy := &batchapi.APIError{Op: "upload", StatusCode: 503}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("upload: %w", quota), classTransient},
		{refused, classPermanent},
		{busy, classTransient},
	} {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %s; want %s", tt.err, got, tt.want)
		}
	}
}

// contentScheme is a scheme whose ID follows the content, like the planned "versioned":
// it exercises the planner's and executor's paths for IDs that change with the content.
type contentScheme struct{}

func (contentScheme) Name() string   { return "content" }
func (contentScheme) StableID() bool { return false }
func (contentScheme) ID(rel, sum string) (string, error) {
	ext := path.Ext(rel)
	return strings.TrimSuffix(rel, ext) + "." + sum[:8] + ext, nil
}

func TestMakePlanContentScheme(t *testing.T) {
	old := store.Record{Path: "a.png", ImageID: "a." + sumA[:8] + ".png", SHA256: sumA, State: store.StateSynced}
	p := makePlan(planInput{scheme: contentScheme{}, files: []localFile{read("a.png", sumB)},
		index: map[string]store.Record{"a.png": old}})
	want := []string{"replace a.png id=a." + sumB[:8] + ".png old=:a." + sumA[:8] + ".png", "unchanged=0 deletes=0"}
	if got := planText(p); !slices.Equal(got, want) {
		t.Fatalf("plan %q; want %q", got, want)
	}
}
