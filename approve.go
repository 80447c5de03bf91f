package main

// approve.go: `cfimgsync approve-deletes`, which lets the deletes a delete guard held back
// happen once. It asks the running daemon over its socket (the daemon holds the index and
// starts a full pass at once), or writes the approval into the index when no daemon runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cfimgsync/cfimgsync/store"
	"github.com/cfimgsync/cfimgsync/syncer"
)

// approval is one folder's approval, as the socket answers it.
type approval struct {
	Folder string `json:"folder"`
	// Deletes is how many deletes were approved.
	Deletes int `json:"deletes"`
}

func (c cli) approveDeletes(ctx context.Context, args []string) error {
	fs := newFlagSet("approve-deletes", c.stderr)
	configPath := fs.String("config", "", "config file (its state setting names the index)")
	state := fs.String("state", "", "index file (default: as for status)")
	folder := fs.String("folder", "", "only this folder (default: every folder with deletes held back)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := statePathFor(*configPath, *state)
	if err != nil {
		return err
	}
	got, askErr := approveViaDaemon(ctx, socketPath(path), *folder)
	var refused *daemonAnswerError
	switch {
	case askErr == nil:
	case errors.As(askErr, &refused):
		return askErr
	default:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no index at %s: nothing has been synced with this state file (and no daemon answered on %s)", path, socketPath(path))
		}
		st, err := store.Open(path, store.Options{Timeout: 200 * time.Millisecond})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("a daemon holds the index %s but its socket %s did not answer (%v); is it stuck? see its log",
				path, socketPath(path), askErr)
		}
		if err != nil {
			return fmt.Errorf("open index: %w", err)
		}
		defer st.Close()
		if got, err = approveInIndex(st, *folder); err != nil {
			return err
		}
	}
	if len(got) == 0 {
		fmt.Fprintln(c.stdout, "no deletes are waiting for approval")
		return nil
	}
	for _, a := range got {
		fmt.Fprintf(c.stdout, "folder %s: %d deletes approved; the next pass makes them", a.Folder, a.Deletes)
		if askErr == nil {
			fmt.Fprint(c.stdout, " (the daemon starts one now)")
		}
		fmt.Fprintln(c.stdout)
	}
	return nil
}

// approveInIndex approves the held-back deletes of folder, or of every folder that has
// some when folder is "".
func approveInIndex(st *store.Store, folder string) ([]approval, error) {
	names, err := st.Folders()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if folder != "" {
		found := false
		for _, n := range names {
			found = found || n == folder
		}
		if !found {
			return nil, usageError{fmt.Sprintf("approve-deletes: no folder %q in the index (folders: %s)", folder, strings.Join(names, ", "))}
		}
		names = []string{folder}
	}
	var out []approval
	for _, n := range names {
		k, err := syncer.ApproveDeletes(st.Folder(n))
		if errors.Is(err, syncer.ErrNothingToApprove) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, approval{Folder: n, Deletes: k})
	}
	return out, nil
}

// approveViaDaemon asks the daemon on socket to approve.
func approveViaDaemon(ctx context.Context, socket, folder string) ([]approval, error) {
	var out []approval
	err := postDaemon(ctx, socket, "/approve-deletes?folder="+url.QueryEscape(folder), 5*time.Second, &out)
	return out, err
}

// handleApprove serves POST /approve-deletes on the status socket: the approval goes into
// the index the daemon holds, and each approved folder starts a full pass at once.
func handleApprove(b *board, st *store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, err := approveInIndex(st, r.URL.Query().Get("folder"))
		var ue usageError
		switch {
		case errors.As(err, &ue):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, a := range got {
			if fb := b.folder(a.Folder); fb != nil {
				fb.rescan()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if got == nil {
			got = []approval{}
		}
		_ = json.NewEncoder(w).Encode(got)
	}
}
