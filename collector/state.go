package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// StateVersion is the format of state files this exporter writes. Version 1 (before the retry
// watch) is read too: it has no watched runs, so retries of runs that finished before the
// upgrade are not seen, and its restored counters carry on.
const StateVersion = 2

// ErrStateIncompatible marks a state file that is not corrupt but cannot be continued from: another
// format version, another API, other histogram buckets. Start fresh with --state.reset.
var ErrStateIncompatible = errors.New("state file cannot be continued from")

// The state file: each project's poll position, ledger and counters, written before every render
// that shows a changed count (saveAndRender), so a restart continues the counters and counts runs that finished meanwhile exactly once.
type stateFile struct {
	Version  int                      `json:"version"`
	Source   string                   `json:"source"` // the API it was read from
	SavedAt  time.Time                `json:"savedAt"`
	Buckets  []float64                `json:"durationBuckets"`
	Dropped  float64                  `json:"trackedRunsDropped"`
	Projects map[string]*projectSaved `json:"projects"`
}

type projectSaved struct {
	Name        string         `json:"name"`
	Head        time.Time      `json:"head"`
	Gaps        [][2]time.Time `json:"gaps,omitempty"`
	History     *historyRange  `json:"history,omitempty"`
	LastOverlap time.Time      `json:"lastOverlap"`
	OverlapHead time.Time      `json:"overlapHead,omitempty"`
	// SeenIDs is the ledger of finished runs: [FNV-1a-64 of the id (as int64), created unix ms].
	SeenIDs [][2]int64 `json:"seenIds"`
	// LedgerFrom is the creation time from which SeenIDs holds every run read.
	LedgerFrom time.Time `json:"ledgerFrom"`
	// Seen is the ledger of format version 1 (ids and created times), read only.
	Seen        map[string]time.Time   `json:"seen,omitempty"`
	Untracked   map[string]time.Time   `json:"untracked,omitempty"`
	Server      serverTraits           `json:"server"`
	Tracked     map[string]*trackedRun `json:"tracked"`
	Watched     map[string]watchedRun  `json:"watched,omitempty"`
	Deferred    []pendingRun           `json:"deferred,omitempty"`
	Flows       map[string]*flowCounts `json:"flows"`
	Folders     map[string]string      `json:"folders"`
	Failures    float64                `json:"pollFailures"`
	CapHits     float64                `json:"pageCapHits"`
	CutShort    float64                `json:"pollsCutShort,omitempty"`
	QueueWait   *queueWait             `json:"queueWait,omitempty"`
	InvalidRuns float64                `json:"invalidRuns"`
}

// lastSaved is how a lastRun is saved (its JSON).
type lastSaved struct {
	Status   apiclient.RunStatus `json:"status"`
	Finish   time.Time           `json:"finish"`
	Order    time.Time           `json:"order"`
	Duration *float64            `json:"duration,omitempty"`
	Tasks    *float64            `json:"tasks,omitempty"`
}

// snapshotLocked captures the state to save. Called with e.mu held (read is enough).
func (e *model) snapshotLocked() *stateFile {
	sf := &stateFile{Version: StateVersion, Source: e.cfg.ServerURL, SavedAt: e.now(), Buckets: e.cfg.DurationBuckets,
		Dropped: e.trackedDropped, Projects: map[string]*projectSaved{}}
	for id, p := range e.projects {
		if !p.started {
			continue // nothing learned yet: a restart starts it afresh
		}
		ps := &projectSaved{Name: p.name, Head: p.head, LastOverlap: p.lastOverlap, OverlapHead: p.overlapHead,
			Server: p.server, Flows: map[string]*flowCounts{}, Folders: p.folders,
			Failures: p.failures, CapHits: p.capHits, CutShort: p.cutShort, InvalidRuns: p.invalidRuns}
		for _, g := range p.gaps {
			ps.Gaps = append(ps.Gaps, [2]time.Time{g.from, g.to})
		}
		if h := p.history; h != nil {
			ps.History = h
		}
		ps.LedgerFrom = p.ledgerHorizon(e.ledgerWindow())
		if p.ledgerFrom.After(ps.LedgerFrom) {
			ps.LedgerFrom = p.ledgerFrom
		}
		p.runLedger.saveTo(ps)
		ps.Deferred = p.deferred
		for fid, f := range p.flows {
			ps.Flows[fid] = &f.flowCounts
		}
		if q := p.queueWait; q.Count > 0 {
			ps.QueueWait = &q
		}
		sf.Projects[id] = ps
	}
	return sf
}

