package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

const polled = " Read from the background poll of the Activepieces API, not at scrape time."

type descs struct {
	runs, duration, tasks, lastStatus, lastDuration, lastTasks, lastFinish, lastSuccess, consecFails,
	active, oldestRunning, flowInfo, projectInfo, folderInfo, up, lastPoll, pollFailures, capHits,
	invalidRuns, trackedRuns, trackedDropped, flowsDropped, stateSaveFailures *prometheus.Desc
}

func newDescs() descs {
	flow := []string{"project_id", "flow_id", "flow_name"}
	flowStatus := []string{"project_id", "flow_id", "flow_name", "status"}
	project := []string{"project_id"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help+polled, labels, nil)
	}
	return descs{
		runs:              d("activepieces_flow_runs_total", "Finished flow runs by terminal status, each counted once when first seen finished.", flowStatus),
		duration:          d("activepieces_flow_run_duration_seconds", "Duration of counted runs (finishTime - startTime, or the server's duration).", flow),
		tasks:             d("activepieces_flow_run_tasks_total", "Tasks (steps executed) of counted runs.", flow),
		lastStatus:        d("activepieces_flow_last_run_status", "1 for the status of the flow's most recently finished run, 0 for the other terminal statuses.", flowStatus),
		lastDuration:      d("activepieces_flow_last_run_duration_seconds", "Duration of the flow's most recently finished run.", flow),
		lastTasks:         d("activepieces_flow_last_run_tasks", "Tasks of the flow's most recently finished run.", flow),
		lastFinish:        d("activepieces_flow_last_run_finish_timestamp_seconds", "Finish time of the flow's most recently finished run.", flow),
		lastSuccess:       d("activepieces_flow_last_success_timestamp_seconds", "Finish time of the flow's most recent SUCCEEDED run.", flow),
		consecFails:       d("activepieces_flow_consecutive_failures", "Runs ending FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT or MEMORY_LIMIT_EXCEEDED since the last SUCCEEDED.", flow),
		active:            d("activepieces_flow_active_runs", "Runs in flight by status (QUEUED, RUNNING, PAUSED).", flowStatus),
		oldestRunning:     d("activepieces_flow_oldest_running_run_start_timestamp_seconds", "Start time of the oldest run still RUNNING.", flow),
		flowInfo:          d("activepieces_flow_info", "Flow metadata; always 1.", []string{"project_id", "flow_id", "flow_name", "flow_status", "folder_id"}),
		projectInfo:       d("activepieces_project_info", "Project metadata; always 1.", []string{"project_id", "project_name"}),
		folderInfo:        d("activepieces_folder_info", "Folder metadata; always 1.", []string{"project_id", "folder_id", "folder_name"}),
		up:                d("activepieces_up", "1 when the last poll of every project (and project discovery) succeeded.", nil),
		lastPoll:          d("activepieces_exporter_last_poll_success_timestamp_seconds", "When a poll of the project last succeeded.", project),
		pollFailures:      d("activepieces_exporter_poll_failures_total", "Polls of the project that failed after the API client's retries.", project),
		capHits:           d("activepieces_exporter_poll_page_cap_hits_total", "Polls of the project that stopped at --poll.max-pages and left a backlog for later polls.", project),
		invalidRuns:       d("activepieces_exporter_invalid_runs_total", "Runs the API returned without id, created time or status, or for another project; skipped.", project),
		trackedRuns:       d("activepieces_exporter_tracked_runs", "In-flight runs being refreshed until they finish.", nil),
		trackedDropped:    d("activepieces_exporter_tracked_runs_dropped_total", "In-flight runs not tracked because --poll.max-tracked-runs was reached.", nil),
		flowsDropped:      d("activepieces_exporter_flows_dropped", "Flows not exported because --metrics.max-flows was reached.", nil),
		stateSaveFailures: d("activepieces_exporter_state_save_failures_total", "Saves of --state.file that failed.", nil),
	}
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	d := e.desc
	for _, x := range []*prometheus.Desc{d.runs, d.duration, d.tasks, d.lastStatus, d.lastDuration, d.lastTasks,
		d.lastFinish, d.lastSuccess, d.consecFails, d.active, d.oldestRunning, d.flowInfo, d.projectInfo, d.folderInfo,
		d.up, d.lastPoll, d.pollFailures, d.capHits, d.invalidRuns, d.trackedRuns, d.trackedDropped, d.flowsDropped,
		d.stateSaveFailures} {
		ch <- x
	}
	e.pollHist.Describe(ch)
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

