package collector

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

const polled = " Read from the background poll of the Activepieces API, not at scrape time."

// family is one metric family of the exporter: its declaration (one row of familyTable) and what
// both renderings (Collect, and the text written once per poll by WriteText) need to know of it.
type family struct {
	name, help string
	typ        dto.MetricType
	labels     []string
	// volatile families hold values no fixed scenario can pin (timings): left out of golden files.
	volatile bool
	// only says when the family has samples at all, if not always (e.g. "with --state.file").
	only string
	// write emits every sample of the family from one view of the exporter's state.
	write func(v *view, s sink, f *family)
	// parted: the family's samples are per project, rendered in parts (parts.go).
	parted bool

	desc *prometheus.Desc
	// order lists label indices sorted by label name (how the text is written, as expfmt does);
	// lePos is where a histogram's "le" label goes among them.
	order []int
	lePos int
}

// The label sets of the per-flow and per-project families. A per-flow sample's label values are
// always flowState.labels (project_id, flow_id, flow_name), followed by the family's own labels.
var (
	flowLabels     = []string{"project_id", "flow_id", "flow_name"}
	projectLabels  = []string{"project_id"}
	gauge, counter = dto.MetricType_GAUGE, dto.MetricType_COUNTER
	histogramType  = dto.MetricType_HISTOGRAM
)

func withFlow(extra ...string) []string {
	return append(slices.Clone(flowLabels), extra...)
}