// saveState writes the state file atomically: a temporary file in the same directory, fsync,
// rename over the old one, fsync of the directory.
func (e *model) saveState() error {
	path := e.cfg.StateFile
	b, err := json.Marshal(e.snapshotLocked())
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	dir := filepath.Dir(path)
	// Errors name the state file, not the temporary one: its name has a random part, and the
	// message must stay the same for the same failure (it is logged when it changes).
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing state in %s: %w", dir, withoutPath(err))
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state %s: %w", path, withoutPath(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing state %s: %w", path, withoutPath(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing state %s: %w", path, withoutPath(err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing state %s: %w", path, withoutPath(err))
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// withoutPath is the error under a path or link error (which names the temporary file).
func withoutPath(err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}

// loadState restores a state file written by saveState. A missing file is a fresh start; a
// corrupt or incompatible one is an error that names the way out.
func (e *model) loadState() error {
	path := e.cfg.StateFile
	b, err := readStateFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading state file: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return fmt.Errorf("state file %s is corrupt (%w); move it away, or start fresh with --state.reset", path, err)
	}
	switch {
	case sf.Version != StateVersion && sf.Version != 1:
		return fmt.Errorf("%w: %s has format version %d, this exporter reads 1 to %d; start fresh with --state.reset",
			ErrStateIncompatible, path, sf.Version, StateVersion)
	case sf.Source != e.cfg.ServerURL:
		return fmt.Errorf("%w: %s was written for %q, not %q; start fresh with --state.reset",
			ErrStateIncompatible, path, sf.Source, e.cfg.ServerURL)
	case !slices.Equal(sf.Buckets, e.cfg.DurationBuckets):
		return fmt.Errorf("%w: %s has duration buckets %v, the exporter is configured with %v; start fresh with --state.reset",
			ErrStateIncompatible, path, sf.Buckets, e.cfg.DurationBuckets)
	}
	if !plausibleCount(sf.Dropped) {
		return fmt.Errorf("state file %s is corrupt (%w: tracked runs dropped = %v); move it away, or start fresh with --state.reset", path, errImplausible, sf.Dropped)
	}
	e.trackedDropped = sf.Dropped
	for id, ps := range sf.Projects {
		if len(e.cfg.Projects) > 0 && !slices.Contains(e.cfg.Projects, id) || !e.cfg.ownsProject(id) {
			continue // no longer configured, or another shard's since a change of --shard.count
		}
		if ps == nil {
			return fmt.Errorf("state file %s is corrupt (project %s is null); move it away, or start fresh with --state.reset", path, id)
		}
		err := e.checkProject(ps)
		var p *projectState
		if err == nil {
			p, err = e.restoreProject(id, ps)
		}
		if err != nil {
			return fmt.Errorf("state file %s is corrupt (%w); move it away, or start fresh with --state.reset", path, err)
		}
		// Flows are listed again on the first poll; until then the saved ones are served.
		e.projects[id] = p
	}
	e.log.Info("state restored", "file", path, "saved_at", sf.SavedAt, "projects", len(e.projects))
	return nil
}

// saveTo writes the ledger into a project's saved form.
func (l *runLedger) saveTo(ps *projectSaved) {
	ps.SeenIDs = make([][2]int64, 0, len(l.seen))
	for k, c := range l.seen {
		ps.SeenIDs = append(ps.SeenIDs, [2]int64{int64(k), c})
	}
	ps.Untracked = l.untracked
	ps.Tracked = l.tracked
	if len(l.watched) > 0 {
		ps.Watched = l.watched
	}
}

