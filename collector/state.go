package collector

import (
	"encoding/json"
	"errors"
	"fmt"
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

// The state file: each project's poll position, ledger and counters, written after every poll so
// a restart continues the counters and counts runs that finished meanwhile exactly once.
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
	History     *historySaved  `json:"history,omitempty"`
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
	Tracked     map[string]trackedSave `json:"tracked"`
	Watched     map[string]watchSave   `json:"watched,omitempty"`
	Deferred    []pendingSave          `json:"deferred,omitempty"`
	Flows       map[string]*flowSaved  `json:"flows"`
	Folders     map[string]string      `json:"folders"`
	Failures    float64                `json:"pollFailures"`
	CapHits     float64                `json:"pageCapHits"`
	CutShort    float64                `json:"pollsCutShort,omitempty"`
	QueueWait   *queueWaitSaved        `json:"queueWait,omitempty"`
	InvalidRuns float64                `json:"invalidRuns"`
}

// watchSave is a watchedRun (times in unix milliseconds).
type watchSave struct {
	FlowID  string              `json:"flowId"`
	Status  apiclient.RunStatus `json:"status"`
	Created int64               `json:"created"`
	Start   int64               `json:"start,omitempty"`
	Finish  int64               `json:"finish,omitempty"`
}

// historySaved is the look-back history still to read (historyRange).
type historySaved struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Boundary []string  `json:"boundary,omitempty"`
}

type trackedSave struct {
	FlowID  string              `json:"flowId"`
	Status  apiclient.RunStatus `json:"status"`
	Created time.Time           `json:"created"`
	Start   time.Time           `json:"start"`
	// A run re-opened by a retry, and the startTime of its execution before (unix ms).
	Reopened  bool  `json:"reopened,omitempty"`
	OrigStart int64 `json:"origStart,omitempty"`
}

type pendingSave struct {
	Run        apiclient.FlowRun `json:"run"`
	Count      bool              `json:"count"`
	Retry      bool              `json:"retry,omitempty"`
	NoDuration bool              `json:"noDuration,omitempty"`
	NoWait     bool              `json:"noQueueWait,omitempty"`
}

type failureSaved struct {
	RunID    string    `json:"runId"`
	Status   string    `json:"status"`
	Step     string    `json:"step"`
	StepName string    `json:"stepName"`
	At       time.Time `json:"at"`
}

type stepFailSaved struct {
	Display string                          `json:"displayName"`
	Runs    map[apiclient.RunStatus]float64 `json:"runs"`
}

type queueWaitSaved struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []uint64 `json:"buckets"`
}