// familyTable declares every family the exporter renders, sorted by name (the order Gather
// gives them). A new family is one row here, one row in the README's metrics table and, when its
// value is fixed by the golden scenario, a regenerated golden file.
var familyTable = []family{
	{name: "activepieces_exporter_flows_dropped", typ: gauge, help: "Flows not exported because --metrics.max-flows was reached.",
		write: global(func(e *model) (float64, bool) { return float64(e.droppedFlows), true })},
	{name: "activepieces_exporter_history_pending_projects", typ: gauge,
		help: "Projects whose --poll.lookback history (last-run gauges only) is still being read in the background.",
		write: func(v *view, s sink, f *family) {
			n := 0
			for _, p := range v.e.projects {
				if p.history != nil {
					n++
				}
			}
			s.sample(f, float64(n))
		}},
	{name: "activepieces_exporter_invalid_runs_total", typ: counter, labels: projectLabels,
		help:  "Runs the API returned without id, created time or status, or for another project; skipped.",
		write: perProject(func(p *projectState) (float64, bool) { return p.invalidRuns, true })},
	{name: "activepieces_exporter_last_poll_success_timestamp_seconds", typ: gauge, labels: projectLabels,
		help:  "When a poll of the project last succeeded.",
		write: perProject(func(p *projectState) (float64, bool) { return ts(p.lastSuccess), !p.lastSuccess.IsZero() })},
	{name: "activepieces_exporter_poll_cut_short_total", typ: counter, labels: projectLabels,
		help:  "Polls of the project cut short by --poll.timeout (or the rate limit within it); what they read is kept and the next poll continues from there.",
		write: perProject(func(p *projectState) (float64, bool) { return p.cutShort, true })},
	{name: "activepieces_exporter_poll_duration_seconds", typ: histogramType, volatile: true,
		help: pollDurationHelp, write: writePollHistogram},
	{name: "activepieces_exporter_poll_failures_total", typ: counter, labels: projectLabels,
		help:  "Polls of the project that failed after the API client's retries.",
		write: perProject(func(p *projectState) (float64, bool) { return p.failures, true })},
	{name: "activepieces_exporter_poll_page_cap_hits_total", typ: counter, labels: projectLabels,
		help:  "Polls of the project that stopped at --poll.max-pages and left a backlog for later polls.",
		write: perProject(func(p *projectState) (float64, bool) { return p.capHits, true })},
	{name: "activepieces_exporter_poll_period_seconds", typ: gauge, labels: projectLabels, volatile: true,
		help: "Seconds between the last two completed polls of the project: the effective poll period (--poll.interval, or longer when the rate limit cannot sustain it).",
		write: perProject(func(p *projectState) (float64, bool) {
			return p.lastSuccess.Sub(p.prevSuccess).Seconds(), !p.prevSuccess.IsZero()
		})},
	{name: "activepieces_exporter_server_clock_offset_seconds", typ: gauge, labels: []string{"source"}, volatile: true,
		help: "The Activepieces server's clock minus the exporter's: as its Date header says (source=\"date_header\") and as applied to run times (source=\"applied\"; the Date offset when the runs' own times agree, else what they allow).",
		write: func(v *view, s sink, f *family) {
			if c := &v.e.clock; c.dateKnown {
				s.sample(f, c.applied.Seconds(), "applied")
				s.sample(f, c.date.Seconds(), "date_header")
			}
		}},
	{name: "activepieces_exporter_state_save_failures_total", typ: counter, help: "Saves of --state.file that failed.", only: "with --state.file",
		write: global(func(e *model) (float64, bool) { return e.stateSaveFailures, e.cfg.StateFile != "" })},
	{name: "activepieces_exporter_tracked_runs", typ: gauge, help: "In-flight runs being refreshed until they finish.",
		write: func(v *view, s sink, f *family) { s.sample(f, float64(v.tracked)) }},
	{name: "activepieces_exporter_tracked_runs_dropped_total", typ: counter, help: "In-flight runs not tracked because --poll.max-tracked-runs was reached.",
		write: global(func(e *model) (float64, bool) { return e.trackedDropped, true })},
	{name: "activepieces_flow_active_runs", typ: gauge, labels: withFlow("status"),
		help: "Runs in flight by status (QUEUED, RUNNING, PAUSED).",
		write: func(v *view, s sink, f *family) {
			for _, r := range v.flows {
				for i, st := range apiclient.InFlightStatuses {
					s.sample(f, float64(r.a.n[i]), r.f.labels[0], r.f.labels[1], r.f.labels[2], string(st))
				}
			}
		}},
	{name: "activepieces_flow_consecutive_failures", typ: gauge, labels: flowLabels,
		help:  "Runs ending FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT or MEMORY_LIMIT_EXCEEDED since the last SUCCEEDED.",
		write: perFlow(func(r flowRef) (float64, bool) { return float64(r.f.ConsecFails), true })},
	{name: "activepieces_flow_info", typ: gauge, labels: withFlow("flow_status", "folder_id"), help: "Flow metadata; always 1.",
		write: func(v *view, s sink, f *family) {
			for _, r := range v.flows {
				l := r.f.labels
				s.sample(f, 1, l[0], l[1], l[2], r.f.Status, r.f.FolderID)
			}
		}},
	{name: "activepieces_flow_last_failure_info", typ: gauge, labels: withFlow("run_id", "status", "failed_step", "failed_step_name", "run_url"),
		help: "The flow's most recent execution that ended FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT or MEMORY_LIMIT_EXCEEDED: its run, the step it failed in (display name and name; empty when the server does not say) and a link to the run in the Activepieces UI; always 1, one series per flow that has failed, replaced when a newer execution fails.",
		write: func(v *view, s sink, f *family) {
			for _, r := range v.flows {
				lf, l := r.f.LastFail, r.f.labels
				if lf.RunID != "" {
					s.sample(f, 1, l[0], l[1], l[2], lf.RunID, lf.Status, lf.Step, lf.StepName, v.e.runURL(r.project.id, lf.RunID))
				}
			}
		}},
	{name: "activepieces_flow_last_failure_timestamp_seconds", typ: gauge, labels: flowLabels,
		help:  "When the flow's most recent failed execution finished (activepieces_flow_last_failure_info says which).",
		write: perFlow(func(r flowRef) (float64, bool) { return ts(r.f.LastFail.At), r.f.LastFail.RunID != "" })},
	{name: "activepieces_flow_last_run_duration_seconds", typ: gauge, labels: flowLabels,
		help:  "Duration of the flow's most recently finished run.",
		write: perFlow(func(r flowRef) (float64, bool) { return r.f.Last.duration, r.f.Last.set && r.f.Last.durationK })},
	{name: "activepieces_flow_last_run_finish_timestamp_seconds", typ: gauge, labels: flowLabels,
		help:  "Finish time of the flow's most recently finished run.",
		write: perFlow(func(r flowRef) (float64, bool) { return ts(r.f.Last.finish), r.f.Last.set && !r.f.Last.finish.IsZero() })},
	{name: "activepieces_flow_last_run_status", typ: gauge, labels: withFlow("status"),
		help: "1 for the status of the flow's most recently finished run, 0 for the other terminal statuses.",
		write: func(v *view, s sink, f *family) {
			for _, r := range v.flows {
				fl, l := r.f, r.f.labels
				if !fl.Last.set {
					continue
				}
				if v.e.cfg.CompactSeries { // only the status that is, at 1
					s.sample(f, 1, l[0], l[1], l[2], string(fl.Last.status))
					continue
				}
				for _, st := range apiclient.TerminalStatuses {
					s.sample(f, b2f(fl.Last.status == st), l[0], l[1], l[2], string(st))
				}
				if !isKnownTerminal(fl.Last.status) {
					s.sample(f, 1, l[0], l[1], l[2], string(fl.Last.status))
				}
			}
		}},
	{name: "activepieces_flow_last_run_tasks", typ: gauge, labels: flowLabels, help: "Tasks of the flow's most recently finished run.",
		write: perFlow(func(r flowRef) (float64, bool) { return r.f.Last.tasks, r.f.Last.set && r.f.Last.tasksK })},
	{name: "activepieces_flow_last_success_timestamp_seconds", typ: gauge, labels: flowLabels,
		help:  "Finish time of the flow's most recent SUCCEEDED run.",
		write: perFlow(func(r flowRef) (float64, bool) { return ts(r.f.LastSuccess), !r.f.LastSuccess.IsZero() })},
	{name: "activepieces_flow_oldest_running_run_start_timestamp_seconds", typ: gauge, labels: flowLabels,
		help:  "Start time of the oldest run still RUNNING.",
		write: perFlow(func(r flowRef) (float64, bool) { return ts(r.a.oldestRunning), !r.a.oldestRunning.IsZero() })},
	{name: "activepieces_flow_run_duration_seconds", typ: histogramType, labels: flowLabels, only: "without --metrics.compact",
		help: "Duration of counted runs (finishTime - startTime, or the server's duration).",
		write: func(v *view, s sink, f *family) {
			if v.e.cfg.CompactSeries {
				return
			}
			for _, r := range v.flows {
				s.exemplars(r.f.exBuckets...)
				s.histogram(f, r.f.DurCount, r.f.DurSum, v.e.cfg.DurationBuckets, r.f.DurBuckets, r.f.labels...)
			}
		}},
	{name: "activepieces_flow_run_failures_by_step_total", typ: counter, labels: withFlow("step", "step_name", "status"), only: "without --metrics.compact",
		help: "Counted failed executions by the step that failed (step: its display name, step_name: its name; both empty when the server does not say, \"other\" beyond --metrics.max-failed-steps-per-flow steps). Only steps that failed have series.",
		write: func(v *view, s sink, f *family) {
			if v.e.cfg.CompactSeries {
				return
			}
			for _, r := range v.flows {
				names := make([]string, 0, len(r.f.StepFails))
				for n := range r.f.StepFails {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					sf := r.f.StepFails[n]
					statuses := make([]string, 0, len(sf.Runs))
					for st := range sf.Runs {
						statuses = append(statuses, string(st))
					}
					sort.Strings(statuses)
					for _, st := range statuses {
						s.sample(f, sf.Runs[apiclient.RunStatus(st)], r.f.labels[0], r.f.labels[1], r.f.labels[2], sf.Display, n, st)
					}
				}
			}
		}},
	{name: "activepieces_flow_run_queue_wait_seconds", typ: histogramType, labels: projectLabels,
		help: "Time counted executions of the project's flows waited between creation and start (startTime - created; unknown or negative waits and re-opened runs are skipped): the saturation of the platform's workers.",
		write: func(v *view, s sink, f *family) {
			for _, p := range v.projects {
				q := p.queueWait
				if q.Buckets == nil {
					q.Buckets = make([]uint64, len(DefaultQueueWaitBuckets)+1)
				}
				s.histogram(f, q.Count, q.Sum, DefaultQueueWaitBuckets, q.Buckets, p.id)
			}
		}},
	{name: "activepieces_flow_run_retries_total", typ: counter, labels: flowLabels,
		help:  "Re-openings of the flow's finished runs seen (retry from the failed step, the job queue's automatic retry); each new finish also counts in activepieces_flow_runs_total.",
		write: perFlow(func(r flowRef) (float64, bool) { return r.f.Retries, true })},
	{name: "activepieces_flow_run_tasks_total", typ: counter, labels: flowLabels, help: "Tasks (steps executed) of counted runs.",
		write: perFlow(func(r flowRef) (float64, bool) { return r.f.Tasks, true })},
	{name: "activepieces_flow_runs_total", typ: counter, labels: withFlow("status"),
		help: "Finished flow run executions by terminal status: a run counts once each time it finishes (again after a retry).",
		write: func(v *view, s sink, f *family) {
			for _, r := range v.flows {
				fl, l := r.f, r.f.labels
				for _, st := range apiclient.TerminalStatuses {
					switch st {
					case apiclient.StatusFailed:
						s.exemplars(fl.exFailed)
					case apiclient.StatusTimeout:
						s.exemplars(fl.exTimeout)
					}
					s.sample(f, fl.Runs[st], l[0], l[1], l[2], string(st))
				}
				var extra []string
				for st := range fl.Runs {
					if !isKnownTerminal(st) {
						extra = append(extra, string(st))
					}
				}
				sort.Strings(extra)
				for _, st := range extra {
					s.sample(f, fl.Runs[apiclient.RunStatus(st)], l[0], l[1], l[2], st)
				}
			}
		}},
	{name: "activepieces_folder_info", typ: gauge, labels: []string{"project_id", "folder_id", "folder_name"}, help: "Folder metadata; always 1.",
		write: func(v *view, s sink, f *family) {
			for _, p := range v.projects {
				ids := make([]string, 0, len(p.folders))
				for id := range p.folders {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				for _, id := range ids {
					s.sample(f, 1, p.id, id, p.folders[id])
				}
			}
		}},
	{name: "activepieces_project_info", typ: gauge, labels: []string{"project_id", "project_name"}, help: "Project metadata; always 1.",
		write: func(v *view, s sink, f *family) {
			for _, p := range v.projects {
				s.sample(f, 1, p.id, p.name)
			}
		}},
	{name: "activepieces_project_run_duration_seconds", typ: histogramType, labels: projectLabels, only: "with --metrics.compact",
		help: "Duration of counted runs of the project's flows (finishTime - startTime, or the server's duration); with --metrics.compact, instead of the per-flow histogram.",
		write: func(v *view, s sink, f *family) {
			if !v.e.cfg.CompactSeries {
				return
			}
			// One pass over the flows (they come grouped by project), not one per project.
			type agg struct {
				count   uint64
				sum     float64
				buckets []uint64
			}
			byProject := map[string]*agg{}
			for _, r := range v.flows {
				a := byProject[r.project.id]
				if a == nil {
					a = &agg{buckets: make([]uint64, len(v.e.cfg.DurationBuckets)+1)}
					byProject[r.project.id] = a
				}
				a.count += r.f.DurCount
				a.sum += r.f.DurSum
				for i, c := range r.f.DurBuckets {
					a.buckets[i] += c
				}
			}
			for _, p := range v.projects {
				a := byProject[p.id]
				if a == nil {
					a = &agg{buckets: make([]uint64, len(v.e.cfg.DurationBuckets)+1)}
				}
				s.histogram(f, a.count, a.sum, v.e.cfg.DurationBuckets, a.buckets, p.id)
			}
		}},
	{name: "activepieces_server_info", typ: gauge, labels: []string{"edition", "version"},
		help:  "The Activepieces server watched, as GET /v1/flags says (\"unknown\" when it does not): edition (ce, ee, cloud) and version; always 1.",
		write: func(v *view, s sink, f *family) { s.sample(f, 1, v.e.server.Edition, v.e.server.Version) }},
	{name: "activepieces_server_run_timeout_seconds", typ: gauge, only: "when the server says it",
		help:  "How long a run may run on the server (FLOW_RUN_TIME_SECONDS in GET /v1/flags): a run RUNNING longer is stuck (ActivepiecesRunStuck; 600 s when the server does not say).",
		write: global(func(e *model) (float64, bool) { return e.server.RunTimeout.Seconds(), e.server.RunTimeout > 0 })},
	{name: "activepieces_up", typ: gauge, help: "1 when the last poll of every project (and project discovery) succeeded.",
		write: global(func(e *model) (float64, bool) { return b2f(e.up && e.polled), true })},
}

// newFamilies builds the exporter's families from familyTable.
func newFamilies() []*family {
	out := make([]*family, 0, len(familyTable))
	for _, spec := range familyTable {
		f := spec
		f.help += polled
		f.desc = prometheus.NewDesc(f.name, f.help, f.labels, nil)
		f.parted = partedFamily(f.name)
		f.order = make([]int, len(f.labels))
		for i := range f.labels {
			f.order[i] = i
		}
		sort.Slice(f.order, func(i, j int) bool { return f.labels[f.order[i]] < f.labels[f.order[j]] })
		for _, l := range f.labels {
			if l < "le" {
				f.lePos++
			}
		}
		out = append(out, &f)
	}
	return out
}

// FamilyInfo describes one metric family the Exporter serves.
type FamilyInfo struct {
	Name, Help string
	// Volatile families hold timings: no fixed scenario pins their values.
	Volatile bool
	// Only says when the family has samples, if not always.
	Only string
}

// Families lists the metric families the Exporter serves (not those of APIMetrics or
// NewBuildInfo), sorted by name.
func Families() []FamilyInfo {
	out := make([]FamilyInfo, 0, len(familyTable))
	for _, f := range familyTable {
		out = append(out, FamilyInfo{Name: f.name, Help: f.help + polled, Volatile: f.volatile, Only: f.only})
	}
	return out
}

// sink receives the exporter's samples family by family (all samples of a family in a row).
type sink interface {
	sample(f *family, v float64, labelValues ...string)
	histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, labelValues ...string)
	// exemplars attaches exemplars to the next sample (ex[0]) or histogram (one per bucket,
	// +Inf last; a zero exemplar: none).
	exemplars(ex ...exemplar)
}