// restoreFrom adds what a project's saved form holds of the ledger (format 2 on).
func (l *runLedger) restoreFrom(ps *projectSaved) {
	for _, kc := range ps.SeenIDs {
		l.seen[uint64(kc[0])] = kc[1]
	}
	for rid, c := range ps.Untracked {
		l.untracked[rid] = c
	}
	for rid, t := range ps.Tracked {
		if t != nil {
			l.tracked[rid] = t
		}
	}
	for rid, w := range ps.Watched {
		l.watched[rid] = w
	}
}

// restoreProject rebuilds a project's state from its saved form.
func (e *model) restoreProject(id string, ps *projectSaved) (*projectState, error) {
	p := newProjectState(id, ps.Name, time.Time{})
	p.head, p.started, p.lastOverlap, p.overlapHead = ps.Head, true, ps.LastOverlap, ps.OverlapHead
	p.failures, p.capHits, p.cutShort, p.invalidRuns = ps.Failures, ps.CapHits, ps.CutShort, ps.InvalidRuns
	for _, g := range ps.Gaps {
		p.gaps = append(p.gaps, gap{from: g[0], to: g[1]})
	}
	if q := ps.QueueWait; q != nil && len(q.Buckets) == len(DefaultQueueWaitBuckets)+1 {
		p.queueWait = *q
	}
	p.history = ps.History
	p.ledgerFrom = ps.LedgerFrom
	for rid, c := range ps.Seen { // format version 1: the ledger covered the overlap window
		p.seen.add(rid, c)
	}
	if len(ps.Seen) > 0 || ps.LedgerFrom.IsZero() {
		p.ledgerFrom = ps.Head.Add(-e.cfg.Overlap - time.Second)
	}
	p.runLedger.restoreFrom(ps)
	p.server = ps.Server
	p.server.WatchLevel = min(max(p.server.WatchLevel, 0), len(watchStatuses)-1)
	p.deferred = ps.Deferred
	if ps.Folders != nil {
		p.folders = ps.Folders
	}
	for fid, fs := range ps.Flows {
		if fs == nil {
			return nil, fmt.Errorf("flow %s is null", fid)
		}
		if err := checkFlow(fs, len(e.cfg.DurationBuckets)+1, e.now().Add(maxClockOffset+maxClockSkew)); err != nil {
			return nil, fmt.Errorf("flow %s: %w", fid, err)
		}
		f := restoreFlow(id, fid, fs)
		if e.exportedFlows < e.cfg.MaxFlows {
			f.exported = true
			e.exportedFlows++
		} else {
			e.droppedFlows++
		}
		p.flows[fid] = f
	}
	return p, nil
}

func restoreFlow(projectID, id string, fc *flowCounts) *flowState {
	f := &flowState{id: id, flowCounts: *fc, labels: []string{capLabel(projectID), capLabel(id), capLabel(fc.Name)}}
	runs := f.Runs
	f.Runs = make(map[apiclient.RunStatus]float64, len(runs))
	// A state file is input: unknown statuses are bounded here too (in a fixed order).
	for _, st := range slices.Sorted(maps.Keys(runs)) {
		f.Runs[f.countedStatus(statusLabel(st))] += runs[st]
	}
	return f
}

// MarshalJSON implements json.Marshaler: a lastRun is saved as a lastSaved.
func (l lastRun) MarshalJSON() ([]byte, error) {
	s := lastSaved{Status: l.status, Finish: l.finish, Order: l.order}
	if l.durationK {
		s.Duration = &l.duration
	}
	if l.tasksK {
		s.Tasks = &l.tasks
	}
	return json.Marshal(s)
}

// UnmarshalJSON implements json.Unmarshaler.
func (l *lastRun) UnmarshalJSON(b []byte) error {
	var s lastSaved
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*l = lastRun{set: true, status: s.Status, finish: s.Finish, order: s.Order}
	if s.Duration != nil {
		l.duration, l.durationK = *s.Duration, true
	}
	if s.Tasks != nil {
		l.tasks, l.tasksK = *s.Tasks, true
	}
	return nil
}