// Collect implements prometheus.Collector: it renders the ledger, never calling the API.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d := e.desc
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(d.up, gauge, b2f(e.up && e.polled))
	ch <- prometheus.MustNewConstMetric(d.flowsDropped, gauge, float64(e.droppedFlows))
	ch <- prometheus.MustNewConstMetric(d.trackedDropped, counter, e.trackedDropped)
	if e.cfg.StateFile != "" {
		ch <- prometheus.MustNewConstMetric(d.stateSaveFailures, counter, e.stateSaveFailures)
	}
	tracked := 0
	buckets := e.cfg.DurationBuckets
	for _, p := range e.projects {
		tracked += len(p.tracked)
		ch <- prometheus.MustNewConstMetric(d.projectInfo, gauge, 1, p.id, p.name)
		ch <- prometheus.MustNewConstMetric(d.pollFailures, counter, p.failures, p.id)
		ch <- prometheus.MustNewConstMetric(d.capHits, counter, p.capHits, p.id)
		ch <- prometheus.MustNewConstMetric(d.invalidRuns, counter, p.invalidRuns, p.id)
		if !p.lastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(d.lastPoll, gauge, ts(p.lastSuccess), p.id)
		}
		for id, name := range p.folders {
			ch <- prometheus.MustNewConstMetric(d.folderInfo, gauge, 1, p.id, id, name)
		}
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
		for _, f := range p.flows {
			if !f.exported {
				continue
			}
			l := f.labels
			ch <- prometheus.MustNewConstMetric(d.flowInfo, gauge, 1, l[0], l[1], l[2], f.status, f.folderID)
			for _, s := range apiclient.TerminalStatuses {
				ch <- prometheus.MustNewConstMetric(d.runs, counter, f.runs[s], l[0], l[1], l[2], string(s))
			}
			for s, v := range f.runs {
				if !isKnownTerminal(s) {
					ch <- prometheus.MustNewConstMetric(d.runs, counter, v, l[0], l[1], l[2], string(s))
				}
			}
			var cum uint64
			bucketMap := make(map[float64]uint64, len(buckets)) // kept by the metric: one per flow
			for i, ub := range buckets {
				cum += f.durBuckets[i]
				bucketMap[ub] = cum
			}
			ch <- prometheus.MustNewConstHistogram(d.duration, f.durCount, f.durSum, bucketMap, l...)
			ch <- prometheus.MustNewConstMetric(d.tasks, counter, f.tasks, l...)
			ch <- prometheus.MustNewConstMetric(d.consecFails, gauge, float64(f.consecFails), l...)
			if f.last.set {
				for _, s := range apiclient.TerminalStatuses {
					ch <- prometheus.MustNewConstMetric(d.lastStatus, gauge, b2f(f.last.status == s), l[0], l[1], l[2], string(s))
				}
				if !isKnownTerminal(f.last.status) {
					ch <- prometheus.MustNewConstMetric(d.lastStatus, gauge, 1, l[0], l[1], l[2], string(f.last.status))
				}
				if f.last.durationK {
					ch <- prometheus.MustNewConstMetric(d.lastDuration, gauge, f.last.duration, l...)
				}
				if f.last.tasksK {
					ch <- prometheus.MustNewConstMetric(d.lastTasks, gauge, f.last.tasks, l...)
				}
				if !f.last.finish.IsZero() {
					ch <- prometheus.MustNewConstMetric(d.lastFinish, gauge, ts(f.last.finish), l...)
				}
			}
			if !f.lastSuccess.IsZero() {
				ch <- prometheus.MustNewConstMetric(d.lastSuccess, gauge, ts(f.lastSuccess), l...)
			}
			a := active[f.id]
			if a == nil {
				a = &activeCount{}
			}
			for i, s := range apiclient.InFlightStatuses {
				ch <- prometheus.MustNewConstMetric(d.active, gauge, float64(a.n[i]), l[0], l[1], l[2], string(s))
			}
			if !a.oldestRunning.IsZero() {
				ch <- prometheus.MustNewConstMetric(d.oldestRunning, gauge, ts(a.oldestRunning), l...)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(d.trackedRuns, gauge, float64(tracked))
	e.pollHist.Collect(ch)
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