// view is the exporter's state arranged for rendering: projects and exported flows in a stable
// order, with each flow's runs in flight. Built under e.mu (read).
type view struct {
	e        *model
	projects []*projectState
	flows    []flowRef
	tracked  int
}

type flowRef struct {
	f       *flowState
	a       *activeCount
	project *projectState
}

type activeCount struct {
	n             [len(apiclient.InFlightStatuses)]int
	oldestRunning time.Time
}

// inFlightIndex is where a status is in apiclient.InFlightStatuses, the one order of the
// in-flight statuses (activeCount, active_runs' status label, the status page).
func inFlightIndex(s apiclient.RunStatus) int {
	if i := slices.Index(apiclient.InFlightStatuses[:], s); i >= 0 {
		return i
	}
	return len(apiclient.InFlightStatuses) - 1 // not reached: tracked runs are in flight
}

func (e *model) viewLocked() *view {
	v := &view{e: e, projects: make([]*projectState, 0, len(e.projects))}
	for _, p := range e.projects {
		v.projects = append(v.projects, p)
	}
	sort.Slice(v.projects, func(i, j int) bool { return v.projects[i].id < v.projects[j].id })
	none := &activeCount{}
	for _, p := range v.projects {
		v.tracked += len(p.tracked)
		active := map[string]*activeCount{}
		for _, t := range p.tracked {
			a := active[t.FlowID]
			if a == nil {
				a = &activeCount{}
				active[t.FlowID] = a
			}
			a.n[inFlightIndex(t.Status)]++
			if t.Status == apiclient.StatusRunning && !t.Start.IsZero() && (a.oldestRunning.IsZero() || t.Start.Before(a.oldestRunning)) {
				a.oldestRunning = t.Start
			}
		}
		start := len(v.flows)
		for _, f := range p.flows {
			if !f.exported {
				continue
			}
			a := active[f.id]
			if a == nil {
				a = none
			}
			v.flows = append(v.flows, flowRef{f: f, a: a, project: p})
		}
		sort.Slice(v.flows[start:], func(i, j int) bool { return v.flows[start+i].f.id < v.flows[start+j].f.id })
	}
	return v
}

