package collector

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// benchExporter is an exporter with one project of nFlows flows, not connected to any API.
func benchExporter(b testing.TB, nFlows int) (*Exporter, *projectState, []apiclient.Flow) {
	b.Helper()
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{MaxTrackedRuns: 1 << 30}, api, slog.New(slog.NewTextHandler(io.Discard, nil)), WithClock(func() time.Time { return epoch }))
	if err != nil {
		b.Fatal(err)
	}
	p := newProjectState("benchProject000000001", "Bench", time.Time{})
	e.m().projects[p.id] = p
	flows := make([]apiclient.Flow, nFlows)
	for i := range flows {
		flows[i] = apiclient.Flow{ID: fmt.Sprintf("flow%017d", i), Status: "ENABLED", FolderID: "folder00000000000001",
			Version: &apiclient.FlowVersion{DisplayName: fmt.Sprintf("Flow number %d", i)}}
	}
	e.m().applyLocked(p, &fetched{flowsListed: true, flows: flows, head: epoch, started: true}, 1, epoch)
	e.expo.markServed(1) // scraped: runs of these flows are counted from the next poll on
	return e, p, flows
}

// runPages renders nPages pages of 100 runs the way a raw (real-world) server sends them.
func runPages(b testing.TB, nPages int, flows []apiclient.Flow) [][]byte {
	b.Helper()
	sim := simulator.New(simulator.Options{Raw: true, Now: func() time.Time { return epoch }})
	pid := sim.AddProject("Bench")
	var simFlows []string
	for range min(len(flows), 50) {
		simFlows = append(simFlows, sim.AddFlow(pid, "", "Flow"))
	}
	statuses := []apiclient.RunStatus{apiclient.StatusSucceeded, apiclient.StatusSucceeded, apiclient.StatusSucceeded, apiclient.StatusFailed, apiclient.StatusRunning}
	for i := range nPages * 100 {
		sim.AddRun(simulator.RunSpec{FlowID: simFlows[i%len(simFlows)], Status: statuses[i%len(statuses)], Steps: 3,
			Created: epoch.Add(time.Duration(i) * time.Millisecond)})
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	var pages [][]byte
	cursor := ""
	for range nPages {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/flow-runs?limit=100&projectId="+pid+"&cursor="+cursor, nil)
		req.Header.Set("Authorization", "Bearer "+simulator.DefaultAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var page apiclient.Page[apiclient.FlowRun]
		if err := json.Unmarshal(body, &page); err != nil {
			b.Fatal(err)
		}
		// Point the runs at the exporter's flows (ids differ between the two worlds).
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		for i, r := range raw["data"].([]any) {
			r.(map[string]any)["flowId"] = flows[i%len(flows)].ID
			r.(map[string]any)["projectId"] = "benchProject000000001"
		}
		body, _ = json.Marshal(raw)
		pages = append(pages, body)
		cursor = page.NextCursor()
	}
	return pages
}

// BenchmarkIngest compares decoding and accounting 10 pages of 100 runs with the plain
// encoding/json decode of the same bytes into the same structs (the baseline).
func BenchmarkIngest(b *testing.B) {
	_, _, flows := benchExporter(b, 100)
	pages := runPages(b, 10, flows)
	var bytes int64
	for _, p := range pages {
		bytes += int64(len(p))
	}
	b.Run("baseline=json-decode", func(b *testing.B) {
		b.SetBytes(bytes)
		b.ReportAllocs()
		for b.Loop() {
			for _, body := range pages {
				var page apiclient.Page[apiclient.FlowRun]
				if err := json.Unmarshal(body, &page); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode+account", func(b *testing.B) {
		e, p, _ := benchExporter(b, 100)
		b.SetBytes(bytes)
		b.ReportAllocs()
		seq := uint64(2)
		for b.Loop() {
			// A fresh ledger each time, so every run is new and counted, as in a burst.
			p.seen, p.tracked = make(idSet, 1000), make(map[string]*trackedRun)
			f := &fetched{head: epoch, started: true}
			for _, body := range pages {
				var page apiclient.Page[apiclient.FlowRun]
				if err := json.Unmarshal(body, &page); err != nil {
					b.Fatal(err)
				}
				f.listed = append(f.listed, page.Data...)
			}
			e.m().applyLocked(p, f, seq, epoch)
			seq++
		}
	})
}

// populate gives every flow counts, a histogram, a last run and some runs in flight.
func populate(e *Exporter, p *projectState, inflight int) {
	buckets := e.cfg.DurationBuckets
	for _, f := range p.flows {
		for i, s := range apiclient.TerminalStatuses {
			f.Runs[s] = float64(i * 3)
		}
		for i := range f.DurBuckets {
			f.DurBuckets[i] = uint64(i)
		}
		f.DurCount, f.DurSum, f.Tasks, f.ConsecFails = uint64(len(buckets)), 123.4, 42, 1
		f.Last = lastRun{set: true, status: apiclient.StatusFailed, finish: epoch, order: epoch, duration: 1.5, durationK: true, tasks: 3, tasksK: true}
		f.LastSuccess = epoch
		// Exemplars everywhere they can be: FAILED, TIMEOUT and every duration bucket, and a
		// last failure with its link.
		ex := exemplar{runID: "run" + f.id[:18], value: 1, at: epoch}
		f.exFailed, f.exTimeout = ex, ex
		f.exBuckets = make([]exemplar, len(f.DurBuckets))
		for i := range f.exBuckets {
			v := 2 * buckets[len(buckets)-1] // the +Inf bucket's
			if i < len(buckets) {
				v = buckets[i] // a duration that falls in bucket i
			}
			f.exBuckets[i] = exemplar{runID: ex.runID, value: v, at: epoch}
		}
		f.LastFail = failure{RunID: ex.runID, Status: "FAILED", Step: "Post to Slack", StepName: "step_3", At: epoch}
	}
	ids := make([]string, 0, len(p.flows))
	for id := range p.flows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i := range inflight {
		p.tracked[fmt.Sprintf("run%018d", i)] = &trackedRun{FlowID: ids[i%len(ids)], Status: apiclient.InFlightStatuses[i%3], Created: epoch, Start: epoch}
	}
}

// constCollector is the render baseline: n gauge samples with the exporter's label shape,
// emitted as const metrics from prebuilt descriptors.
type constCollector struct {
	descs  []*prometheus.Desc
	labels [][]string
}

func newConstCollector(samples int) *constCollector {
	c := &constCollector{}
	for i := range 20 {
		c.descs = append(c.descs, prometheus.NewDesc(fmt.Sprintf("baseline_family_%d", i), "Baseline.", []string{"project_id", "flow_id", "flow_name", "status"}, nil))
	}
	for i := range samples {
		c.labels = append(c.labels, []string{"benchProject000000001", fmt.Sprintf("flow%017d", i/20), fmt.Sprintf("Flow number %d", i/20), "SUCCEEDED"})
	}
	return c
}

func (c *constCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *constCollector) Collect(ch chan<- prometheus.Metric) {
	for i, l := range c.labels {
		ch <- prometheus.MustNewConstMetric(c.descs[i%len(c.descs)], prometheus.GaugeValue, float64(i), l...)
	}
}

// samples counts the sample lines a registry exposes.
func samples(b testing.TB, reg *prometheus.Registry) int {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				n += len(h.GetBucket()) + 3
			} else {
				n++
			}
		}
	}
	return n
}

func scrapeOnce(b testing.TB, h http.Handler) int {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.Len()
}

// BenchmarkRender renders the metrics of 1k and 10k flows (each with counts, a histogram, a last
// run, and 10 runs in flight per flow) three ways, each producing the same number of samples in
// the text format:
//   - baseline=const: a trivial const-metric collector through promhttp (the baseline);
//   - collect: the exporter as a prometheus.Collector through promhttp;
//   - writetext: WriteText, what the exporter does once per poll to refresh what /metrics serves.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		e, p, _ := benchExporter(b, n)
		populate(e, p, 10*n)
		reg := prometheus.NewRegistry()
		reg.MustRegister(e)
		nSamples := samples(b, reg)
		base := prometheus.NewRegistry()
		base.MustRegister(newConstCollector(nSamples))
		for _, tc := range []struct {
			name string
			h    http.Handler
		}{
			{"baseline=const", promhttp.HandlerFor(base, promhttp.HandlerOpts{})},
			{"collect", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
			{"writetext", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
				if err := e.WriteText(w); err != nil {
					b.Fatal(err)
				}
			})},
			{"writeopenmetrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
				if err := e.WriteOpenMetrics(w); err != nil {
					b.Fatal(err)
				}
			})},
		} {
			b.Run(fmt.Sprintf("flows=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				var lat []time.Duration
				for b.Loop() {
					start := time.Now()
					scrapeOnce(b, tc.h)
					lat = append(lat, time.Since(start))
				}
				slices.Sort(lat)
				b.ReportMetric(float64(nSamples), "samples")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// BenchmarkMemory reports the heap held by 10k flows and 100k runs in flight.
func BenchmarkMemory(b *testing.B) {
	for b.Loop() {
		before := heapMB()
		e, p, _ := benchExporter(b, 10000)
		populate(e, p, 100000)
		after := heapMB()
		b.ReportMetric(after-before, "heap-MB")
		runtime.KeepAlive(e)
	}
}
