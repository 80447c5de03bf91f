package main

// progress.go: what `sync --once` shows while it works: a one-line bar redrawn in place on
// a terminal (files and bytes, rate, ETA), one line per operation otherwise.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cfimgsync/cfimgsync/syncer"
)

// isTerminal reports whether w is a character device: a person is watching, so a bar
// redrawn with \r helps; in a log file or a pipe it would be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws the terminal bar. Events come from the syncer's workers, concurrently.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	every time.Duration // least time between redraws

	first                time.Time // first finished upload: the rate counts from there
	readFiles, readBytes int64     // files read (hashed): the work known so far
	doneFiles, doneBytes int64
	drawn                time.Time
	width                int // length of the line on screen, to blank it
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, now: time.Now, every: 100 * time.Millisecond}
}

// event is the syncer's Progress hook.
func (p *progressBar) event(ev syncer.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	switch ev.Kind {
	case syncer.EventScan:
		p.readFiles++
		p.readBytes += ev.Bytes
	case syncer.EventUpload, syncer.EventReplace:
		if p.first.IsZero() {
			p.first = now
		}
		p.doneFiles++
		p.doneBytes += ev.Bytes
	case syncer.EventUpdate, syncer.EventDelete, syncer.EventSkip:
		p.doneFiles++
	case syncer.EventFail:
		p.doneFiles++
		// A failure is worth a line of its own that stays on screen.
		p.clearLocked()
		fmt.Fprintf(p.w, "%-8s %s: %s\n", ev.Kind, shown(ev.Path), shownErr(ev.Err))
		p.drawn = time.Time{}
	case syncer.EventDone:
		p.clearLocked()
		return
	}
	if now.Sub(p.drawn) < p.every {
		return
	}
	p.drawn = now
	line := p.lineLocked(now)
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(p.w, "\r"+line+pad)
	p.width = len(line)
}

// clearLocked blanks the bar so the next output starts on a clean line.
func (p *progressBar) clearLocked() {
	if p.width > 0 {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.width)+"\r")
		p.width = 0
	}
}

// lineLocked renders the bar: "[=====>    ]  12/40 files  3.1 MiB/9.8 MiB  1.2 MiB/s  ETA 6s".
func (p *progressBar) lineLocked(now time.Time) string {
	if p.doneFiles == 0 {
		// The scan comes first; until an operation ends, the total is still growing.
		return fmt.Sprintf("reading: %d changed files, %s", p.readFiles, humanBytes(p.readBytes))
	}
	total := max(p.readFiles, p.doneFiles)
	totalBytes := max(p.readBytes, p.doneBytes)
	frac := 0.0
	switch {
	case totalBytes > 0:
		frac = float64(p.doneBytes) / float64(totalBytes)
	case total > 0:
		frac = float64(p.doneFiles) / float64(total)
	}
	const cells = 20
	n := int(frac * cells)
	bar := strings.Repeat("=", n)
	if n < cells {
		bar += ">" + strings.Repeat(" ", cells-n-1)
	}
	s := fmt.Sprintf("[%s] %d/%d files  %s/%s", bar, p.doneFiles, total, humanBytes(p.doneBytes), humanBytes(totalBytes))
	if !p.first.IsZero() {
		if el := now.Sub(p.first).Seconds(); el > 0.5 {
			rate := float64(p.doneBytes) / el
			s += fmt.Sprintf("  %s/s", humanBytes(int64(rate)))
			if rate > 0 && totalBytes > p.doneBytes {
				eta := time.Duration(float64(totalBytes-p.doneBytes) / rate * float64(time.Second))
				s += "  ETA " + eta.Round(time.Second).String()
			}
		}
	}
	return s
}

// humanBytes formats a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