// global writes one unlabelled sample when value says so.
func global(value func(e *model) (float64, bool)) func(*view, sink, *family) {
	return func(v *view, s sink, f *family) {
		if x, ok := value(v.e); ok {
			s.sample(f, x)
		}
	}
}

// perProject writes one sample per project (label project_id).
func perProject(value func(p *projectState) (float64, bool)) func(*view, sink, *family) {
	return func(v *view, s sink, f *family) {
		for _, p := range v.projects {
			if x, ok := value(p); ok {
				s.sample(f, x, p.id)
			}
		}
	}
}

// perFlow writes one sample per exported flow (labels flowLabels).
func perFlow(value func(r flowRef) (float64, bool)) func(*view, sink, *family) {
	return func(v *view, s sink, f *family) {
		for _, r := range v.flows {
			if x, ok := value(r); ok {
				s.sample(f, x, r.f.labels...)
			}
		}
	}
}

func writePollHistogram(v *view, s sink, f *family) {
	var h dto.Metric
	if err := v.e.pollHist.Write(&h); err != nil {
		return
	}
	ph := h.GetHistogram()
	upper := make([]float64, len(ph.GetBucket()))
	counts := make([]uint64, len(ph.GetBucket()))
	var prev uint64
	for i, b := range ph.GetBucket() {
		upper[i], counts[i] = b.GetUpperBound(), b.GetCumulativeCount()-prev
		prev = b.GetCumulativeCount()
	}
	s.histogram(f, ph.GetSampleCount(), ph.GetSampleSum(), upper, counts)
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range e.fam {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector. The served /metrics uses the rendering made once per
// poll (what WriteText writes); Collect renders the same samples for registries and tests. It
// does not count as a scrape that served new flows' zero series: whoever serves them calls Served.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	m, release := e.acquire()
	defer release()
	m.emit(&collectSink{ch: ch})
}

type collectSink struct {
	ch chan<- prometheus.Metric
	ex []exemplar // for the next sample or histogram
}

func (c *collectSink) exemplars(ex ...exemplar) { c.ex = ex }

// send sends m with the pending exemplars.
func (c *collectSink) send(m prometheus.Metric) {
	var exs []prometheus.Exemplar
	for _, x := range c.ex {
		if x.runID != "" {
			exs = append(exs, prometheus.Exemplar{Value: x.value, Labels: prometheus.Labels{"run_id": x.runID}, Timestamp: x.at})
		}
	}
	c.ex = nil
	if len(exs) > 0 {
		if mx, err := prometheus.NewMetricWithExemplars(m, exs...); err == nil {
			m = mx
		}
	}
	c.ch <- m
}

func (c *collectSink) sample(f *family, v float64, lv ...string) {
	vt := prometheus.GaugeValue
	if f.typ == counter {
		vt = prometheus.CounterValue
	}
	c.send(prometheus.MustNewConstMetric(f.desc, vt, v, lv...))
}

func (c *collectSink) histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, lv ...string) {
	cum := make(map[float64]uint64, len(upper)) // kept by the metric: one per histogram
	var n uint64
	for i, ub := range upper {
		n += counts[i]
		cum[ub] = n
	}
	c.send(prometheus.MustNewConstHistogram(f.desc, count, sum, cum, lv...))
}

