package collector

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

const polled = " Read from the background poll of the Activepieces API, not at scrape time."

// family is one metric family of the exporter: what both renderings (Collect, and the text
// written once per poll by WriteText) need to know of it.
type family struct {
	name, help string
	typ        dto.MetricType
	labels     []string
	desc       *prometheus.Desc
	// order lists label indices sorted by label name (how the text is written, as expfmt does);
	// lePos is where a histogram's "le" label goes among them.
	order []int
	lePos int
}

var (
	flowLabels       = []string{"project_id", "flow_id", "flow_name"}
	flowStatusLabels = []string{"project_id", "flow_id", "flow_name", "status"}
	projectLabels    = []string{"project_id"}
	gauge, counter   = dto.MetricType_GAUGE, dto.MetricType_COUNTER
	histogramType    = dto.MetricType_HISTOGRAM
)

func newFamily(name string, typ dto.MetricType, help string, labels []string) *family {
	f := &family{name: name, help: help + polled, typ: typ, labels: labels,
		desc: prometheus.NewDesc(name, help+polled, labels, nil)}
	for i := range labels {
		f.order = append(f.order, i)
	}
	sort.Slice(f.order, func(i, j int) bool { return labels[f.order[i]] < labels[f.order[j]] })
	for _, l := range labels {
		if l < "le" {
			f.lePos++
		}
	}
	return f
}

// families lists every family in the order they are rendered (by name, as Gather sorts them).
type families struct {
	flowActive, flowConsecFails, flowInfo, flowLastDuration, flowLastFinish, flowLastStatus, flowLastTasks,
	flowLastSuccess, flowOldestRunning, flowDuration, flowTasks, flowRuns,
	flowsDropped, invalidRuns, lastPoll, pollDuration, pollFailures, capHits, stateSaveFailures, trackedRuns,
	trackedDropped, folderInfo, projectInfo, up *family
}

func newFamilies() *families {
	return &families{
		flowsDropped:      newFamily("activepieces_exporter_flows_dropped", gauge, "Flows not exported because --metrics.max-flows was reached.", nil),
		invalidRuns:       newFamily("activepieces_exporter_invalid_runs_total", counter, "Runs the API returned without id, created time or status, or for another project; skipped.", projectLabels),
		lastPoll:          newFamily("activepieces_exporter_last_poll_success_timestamp_seconds", gauge, "When a poll of the project last succeeded.", projectLabels),
		pollDuration:      newFamily("activepieces_exporter_poll_duration_seconds", histogramType, "Duration of background polls of every project.", nil),
		pollFailures:      newFamily("activepieces_exporter_poll_failures_total", counter, "Polls of the project that failed after the API client's retries.", projectLabels),
		capHits:           newFamily("activepieces_exporter_poll_page_cap_hits_total", counter, "Polls of the project that stopped at --poll.max-pages and left a backlog for later polls.", projectLabels),
		stateSaveFailures: newFamily("activepieces_exporter_state_save_failures_total", counter, "Saves of --state.file that failed.", nil),
		trackedRuns:       newFamily("activepieces_exporter_tracked_runs", gauge, "In-flight runs being refreshed until they finish.", nil),
		trackedDropped:    newFamily("activepieces_exporter_tracked_runs_dropped_total", counter, "In-flight runs not tracked because --poll.max-tracked-runs was reached.", nil),
		flowActive:        newFamily("activepieces_flow_active_runs", gauge, "Runs in flight by status (QUEUED, RUNNING, PAUSED).", flowStatusLabels),
		flowConsecFails:   newFamily("activepieces_flow_consecutive_failures", gauge, "Runs ending FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT or MEMORY_LIMIT_EXCEEDED since the last SUCCEEDED.", flowLabels),
		flowInfo:          newFamily("activepieces_flow_info", gauge, "Flow metadata; always 1.", []string{"project_id", "flow_id", "flow_name", "flow_status", "folder_id"}),
		flowLastDuration:  newFamily("activepieces_flow_last_run_duration_seconds", gauge, "Duration of the flow's most recently finished run.", flowLabels),
		flowLastFinish:    newFamily("activepieces_flow_last_run_finish_timestamp_seconds", gauge, "Finish time of the flow's most recently finished run.", flowLabels),
		flowLastStatus:    newFamily("activepieces_flow_last_run_status", gauge, "1 for the status of the flow's most recently finished run, 0 for the other terminal statuses.", flowStatusLabels),
		flowLastTasks:     newFamily("activepieces_flow_last_run_tasks", gauge, "Tasks of the flow's most recently finished run.", flowLabels),
		flowLastSuccess:   newFamily("activepieces_flow_last_success_timestamp_seconds", gauge, "Finish time of the flow's most recent SUCCEEDED run.", flowLabels),
		flowOldestRunning: newFamily("activepieces_flow_oldest_running_run_start_timestamp_seconds", gauge, "Start time of the oldest run still RUNNING.", flowLabels),
		flowDuration:      newFamily("activepieces_flow_run_duration_seconds", histogramType, "Duration of counted runs (finishTime - startTime, or the server's duration).", flowLabels),
		flowTasks:         newFamily("activepieces_flow_run_tasks_total", counter, "Tasks (steps executed) of counted runs.", flowLabels),
		flowRuns:          newFamily("activepieces_flow_runs_total", counter, "Finished flow runs by terminal status, each counted once when first seen finished.", flowStatusLabels),
		folderInfo:        newFamily("activepieces_folder_info", gauge, "Folder metadata; always 1.", []string{"project_id", "folder_id", "folder_name"}),
		projectInfo:       newFamily("activepieces_project_info", gauge, "Project metadata; always 1.", []string{"project_id", "project_name"}),
		up:                newFamily("activepieces_up", gauge, "1 when the last poll of every project (and project discovery) succeeded.", nil),
	}
}

