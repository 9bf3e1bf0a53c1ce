package collector

import (
	"sort"
	"strings"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Health is how a flow is doing, as the status page sorts flows: the most urgent first.
type Health int

// The healths, most urgent first.
const (
	Failing  Health = iota // its latest run failed
	Stuck                  // a run has been RUNNING longer than StuckAfter
	Silent                 // enabled, and no run finished in the last day
	Healthy                // none of the above
	Disabled               // not enabled (nothing expected of it)
)

func (h Health) String() string {
	return [...]string{"failing", "stuck", "silent", "healthy", "disabled"}[h]
}

// StuckAfter is how long a run may be RUNNING before its flow counts as stuck: the platform's
// default flow timeout (AP_FLOW_TIMEOUT_SECONDS, 600 s), as ActivepiecesRunStuck uses it.
const StuckAfter = 10 * time.Minute

// SilentAfter is how long an enabled flow may go without a finished run before it counts as
// silent.
const SilentAfter = 24 * time.Hour

// Status is a snapshot of what the exporter knows, for a status page: taken at once under the
// exporter's lock, then free to read.
type Status struct {
	Now          time.Time
	PollInterval time.Duration
	Up, Polled   bool
	DroppedFlows int
	// UIURL is the Activepieces web app the links point into ("" when unknown).
	UIURL    string
	Projects []ProjectStatus // by name
}

// ProjectStatus is one project and its flows, the most urgent first.
type ProjectStatus struct {
	ID, Name    string
	LastSuccess time.Time // of its poll (zero: never)
	Failing     bool
	FailingAt   time.Time
	LastError   string
	RunsURL     string // its runs in the UI
	Flows       []FlowStatus
}

// FlowStatus is one exported flow.
type FlowStatus struct {
	ID, Name, Status string // Status: ENABLED or DISABLED
	Health           Health
	FlowURL          string // the flow in the builder
	// The latest finished run (HasLast false: none known).
	HasLast             bool
	LastStatus          apiclient.RunStatus
	LastFinish          time.Time
	ConsecutiveFailures int
	LastSuccess         time.Time
	Queued, Running     int
	Paused              int
	OldestRunning       time.Time
	// The latest failed run (LastFailureRun "" when none is known).
	LastFailureRun, LastFailureStatus string
	LastFailureStep, LastFailureURL   string
	LastFailureAt                     time.Time
	// Hours are the last 24 hours, oldest first: succeeded and failed executions that finished
	// in each.
	Hours [24]HourStatus
}

// HourStatus is one hour of a flow's outcomes.
type HourStatus struct {
	Start             time.Time
	Succeeded, Failed int
}

// Status returns a snapshot for a status page, as of the latest rendered exposition: once a
// status page has been asked for, every render publishes one (for statusWanted after the last
// request). The snapshot is shared by every caller: read it, do not modify it.
func (e *Exporter) Status() Status {
	e.pub.statusAskedAt.Store(e.now().UnixNano())
	if s := e.pub.status.Load(); s != nil {
		return *s
	}
	m, release := e.acquire() // the first request: taken now, by the model's owner
	defer release()
	if s := e.pub.status.Load(); s != nil {
		return *s
	}
	st := m.status()
	e.pub.status.Store(&st)
	return st
}

// statusWanted is how long after a status page was last asked for renders keep publishing its
// snapshot.
const statusWanted = 10 * time.Minute

// status takes the status snapshot of the model.
func (e *model) status() Status {
	now := e.now()
	v := e.viewLocked()
	s := Status{Now: now, PollInterval: e.cfg.PollInterval, Up: e.up && e.polled, Polled: e.polled, DroppedFlows: e.droppedFlows,
		UIURL: e.cfg.UIURL}
	byProject := map[string][]FlowStatus{}
	for _, r := range v.flows {
		byProject[r.project.id] = append(byProject[r.project.id], e.flowStatusLocked(r, now))
	}
	for _, p := range v.projects {
		ps := ProjectStatus{ID: p.id, Name: p.name, LastSuccess: p.lastSuccess, Failing: p.failing, FailingAt: p.failingAt,
			LastError: p.lastErr, Flows: byProject[p.id]}
		if ps.Name == "" {
			ps.Name = p.id
		}
		ps.RunsURL = e.runsURL(p.id)
		sort.SliceStable(ps.Flows, func(i, j int) bool {
			a, b := ps.Flows[i], ps.Flows[j]
			if a.Health != b.Health {
				return a.Health < b.Health
			}
			if a.ConsecutiveFailures != b.ConsecutiveFailures {
				return a.ConsecutiveFailures > b.ConsecutiveFailures
			}
			return strings.ToLower(a.Name) < strings.ToLower(b.Name)
		})
		s.Projects = append(s.Projects, ps)
	}
	sort.SliceStable(s.Projects, func(i, j int) bool { return strings.ToLower(s.Projects[i].Name) < strings.ToLower(s.Projects[j].Name) })
	return s
}

// flowStatusLocked describes one flow (e.mu held for reading).
func (e *model) flowStatusLocked(r flowRef, now time.Time) FlowStatus {
	f := r.f
	fs := FlowStatus{ID: f.id, Name: f.Name, Status: f.Status, HasLast: f.Last.set, LastStatus: f.Last.status,
		LastFinish: f.Last.order, ConsecutiveFailures: f.ConsecFails, LastSuccess: f.LastSuccess,
		Queued: r.a.n[inFlightIndex(apiclient.StatusQueued)], Running: r.a.n[inFlightIndex(apiclient.StatusRunning)],
		Paused: r.a.n[inFlightIndex(apiclient.StatusPaused)], OldestRunning: r.a.oldestRunning}
	fs.FlowURL = e.flowURL(r.project.id, f.id)
	if lf := f.LastFail; lf.RunID != "" {
		fs.LastFailureRun, fs.LastFailureStatus, fs.LastFailureStep, fs.LastFailureAt = lf.RunID, lf.Status, lf.Step, lf.At
		fs.LastFailureURL = e.runURL(r.project.id, lf.RunID)
	}
	hour := now.Unix() / 3600
	for i := range fs.Hours {
		h := hour - 23 + int64(i)
		fs.Hours[i].Start = time.Unix(h*3600, 0).UTC()
		if b := f.Hours[hourSlot(h)]; b.hour == h {
			fs.Hours[i].Succeeded, fs.Hours[i].Failed = int(b.ok), int(b.fail)
		}
	}
	switch {
	case f.Status != "" && f.Status != "ENABLED":
		fs.Health = Disabled
	case f.Last.set && f.Last.status.IsFailure():
		fs.Health = Failing
	case !r.a.oldestRunning.IsZero() && now.Sub(r.a.oldestRunning) > e.stuckAfter():
		fs.Health = Stuck
	case !f.Last.set || now.Sub(f.Last.order) > SilentAfter:
		fs.Health = Silent
	default:
		fs.Health = Healthy
	}
	return fs
}