type flowSaved struct {
	Name        string                          `json:"name"`
	Status      string                          `json:"status"`
	FolderID    string                          `json:"folderId"`
	Runs        map[apiclient.RunStatus]float64 `json:"runs"`
	DurCount    uint64                          `json:"durationCount"`
	DurSum      float64                         `json:"durationSum"`
	DurBuckets  []uint64                        `json:"durationBuckets"`
	Tasks       float64                         `json:"tasks"`
	Retries     float64                         `json:"retries,omitempty"`
	Last        *lastSaved                      `json:"last,omitempty"`
	LastSuccess time.Time                       `json:"lastSuccess"`
	ConsecFails int                             `json:"consecutiveFailures"`
	LastFailure *failureSaved                   `json:"lastFailure,omitempty"`
	StepFails   map[string]stepFailSaved        `json:"failuresByStep,omitempty"`
	Hours       [][3]int64                      `json:"hours,omitempty"` // unix hour, succeeded, failed
}

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
		ps := &projectSaved{Name: p.name, Head: p.head, LastOverlap: p.lastOverlap, OverlapHead: p.overlapHead, Untracked: p.untracked,
			Server:  p.server,
			Tracked: map[string]trackedSave{}, Flows: map[string]*flowSaved{}, Folders: p.folders,
			Failures: p.failures, CapHits: p.capHits, CutShort: p.cutShort, InvalidRuns: p.invalidRuns}
		for _, g := range p.gaps {
			ps.Gaps = append(ps.Gaps, [2]time.Time{g.from, g.to})
		}
		if h := p.history; h != nil {
			ps.History = &historySaved{From: h.from, To: h.to, Boundary: h.boundary}
		}
		ps.LedgerFrom = p.ledgerHorizon(e.ledgerWindow())
		if p.ledgerFrom.After(ps.LedgerFrom) {
			ps.LedgerFrom = p.ledgerFrom
		}
		ps.SeenIDs = make([][2]int64, 0, len(p.seen))
		for k, c := range p.seen {
			ps.SeenIDs = append(ps.SeenIDs, [2]int64{int64(k), c})
		}
		for rid, t := range p.tracked {
			ps.Tracked[rid] = trackedSave{FlowID: t.flowID, Status: t.status, Created: t.created, Start: t.start,
				Reopened: t.reopened, OrigStart: t.origStart}
		}
		if len(p.watched) > 0 {
			ps.Watched = make(map[string]watchSave, len(p.watched))
			for rid, w := range p.watched {
				ps.Watched[rid] = watchSave{FlowID: w.flowID, Status: w.status, Created: w.created, Start: w.start, Finish: w.finish}
			}
		}
		for _, d := range p.deferred {
			ps.Deferred = append(ps.Deferred, pendingSave{Run: d.run, Count: d.count, Retry: d.retry, NoDuration: d.noDuration, NoWait: d.noQueueWait})
		}
		for fid, f := range p.flows {
			fs := &flowSaved{Name: f.name, Status: f.status, FolderID: f.folderID, Runs: f.runs, DurCount: f.durCount,
				DurSum: f.durSum, DurBuckets: f.durBuckets, Tasks: f.tasks, Retries: f.retries, LastSuccess: f.lastSuccess, ConsecFails: f.consecFails}
			if f.last.set {
				fs.Last = &lastSaved{Status: f.last.status, Finish: f.last.finish, Order: f.last.order}
				if f.last.durationK {
					fs.Last.Duration = &f.last.duration
				}
				if f.last.tasksK {
					fs.Last.Tasks = &f.last.tasks
				}
			}
			for _, h := range f.hours {
				if h.hour != 0 {
					fs.Hours = append(fs.Hours, [3]int64{h.hour, int64(h.ok), int64(h.fail)})
				}
			}
			if lf := f.lastFail; lf.runID != "" {
				fs.LastFailure = &failureSaved{RunID: lf.runID, Status: lf.status, Step: lf.step, StepName: lf.stepName, At: lf.at}
			}
			for name, sf := range f.stepFails {
				if fs.StepFails == nil {
					fs.StepFails = map[string]stepFailSaved{}
				}
				fs.StepFails[name] = stepFailSaved{Display: sf.display, Runs: sf.n}
			}
			ps.Flows[fid] = fs
		}
		if q := p.queueWait; q.count > 0 {
			ps.QueueWait = &queueWaitSaved{Count: q.count, Sum: q.sum, Buckets: q.buckets}
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
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // its path has a random part: the message must stay the same for the same failure
		}
		return fmt.Errorf("writing state in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing state %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// loadState restores a state file written by saveState. A missing file is a fresh start; a
// corrupt or incompatible one is an error that names the way out.
func (e *model) loadState() error {
	path := e.cfg.StateFile
	b, err := os.ReadFile(path)
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
	e.trackedDropped = sf.Dropped
	for id, ps := range sf.Projects {
		if len(e.cfg.Projects) > 0 && !slices.Contains(e.cfg.Projects, id) || !e.cfg.ownsProject(id) {
			continue // no longer configured, or another shard's since a change of --shard.count
		}
		if ps == nil {
			return fmt.Errorf("state file %s is corrupt (project %s is null); move it away, or start fresh with --state.reset", path, id)
		}
		p, err := e.restoreProject(id, ps)
		if err != nil {
			return fmt.Errorf("state file %s is corrupt (%w); move it away, or start fresh with --state.reset", path, err)
		}
		// Flows are listed again on the first poll; until then the saved ones are served.
		e.projects[id] = p
	}
	e.log.Info("state restored", "file", path, "saved_at", sf.SavedAt, "projects", len(e.projects))
	return nil
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
		p.queueWait = queueWait{count: q.Count, sum: q.Sum, buckets: q.Buckets}
	}
	if h := ps.History; h != nil {
		p.history = &historyRange{from: h.From, to: h.To, boundary: h.Boundary}
	}
	p.ledgerFrom = ps.LedgerFrom
	for rid, c := range ps.Seen { // format version 1: the ledger covered the overlap window
		p.seen.add(rid, c)
	}
	if len(ps.Seen) > 0 || ps.LedgerFrom.IsZero() {
		p.ledgerFrom = ps.Head.Add(-e.cfg.Overlap - time.Second)
	}
	for _, kc := range ps.SeenIDs {
		p.seen[uint64(kc[0])] = kc[1]
	}
	for rid, c := range ps.Untracked {
		p.untracked[rid] = c
	}
	p.server = ps.Server
	p.server.WatchLevel = min(max(p.server.WatchLevel, 0), len(watchStatuses)-1)
	for rid, t := range ps.Tracked {
		p.tracked[rid] = &trackedRun{flowID: t.FlowID, status: t.Status, created: t.Created, start: t.Start,
			reopened: t.Reopened, origStart: t.OrigStart}
	}
	for rid, w := range ps.Watched {
		p.watched[rid] = watchedRun{flowID: w.FlowID, status: w.Status, created: w.Created, start: w.Start, finish: w.Finish}
	}
	for _, d := range ps.Deferred {
		p.deferred = append(p.deferred, pendingRun{run: d.Run, count: d.Count, retry: d.Retry, noDuration: d.NoDuration, noQueueWait: d.NoWait})
	}
	if ps.Folders != nil {
		p.folders = ps.Folders
	}
	for fid, fs := range ps.Flows {
		if fs == nil || len(fs.DurBuckets) != len(e.cfg.DurationBuckets)+1 {
			return nil, fmt.Errorf("flow %s", fid)
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

func restoreFlow(projectID, id string, fs *flowSaved) *flowState {
	f := &flowState{id: id, name: fs.Name, status: fs.Status, folderID: fs.FolderID, runs: fs.Runs,
		durCount: fs.DurCount, durSum: fs.DurSum, durBuckets: fs.DurBuckets, tasks: fs.Tasks, retries: fs.Retries,
		lastSuccess: fs.LastSuccess, consecFails: fs.ConsecFails, labels: []string{capLabel(projectID), capLabel(id), capLabel(fs.Name)}}
	if f.runs == nil {
		f.runs = map[apiclient.RunStatus]float64{}
	}
	for _, h := range fs.Hours {
		f.hours[((h[0]%24)+24)%24] = hourOutcome{hour: h[0], ok: uint32(h[1]), fail: uint32(h[2])}
	}
	if lf := fs.LastFailure; lf != nil {
		f.lastFail = failure{runID: lf.RunID, status: lf.Status, step: lf.Step, stepName: lf.StepName, at: lf.At}
	}
	for name, sf := range fs.StepFails {
		if f.stepFails == nil {
			f.stepFails = map[string]*stepFailures{}
		}
		f.stepFails[name] = &stepFailures{display: sf.Display, n: sf.Runs}
	}
	if fs.Last != nil {
		f.last = lastRun{set: true, status: fs.Last.Status, finish: fs.Last.Finish, order: fs.Last.Order}
		if fs.Last.Duration != nil {
			f.last.duration, f.last.durationK = *fs.Last.Duration, true
		}
		if fs.Last.Tasks != nil {
			f.last.tasks, f.last.tasksK = *fs.Last.Tasks, true
		}
	}
	return f
}