func (fs *families) all() []*family {
	return []*family{fs.flowsDropped, fs.invalidRuns, fs.lastPoll, fs.pollDuration, fs.pollFailures, fs.capHits,
		fs.stateSaveFailures, fs.trackedRuns, fs.trackedDropped, fs.flowActive, fs.flowConsecFails, fs.flowInfo,
		fs.flowLastDuration, fs.flowLastFinish, fs.flowLastStatus, fs.flowLastTasks, fs.flowLastSuccess,
		fs.flowOldestRunning, fs.flowDuration, fs.flowTasks, fs.flowRuns, fs.folderInfo, fs.projectInfo, fs.up}
}

// sink receives the exporter's samples family by family (all samples of a family in a row).
type sink interface {
	sample(f *family, v float64, labelValues ...string)
	histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, labelValues ...string)
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range e.fam.all() {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector. The served /metrics uses WriteText, rendered once per
// poll; Collect renders the same samples for registries and tests.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.emit(collectSink{ch})
	e.mu.RLock()
	e.expo.markServed(e.completed)
	e.mu.RUnlock()
}

type collectSink struct{ ch chan<- prometheus.Metric }

func (c collectSink) sample(f *family, v float64, lv ...string) {
	vt := prometheus.GaugeValue
	if f.typ == counter {
		vt = prometheus.CounterValue
	}
	c.ch <- prometheus.MustNewConstMetric(f.desc, vt, v, lv...)
}

func (c collectSink) histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, lv ...string) {
	cum := make(map[float64]uint64, len(upper)) // kept by the metric: one per histogram
	var n uint64
	for i, ub := range upper {
		n += counts[i]
		cum[ub] = n
	}
	c.ch <- prometheus.MustNewConstHistogram(f.desc, count, sum, cum, lv...)
}

type activeCount struct {
	n             [3]int
	oldestRunning time.Time
}

func inFlightIndex(s apiclient.RunStatus) int {
	switch s {
	case apiclient.StatusQueued:
		return 0
	case apiclient.StatusRunning:
		return 1
	}
	return 2
}

