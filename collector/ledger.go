package collector

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// flowState is everything exported about one flow. Counts belong to the flow id: a rename only
// changes name.
type flowState struct {
	id string
	// flowCounts is what the state file keeps of the flow, as it is.
	flowCounts
	// bornPoll is the poll that first listed the flow (0 for flows restored from state). Its
	// counted runs wait until an exposition rendered after that poll has been scraped, so its zero
	// series are served first.
	bornPoll uint64
	bornAt   time.Time // when (for the bound on that wait)
	exported bool
	labels   []string // project_id, flow_id, flow_name: rebuilt on rename, reused on every scrape
	// Exemplars (OpenMetrics): the latest counted FAILED and TIMEOUT executions, and the latest
	// run observed in each duration bucket.
	exFailed, exTimeout exemplar
	exBuckets           []exemplar
}

// flowCounts is a flow's name and counts: declared once, and saved in the state file as they are
// (their JSON is the state file's format for a flow).
type flowCounts struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	FolderID string `json:"folderId"`

	Runs        map[apiclient.RunStatus]float64 `json:"runs"`
	DurCount    uint64                          `json:"durationCount"`
	DurSum      float64                         `json:"durationSum"`
	DurBuckets  []uint64                        `json:"durationBuckets"` // non-cumulative
	Tasks       float64                         `json:"tasks"`
	Retries     float64                         `json:"retries,omitempty"` // re-openings of its finished runs seen
	Last        lastRun                         `json:"last,omitzero"`
	LastSuccess time.Time                       `json:"lastSuccess"`
	ConsecFails int                             `json:"consecutiveFailures"`
	// LastFail is the most recent execution that ended in a failure status, with its run and
	// failed step (activepieces_flow_last_failure_info).
	LastFail failure `json:"lastFailure,omitzero"`
	// StepFails counts counted failed executions by the failed step's name ("" when the server
	// did not say, "other" beyond Config.MaxFailedStepsPerFlow names).
	StepFails map[string]*stepFailures `json:"failuresByStep,omitempty"`
	// Hours counts finished executions (counted or history) by the hour they finished in, the
	// last 24 hours (index: hourSlot of the unix hour), for the status page's strip of outcomes.
	Hours hourRing `json:"hours,omitzero"`
}

// hourOutcome is one hour of a flow's finished executions: succeeded and failed (the failure
// statuses); others (CANCELED, …) are not drawn.
type hourOutcome struct {
	hour     int64 // unix hour
	ok, fail uint32
}

// hourRing is a flow's last 24 hours of outcomes, by hourSlot. Saved as [unix hour, succeeded,
// failed] for each hour that has any.
type hourRing [24]hourOutcome

