package collector

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A state file is input like any other: it is bounded in size, and what it holds must be
// plausible before the exporter serves it (a negative counter would carry on, a bucket of 2^64
// wraps, a finish in the year 9999 freezes a flow, 200,000 tracked runs keep it unready).

// maxStateBytes bounds the state file read at start (10,000 flows with 10,000 runs in flight
// make about 8 MiB; a million recent run ids about 40 MiB).
const maxStateBytes = 256 << 20

// maxCount bounds a restored count: beyond 2^53 a float64 no longer counts by one.
const maxCount = 1 << 53

// errImplausible marks a state file whose content cannot be true.
var errImplausible = errors.New("implausible content")

// readStateFile reads path, refusing a file larger than maxStateBytes.
func readStateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxStateBytes {
		return nil, fmt.Errorf("state file %s is %d MiB, more than a state file can plausibly be (%d MiB); move it away, or start fresh with --state.reset",
			path, st.Size()>>20, maxStateBytes>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("state file %s grew beyond %d MiB while read; move it away, or start fresh with --state.reset", path, maxStateBytes>>20)
	}
	return b, nil
}

// plausibleCount reports whether a restored counter can be true: finite, not negative, below
// maxCount.
func plausibleCount(v float64) bool { return !math.IsNaN(v) && v >= 0 && v <= maxCount }

// checkFlow checks what a state file holds of a flow; horizon bounds its times.
func checkFlow(fc *flowCounts, nBuckets int, horizon time.Time) error {
	for st, n := range fc.Runs {
		if !plausibleCount(n) {
			return fmt.Errorf("%w: runs %s = %v", errImplausible, st, n)
		}
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"tasks", fc.Tasks}, {"retries", fc.Retries}, {"duration sum", fc.DurSum}} {
		if !plausibleCount(c.v) {
			return fmt.Errorf("%w: %s = %v", errImplausible, c.name, c.v)
		}
	}
	if len(fc.DurBuckets) != nBuckets {
		return fmt.Errorf("%d duration buckets, want %d", len(fc.DurBuckets), nBuckets)
	}
	var sum uint64
	for _, b := range fc.DurBuckets {
		if b > maxCount {
			return fmt.Errorf("%w: a duration bucket of %d", errImplausible, b)
		}
		sum += b
	}
	if sum != fc.DurCount {
		return fmt.Errorf("%w: duration buckets sum to %d, the count is %d", errImplausible, sum, fc.DurCount)
	}
	if fc.ConsecFails < 0 {
		return fmt.Errorf("%w: consecutive failures %d", errImplausible, fc.ConsecFails)
	}
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"last run", fc.Last.order}, {"last finish", fc.Last.finish}, {"last success", fc.LastSuccess}, {"last failure", fc.LastFail.At}} {
		if t.at.After(horizon) {
			return fmt.Errorf("%w: %s at %s, in the future", errImplausible, t.name, t.at.Format(time.RFC3339))
		}
	}
	return nil
}

// checkProject checks a project's saved counters and the size of its ledger.
func (e *model) checkProject(ps *projectSaved) error {
	for _, c := range []struct {
		name string
		v    float64
	}{{"poll failures", ps.Failures}, {"page cap hits", ps.CapHits}, {"polls cut short", ps.CutShort}, {"invalid runs", ps.InvalidRuns}} {
		if !plausibleCount(c.v) {
			return fmt.Errorf("%w: %s = %v", errImplausible, c.name, c.v)
		}
	}
	if n := len(ps.Tracked); n > e.cfg.MaxTrackedRuns {
		return fmt.Errorf("%w: %d runs in flight, more than --poll.max-tracked-runs (%d)", errImplausible, n, e.cfg.MaxTrackedRuns)
	}
	if n := len(ps.Watched); n > e.cfg.MaxTrackedRuns {
		return fmt.Errorf("%w: %d runs watched for retries, more than --poll.max-tracked-runs (%d)", errImplausible, n, e.cfg.MaxTrackedRuns)
	}
	if q := ps.QueueWait; q != nil && !plausibleCount(q.Sum) {
		return fmt.Errorf("%w: queue wait sum %v", errImplausible, q.Sum)
	}
	return nil
}

// removeStaleTemps removes temporary files a save killed mid-way left beside path (the lock is
// held: no save of ours is under way), and returns how many.
func removeStaleTemps(path string) int {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+escapeGlob(filepath.Base(path))+".tmp-*"))
	n := 0
	for _, m := range matches {
		if st, err := os.Lstat(m); err == nil && st.Mode().IsRegular() && os.Remove(m) == nil {
			n++
		}
	}
	return n
}

// escapeGlob quotes the glob metacharacters of a file name.
func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// lockPath is the file whose lock guards the state file: beside the file it resolves to, so that
// two paths to one file (a symlink) take the same lock.
func lockPath(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r + ".lock"
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		return filepath.Join(d, filepath.Base(path)) + ".lock"
	}
	return path + ".lock"
}