// emit renders every sample into s, family by family, in a stable order.
func (e *Exporter) emit(s sink) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	fs := e.fam

	projects := make([]*projectState, 0, len(e.projects))
	for _, p := range e.projects {
		projects = append(projects, p)
	}
	sort.Slice(projects, func(i, j int) bool { return projects[i].id < projects[j].id })
	type flowRef struct {
		f *flowState
		a *activeCount
	}
	var flows []flowRef
	tracked := 0
	for _, p := range projects {
		tracked += len(p.tracked)
		active := map[string]*activeCount{}
		for _, t := range p.tracked {
			a := active[t.flowID]
			if a == nil {
				a = &activeCount{}
				active[t.flowID] = a
			}
			a.n[inFlightIndex(t.status)]++
			if t.status == apiclient.StatusRunning && !t.start.IsZero() && (a.oldestRunning.IsZero() || t.start.Before(a.oldestRunning)) {
				a.oldestRunning = t.start
			}
		}
		start := len(flows)
		for _, f := range p.flows {
			if f.exported {
				a := active[f.id]
				if a == nil {
					a = &activeCount{}
				}
				flows = append(flows, flowRef{f, a})
			}
		}
		sort.Slice(flows[start:], func(i, j int) bool { return flows[start+i].f.id < flows[start+j].f.id })
	}
	perProject := func(f *family, value func(p *projectState) (float64, bool)) {
		for _, p := range projects {
			if v, ok := value(p); ok {
				s.sample(f, v, p.id)
			}
		}
	}

	s.sample(fs.flowsDropped, float64(e.droppedFlows))
	perProject(fs.invalidRuns, func(p *projectState) (float64, bool) { return p.invalidRuns, true })
	perProject(fs.lastPoll, func(p *projectState) (float64, bool) { return ts(p.lastSuccess), !p.lastSuccess.IsZero() })
	var h dto.Metric
	if err := e.pollHist.Write(&h); err == nil {
		ph := h.GetHistogram()
		upper := make([]float64, len(ph.GetBucket()))
		counts := make([]uint64, len(ph.GetBucket()))
		var prev uint64
		for i, b := range ph.GetBucket() {
			upper[i], counts[i] = b.GetUpperBound(), b.GetCumulativeCount()-prev
			prev = b.GetCumulativeCount()
		}
		s.histogram(fs.pollDuration, ph.GetSampleCount(), ph.GetSampleSum(), upper, counts)
	}
	perProject(fs.pollFailures, func(p *projectState) (float64, bool) { return p.failures, true })
	perProject(fs.capHits, func(p *projectState) (float64, bool) { return p.capHits, true })
	if e.cfg.StateFile != "" {
		s.sample(fs.stateSaveFailures, e.stateSaveFailures)
	}
	s.sample(fs.trackedRuns, float64(tracked))
	s.sample(fs.trackedDropped, e.trackedDropped)

	for _, r := range flows {
		for i, st := range apiclient.InFlightStatuses {
			s.sample(fs.flowActive, float64(r.a.n[i]), r.f.labels[0], r.f.labels[1], r.f.labels[2], string(st))
		}
	}
	for _, r := range flows {
		s.sample(fs.flowConsecFails, float64(r.f.consecFails), r.f.labels...)
	}
	for _, r := range flows {
		l := r.f.labels
		s.sample(fs.flowInfo, 1, l[0], l[1], l[2], r.f.status, r.f.folderID)
	}
	for _, r := range flows {
		if r.f.last.set && r.f.last.durationK {
			s.sample(fs.flowLastDuration, r.f.last.duration, r.f.labels...)
		}
	}
	for _, r := range flows {
		if r.f.last.set && !r.f.last.finish.IsZero() {
			s.sample(fs.flowLastFinish, ts(r.f.last.finish), r.f.labels...)
		}
	}
	for _, r := range flows {
		f, l := r.f, r.f.labels
		if !f.last.set {
			continue
		}
		for _, st := range apiclient.TerminalStatuses {
			s.sample(fs.flowLastStatus, b2f(f.last.status == st), l[0], l[1], l[2], string(st))
		}
		if !isKnownTerminal(f.last.status) {
			s.sample(fs.flowLastStatus, 1, l[0], l[1], l[2], string(f.last.status))
		}
	}
	for _, r := range flows {
		if r.f.last.set && r.f.last.tasksK {
			s.sample(fs.flowLastTasks, r.f.last.tasks, r.f.labels...)
		}
	}
	for _, r := range flows {
		if !r.f.lastSuccess.IsZero() {
			s.sample(fs.flowLastSuccess, ts(r.f.lastSuccess), r.f.labels...)
		}
	}
	for _, r := range flows {
		if !r.a.oldestRunning.IsZero() {
			s.sample(fs.flowOldestRunning, ts(r.a.oldestRunning), r.f.labels...)
		}
	}
	for _, r := range flows {
		s.histogram(fs.flowDuration, r.f.durCount, r.f.durSum, e.cfg.DurationBuckets, r.f.durBuckets, r.f.labels...)
	}
	for _, r := range flows {
		s.sample(fs.flowTasks, r.f.tasks, r.f.labels...)
	}
	for _, r := range flows {
		f, l := r.f, r.f.labels
		for _, st := range apiclient.TerminalStatuses {
			s.sample(fs.flowRuns, f.runs[st], l[0], l[1], l[2], string(st))
		}
		extra := make([]string, 0)
		for st := range f.runs {
			if !isKnownTerminal(st) {
				extra = append(extra, string(st))
			}
		}
		sort.Strings(extra)
		for _, st := range extra {
			s.sample(fs.flowRuns, f.runs[apiclient.RunStatus(st)], l[0], l[1], l[2], st)
		}
	}
	for _, p := range projects {
		ids := make([]string, 0, len(p.folders))
		for id := range p.folders {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			s.sample(fs.folderInfo, 1, p.id, id, p.folders[id])
		}
	}
	for _, p := range projects {
		s.sample(fs.projectInfo, 1, p.id, p.name)
	}
	s.sample(fs.up, b2f(e.up && e.polled))
}

func isKnownTerminal(s apiclient.RunStatus) bool {
	switch s {
	case apiclient.StatusSucceeded, apiclient.StatusFailed, apiclient.StatusTimeout, apiclient.StatusInternalError,
		apiclient.StatusQuotaExceeded, apiclient.StatusMemoryLimitExceeded, apiclient.StatusLogSizeExceeded, apiclient.StatusCanceled:
		return true
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func ts(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// APIMetrics counts the API client's requests. Pass Observe as apiclient.Config.Observer and
// register it.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPIMetrics creates the request metrics.
func NewAPIMetrics() *APIMetrics {
	return &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "activepieces_exporter_api_requests_total",
			Help: "HTTP requests the background poll sent to the Activepieces API, by endpoint and status code (\"error\": no response).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "activepieces_exporter_api_request_duration_seconds",
			Help:    "Duration of requests the background poll sent to the Activepieces API.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
}

// Observe records one request attempt.
func (m *APIMetrics) Observe(endpoint, code string, d time.Duration) {
	m.requests.WithLabelValues(endpoint, code).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *APIMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *APIMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}

// NewBuildInfo returns activepieces_exporter_build_info.
func NewBuildInfo(version, revision, goVersion string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "activepieces_exporter_build_info",
		Help:        "Build of the running exporter; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