// emit renders every sample into s, family by family, in familyTable's order.
func (e *model) emit(s sink) {
	v := e.viewLocked()
	for _, f := range e.fam {
		f.write(v, s, f)
	}
}

// runURL links to a run in the Activepieces UI (docs/activepieces-api.md §9), or is empty when
// no UI URL is known.
func isKnownTerminal(s apiclient.RunStatus) bool {
	return slices.Contains(apiclient.TerminalStatuses, s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ts is t in unix seconds (float64(t.UnixNano()) would overflow after 2262).
func ts(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }

// APIMetrics counts the API client's requests. Pass Observe as apiclient.Config.Observer and
// register it.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// errors counts failed requests (429, 5xx, no usable answer) by minute, the last hour
	// (index: unix minute mod 60), for the status page.
	mu     sync.Mutex
	errors [60]struct {
		minute int64
		n      int
	}
	now func() time.Time
}

// failedCode tells the codes that count as API errors (as ActivepiecesAPIErrors does).
func failedCode(code string) bool {
	return code == "429" || strings.HasPrefix(code, "5") || strings.HasSuffix(code, "error")
}

// ErrorsLastHour is the number of API requests that failed in the last hour.
func (m *APIMetrics) ErrorsLastHour() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Unix() / 60
	n := 0
	for _, b := range m.errors {
		if now-b.minute < 60 {
			n += b.n
		}
	}
	return n
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
		now: time.Now,
	}
}

// Observe records one request attempt.
func (m *APIMetrics) Observe(endpoint, code string, d time.Duration) {
	m.requests.WithLabelValues(endpoint, code).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
	if failedCode(code) {
		m.mu.Lock()
		minute := m.now().Unix() / 60
		b := &m.errors[minute%60]
		if b.minute != minute {
			b.minute, b.n = minute, 0
		}
		b.n++
		m.mu.Unlock()
	}
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