// MarshalJSON implements json.Marshaler.
func (r hourRing) MarshalJSON() ([]byte, error) {
	var out [][3]int64
	for _, h := range r {
		if h.hour != 0 {
			out = append(out, [3]int64{h.hour, int64(h.ok), int64(h.fail)})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *hourRing) UnmarshalJSON(b []byte) error {
	var in [][3]int64
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	for _, h := range in {
		r[hourSlot(h[0])] = hourOutcome{hour: h[0], ok: uint32(h[1]), fail: uint32(h[2])}
	}
	return nil
}

// hourSlot is where unix hour h is kept in a 24-hour ring (flowState.hours).
func hourSlot(h int64) int { return int(((h % 24) + 24) % 24) }

// noteHour adds a finished execution to the hour it finished in.
func (f *flowState) noteHour(status apiclient.RunStatus, at time.Time) {
	if at.IsZero() || !(status == apiclient.StatusSucceeded || status.IsFailure()) {
		return
	}
	h := at.Unix() / 3600
	b := &f.Hours[hourSlot(h)]
	if b.hour != h {
		if b.hour > h {
			return // older than what that slot holds now
		}
		*b = hourOutcome{hour: h}
	}
	if status == apiclient.StatusSucceeded {
		b.ok++
	} else {
		b.fail++
	}
}

// exemplar is a run an exposed sample points to: {run_id="…"} with its value and time.
type exemplar struct {
	runID string
	value float64
	at    time.Time
}

// maxExemplarID bounds the run ids given as exemplars: OpenMetrics allows 128 characters of
// exemplar labels in all (real ids have 21).
const maxExemplarID = 100

func exemplarOf(r *apiclient.FlowRun, v float64) exemplar {
	if len(r.ID) > maxExemplarID {
		return exemplar{}
	}
	return exemplar{runID: r.ID, value: v, at: orderTime(r)}
}

// failure is a failed execution, as the last-failure metrics show it.
type failure struct {
	RunID    string    `json:"runId"`
	Status   string    `json:"status"`
	Step     string    `json:"step"`     // the failed step's display name ("" when not said)
	StepName string    `json:"stepName"` // and name
	At       time.Time `json:"at"`
}

// stepFailures is the failures of one step of a flow, by status, and the step's display name as
// last seen.
type stepFailures struct {
	Display string                          `json:"displayName"`
	Runs    map[apiclient.RunStatus]float64 `json:"runs"`
}

// otherStep is the step name failures go under once a flow has Config.MaxFailedStepsPerFlow.
const otherStep = "other"

// failedStepOf is the failed step of a run: its display name (else its name) and its name, each
// bounded like every label value taken from the API.
func failedStepOf(r *apiclient.FlowRun) (display, name string) {
	name = r.FailedStepLabel()
	if r.FailedStep != nil && r.FailedStep.DisplayName != "" {
		display = r.FailedStep.DisplayName
	} else {
		display = name
	}
	return capLabel(display), capLabel(name)
}

type lastRun struct {
	set       bool
	status    apiclient.RunStatus
	finish    time.Time // zero when the run had no finishTime
	order     time.Time // what "most recent" is decided on: finishTime, else updated, else created
	duration  float64
	durationK bool
	tasks     float64
	tasksK    bool
}

// trackedRun is a run seen QUEUED, RUNNING or PAUSED, refreshed until it finishes.
type trackedRun struct {
	FlowID  string              `json:"flowId"`
	Status  apiclient.RunStatus `json:"status"`
	Created time.Time           `json:"created"`
	Start   time.Time           `json:"start"`
	touched uint64              // poll in which a listing last returned it (not saved)
	// Archived: soft-deleted while in flight, so no census counts it: it is re-read on every
	// poll until it finishes.
	Archived bool `json:"archived,omitempty"`
	// Reopened: a finished run re-opened by a retry. origStart is the startTime of the execution
	// before (unix ms): when the retry finishes with the same startTime (servers before
	// 2026-04-22 keep it), its duration cannot be known.
	Reopened  bool  `json:"reopened,omitempty"`
	OrigStart int64 `json:"origStart,omitempty"`
	// OrigFinish is the finishTime of the execution before (unix ms): a re-opened run that
	// finishes with the same start and finish is that execution seen again (a status that
	// flapped), not a retry. RetrySeen: the re-opening already counted as a retry (it had new
	// times).
	OrigFinish int64 `json:"origFinish,omitempty"`
	RetrySeen  bool  `json:"retrySeen,omitempty"`
}

// serverTraits is what the exporter learned about a project's server on the way (saved in the
// state file as it is).
type serverTraits struct {
	SecondCursors     bool `json:"secondCursors,omitempty"`     // run cursors of second granularity (old servers)
	FlowRunIDsIgnored bool `json:"flowRunIdsIgnored,omitempty"` // the flowRunIds filter is ignored
	CountUnsupported  bool `json:"countUnsupported,omitempty"`  // no usable count-by-status endpoint
	NoQueuedStatus    bool `json:"noQueuedStatus,omitempty"`    // predates QUEUED: rejects it as a filter
	WatchLevel        int  `json:"watchStatusLevel,omitempty"`  // index in watchStatuses of the filter it accepts
	RepeatLimit       int  `json:"repeatLimit,omitempty"`       // values of one repeated query key it accepts at most (0: no known limit)
}

// watchedRun is a run that ended in a status the UI offers to retry (apiclient.IsRetryable),
// remembered for Config.RetryWindow so that a retry re-opening its row is noticed: times are
// unix milliseconds (0: none), compact because a busy platform watches many.
type watchedRun struct {
	FlowID  string              `json:"flowId"`
	Status  apiclient.RunStatus `json:"status"`
	Created int64               `json:"created"`
	Start   int64               `json:"start,omitempty"`
	Finish  int64               `json:"finish,omitempty"`
}

// idSet holds run ids with their creation times (unix ms), compactly: a 64-bit FNV-1a hash of
// each id, not the id. Among the runs of one late window (an hour at 1,000 runs/s is 3.6M) the
// chance of any two colliding is about 4e-7; a collision would make one run look seen.
type idSet map[uint64]int64

func idKey(id string) uint64 { return fnv64a(id) }

// fnv64a is the 64-bit FNV-1a hash of s, as hash/fnv's New64a computes it (a test says so),
// without its allocation: it keys the ledger of run ids (saved in state files) and assigns
// projects to shards.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (s idSet) has(id string) bool { _, ok := s[idKey(id)]; return ok }

func (s idSet) add(id string, created time.Time) { s[idKey(id)] = created.UnixMilli() }

// unixMS is t in unix milliseconds, 0 for the zero time.
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func watchedOf(r *apiclient.FlowRun) watchedRun {
	return watchedRun{FlowID: r.FlowID, Status: r.Status, Created: unixMS(r.Created.Time),
		Start: unixMS(r.StartTime.Time), Finish: unixMS(r.FinishTime.Time)}
}

// gap is a range of creation times [from, to] (inclusive) not yet fully read, left when a poll
// hit its page cap.
type gap struct{ from, to time.Time }

type projectState struct {
	id, name string
	// countFrom: finished runs created before it are history (gauges only). For a fresh project,
	// just after the newest run its first poll listed (set by apply: what was visible when the
	// exporter started is history, whatever the clocks say); zero for one restored from a state
	// file, whose ledger says what was seen.
	countFrom time.Time
	// finishedFrom: the server's time at the first poll (zero for a restored project). A run
	// created after countFrom but finished before it is a late row of the history: not counted.
	finishedFrom time.Time
	// ledgerFrom: for a project restored from a state file, the creation time from which its
	// ledger of seen runs is complete (zero otherwise).
	ledgerFrom time.Time
	// clockEv is what the last poll's runs said about the server's clock.
	clockEv clockEvidence

	// Poll position. head is the newest creation time read; every run created at or before it
	// has been listed (late commits aside, which the overlap sweep catches).
	head    time.Time
	started bool // head is set
	gaps    []gap
	// nextDue is when Run polls the project next (zero: at once).
	nextDue time.Time
	// attempt is a read of the project that polls cut short have not finished (replay.go).
	attempt *attempt
	// history is the look-back history still to read in the background (nil: none).
	history     *historyRange
	lastOverlap time.Time
	overlapHead time.Time // the poll position the last overlap sweep checked up to
	lastFlows   time.Time
	lastFolders time.Time // folders are listed with the flows when one is not known, else every projects interval
	// census is what the last census settled (census.go); active: the last poll found new runs
	// (the next lists new runs whatever a census says).
	census census
	active bool
	// lastListed and watchedAt: when new runs, and runs in a retryable status, were last listed.
	lastListed, watchedAt time.Time

	// What the server is like, learned on the way.
	server serverTraits

	watchStarted        bool // the retry watch has listed the project once (since start)
	watchFullLogged     bool // the watched-runs cap was reported
	droppedFieldsLogged bool // a run with undecodable optional fields was reported

	// The run accounting: runs in flight, finished runs recently read, runs watched for retries.
	runLedger
	// prunedAt is the horizon the ledger was last pruned to (pruning walks it all, so it waits
	// until the horizon has moved by a fraction of the window).
	prunedAt time.Time
	// deferred holds finished runs of flows first listed in the last poll.
	deferred []pendingRun
	// ignored holds flows excluded by the flow filter, and flows runs named that the last flow
	// listing did not have (deleted), so they do not trigger a listing on every poll.
	ignored map[string]bool

	flows   map[string]*flowState
	folders map[string]string
	// queueWait is the project's queue-wait histogram.
	queueWait queueWait

	// Health.
	invalidRuns float64
	lastSuccess time.Time
	prevSuccess time.Time // the completed poll before lastSuccess (for the effective period)
	failing     bool
	failingAt   time.Time // when the project's polls started failing
	backlogged  bool      // gaps exist (for logging the change only)
	lastErr     string
	failures    float64
	capHits     float64
	cutShort    float64 // polls of the project cut short by --poll.timeout (continued by the next)
	// gen moves whenever what the project's parts of the rendering show may have changed
	// (touch): its parts are rendered again (parts.go), and the state file saved.
	gen uint64
}

// touch marks the project changed: its parts of the rendering are rendered anew.
func (p *projectState) touch() { p.gen++ }

// rename gives the project the name discovery found.
func (p *projectState) rename(name string) {
	if name != p.name {
		p.name = name
		p.touch()
	}
}

func newProjectState(id, name string, countFrom time.Time) *projectState {
	return &projectState{id: id, name: name, countFrom: countFrom, runLedger: newRunLedger(),
		flows: map[string]*flowState{}, folders: map[string]string{}}
}

// MaxLabelBytes bounds a label value taken from the API (names, ids): a name of a megabyte would
// otherwise be repeated in every series of its flow. Longer values are cut at a UTF-8 boundary and
// end in "…".
const MaxLabelBytes = 256

func capLabel(s string) string {
	if len(s) <= MaxLabelBytes {
		return s
	}
	cut := MaxLabelBytes - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

var statusPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,39}$`)

// statusLabel passes any sane status through (unknown ones included) and folds garbage, which
// would otherwise be an unbounded label value, into one value.
func statusLabel(s apiclient.RunStatus) apiclient.RunStatus {
	if statusPattern.MatchString(string(s)) {
		return s
	}
	return "INVALID"
}

// MaxUnknownStatuses bounds the statuses a flow counts that this exporter does not know (newer
// servers add some: they pass through as they are): beyond it they are counted together, as
// OtherStatus, so a hostile server (or state file) cannot add series without bound.
const MaxUnknownStatuses = 8

// OtherStatus is the status label of unknown statuses beyond MaxUnknownStatuses of a flow.
const OtherStatus apiclient.RunStatus = "OTHER_UNKNOWN"

// countedStatus is the label a flow counts status under: status itself, unless it is unknown and
// the flow counts MaxUnknownStatuses unknown ones already.
func (f *flowState) countedStatus(status apiclient.RunStatus) apiclient.RunStatus {
	if _, ok := f.Runs[status]; ok || isKnownTerminal(status) || status == OtherStatus {
		return status
	}
	unknown := 0
	for st := range f.Runs {
		if !isKnownTerminal(st) {
			unknown++
		}
	}
	if unknown >= MaxUnknownStatuses {
		return OtherStatus
	}
	return status
}

// orderTime is when a finished run is taken to have finished, for "most recent" decisions.
func orderTime(r *apiclient.FlowRun) time.Time {
	switch {
	case !r.FinishTime.IsZero():
		return r.FinishTime.Time
	case !r.Updated.IsZero():
		return r.Updated.Time
	}
	return r.Created.Time
}

// record applies one run event to its flow: a retry seen (pr.retry), and for a finished run its
// counters (when pr.count) and always the "last run" gauges. maxSteps caps the failed steps
// counted apart.
func (f *flowState) record(pr *pendingRun, buckets []float64, maxSteps int) {
	if pr.Retry {
		f.Retries++
	}
	r := &pr.Run
	if !r.Status.IsTerminal() {
		return // a re-opening seen in flight: the finish comes later
	}
	status := f.countedStatus(statusLabel(r.Status))
	dur, durOK := r.DurationSeconds()
	durOK = durOK && !pr.NoDuration
	tasks, tasksOK := r.TaskCount()
	if pr.Count {
		f.Runs[status]++
		switch status {
		case apiclient.StatusFailed:
			f.exFailed = exemplarOf(r, 1)
		case apiclient.StatusTimeout:
			f.exTimeout = exemplarOf(r, 1)
		}
		if durOK {
			f.DurCount++
			f.DurSum += dur
			i := sort.SearchFloat64s(buckets, dur) // first bucket with upper bound >= dur
			f.DurBuckets[i]++
			if len(f.exBuckets) != len(f.DurBuckets) {
				f.exBuckets = make([]exemplar, len(f.DurBuckets))
			}
			f.exBuckets[i] = exemplarOf(r, dur)
		}
		if tasksOK {
			f.Tasks += tasks
		}
	}
	at := orderTime(r)
	f.noteHour(status, at)
	if status.IsFailure() {
		f.recordFailure(r, status, at, pr.Count, maxSteps)
	}
	if !f.Last.set || !at.Before(f.Last.order) {
		f.Last = lastRun{set: true, status: status, finish: r.FinishTime.Time, order: at,
			duration: dur, durationK: durOK, tasks: tasks, tasksK: tasksOK}
	}
	switch {
	case pr.backfill && status == apiclient.StatusSucceeded:
		// History read newest first: the failures already known since are newer than this
		// success, unless a newer success is known.
		if f.LastSuccess.IsZero() {
			f.LastSuccess = at
			if !r.FinishTime.IsZero() {
				f.LastSuccess = r.FinishTime.Time
			}
		}
	case pr.backfill && status.IsFailure():
		if f.LastSuccess.IsZero() || at.After(f.LastSuccess) {
			f.ConsecFails++
		}
	case status == apiclient.StatusSucceeded:
		if at.After(f.LastSuccess) || f.LastSuccess.IsZero() {
			if !r.FinishTime.IsZero() {
				f.LastSuccess = r.FinishTime.Time
			} else {
				f.LastSuccess = at
			}
			f.ConsecFails = 0
		}
	case status.IsFailure():
		if !at.Before(f.LastSuccess) {
			f.ConsecFails++
		}
	}
}

// recordFailure keeps a failed execution as the flow's last failure when it is the most recent,
// and when counted, counts it by its failed step.
func (f *flowState) recordFailure(r *apiclient.FlowRun, status apiclient.RunStatus, at time.Time, count bool, maxSteps int) {
	display, name := failedStepOf(r)
	if f.LastFail.RunID == "" || !at.Before(f.LastFail.At) {
		f.LastFail = failure{RunID: capLabel(r.ID), Status: string(status), Step: display, StepName: name, At: at}
	}
	if !count {
		return
	}
	if f.StepFails == nil {
		f.StepFails = map[string]*stepFailures{}
	}
	sf := f.StepFails[name]
	if sf == nil && name != "" && len(f.StepFails) >= maxSteps { // failures without a step stay apart
		name, display = otherStep, otherStep
		sf = f.StepFails[name]
	}
	if sf == nil {
		sf = &stepFailures{Runs: map[apiclient.RunStatus]float64{}}
		f.StepFails[name] = sf
	}
	sf.Display = display
	sf.Runs[status]++
}

func (f *flowState) resetCounts(nBuckets int) {
	f.Runs = map[apiclient.RunStatus]float64{}
	f.DurCount, f.DurSum, f.Tasks = 0, 0, 0
	f.DurBuckets = make([]uint64, nBuckets+1)
}

// sortByFinish orders runs so that the "last run" and consecutive-failure logic see them in the
// order they finished.
func sortByFinish(runs []pendingRun) {
	slices.SortStableFunc(runs, func(a, b pendingRun) int {
		if c := orderTime(&a.Run).Compare(orderTime(&b.Run)); c != 0 {
			return c
		}
		return a.Run.Created.Compare(b.Run.Created.Time)
	})
}

// pendingRun is a run event waiting to be applied to its flow: a finished run (counted, or
// history for the gauges only) and/or a retry that re-opened it.
type pendingRun struct {
	Run   apiclient.FlowRun `json:"run"`
	Count bool              `json:"count"`
	// Retry: the run was re-opened after it had finished (counted in retries_total).
	Retry bool `json:"retry,omitempty"`
	// NoDuration: the run's times still belong partly to an execution before, so its duration
	// is not observed.
	NoDuration bool `json:"noDuration,omitempty"`
	// backfill: look-back history read after newer runs (newest first), never counted.
	backfill bool // (not saved: history is applied at once, never deferred)
	// NoQueueWait: the run was re-opened, so startTime − created is not its wait.
	NoQueueWait bool `json:"noQueueWait,omitempty"`
}

// queueWait is a histogram of startTime − created of a project's counted executions
// (DefaultQueueWaitBuckets; counts not cumulative).
type queueWait struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []uint64 `json:"buckets"`
}

// observe adds a run's wait; unknown or negative waits are skipped.
func (q *queueWait) observe(r *apiclient.FlowRun) {
	if r.StartTime.IsZero() || r.Created.IsZero() || r.StartTime.Before(r.Created.Time) {
		return
	}
	w := r.StartTime.Sub(r.Created.Time).Seconds()
	if len(q.Buckets) != len(DefaultQueueWaitBuckets)+1 {
		q.Buckets = make([]uint64, len(DefaultQueueWaitBuckets)+1)
	}
	q.Count++
	q.Sum += w
	q.Buckets[sort.SearchFloat64s(DefaultQueueWaitBuckets, w)]++
}
