package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// CheckCmd reaches the API once and reports.
type CheckCmd struct{}

// Run implements the command: one full poll (the first one), then a report of projects, flows,
// what the cold start and the look-back history cost, the requests a steady-state poll costs and
// the series served.
func (CheckCmd) Run(rc *runContext) error {
	ctx, cancel := context.WithCancel(rc.ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// check must not touch the state file of an exporter that may be running with it.
	w, err := rc.wire(ctx, &wg, wireOptions{noStateFile: true})
	if err != nil {
		return err
	}
	out := rc.stdout
	err = w.exporter.PollOnce(ctx) // reads /v1/flags first: the server is known even when the poll fails
	server := w.exporter.Server()
	fmt.Fprintf(out, "Server: %s edition, version %s\n", editionName(server.Edition), server.Version)
	fmt.Fprintf(out, "API: %s\n", w.client.BaseURL())
	printCredential(out, w.creds)
	if err != nil {
		return fmt.Errorf("check failed: %w", err)
	}
	own := prometheus.NewRegistry()
	own.MustRegister(w.exporter)
	families, err := prometheus.Gatherers{w.registry, own}.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	byName := map[string]*dto.MetricFamily{}
	series := 0
	for _, mf := range families {
		byName[mf.GetName()] = mf
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				series += len(h.GetBucket()) + 3 // buckets, +Inf, _sum, _count
			} else {
				series++
			}
		}
	}
	flowsByProject := map[string][]string{}
	for _, m := range byName["activepieces_flow_info"].GetMetric() {
		p := label(m, "project_id")
		flowsByProject[p] = append(flowsByProject[p], label(m, "flow_name")+" ("+label(m, "flow_id")+", "+label(m, "flow_status")+")")
	}
	var projects []string
	names := map[string]string{}
	for _, m := range byName["activepieces_project_info"].GetMetric() {
		projects = append(projects, label(m, "project_id"))
		names[label(m, "project_id")] = label(m, "project_name")
	}
	sort.Strings(projects)
	fmt.Fprintf(out, "Projects: %d\n", len(projects))
	for _, p := range projects {
		flows := flowsByProject[p]
		sort.Strings(flows)
		fmt.Fprintf(out, "  %s (%s): %d flows\n", names[p], p, len(flows))
		for _, f := range flows {
			fmt.Fprintf(out, "    %s\n", f)
		}
	}
	tracked := 0.0
	if mf := byName["activepieces_exporter_tracked_runs"]; mf != nil && len(mf.GetMetric()) > 0 {
		tracked = mf.GetMetric()[0].GetGauge().GetValue()
	}
	coldStart := 0.0
	for _, m := range byName["activepieces_exporter_api_requests_total"].GetMetric() {
		coldStart += m.GetCounter().GetValue()
	}
	n, perPoll, perSecond, period := w.exporter.PollBudget()
	fmt.Fprintf(out, "In-flight runs tracked: %.0f\n", tracked)
	fmt.Fprintf(out, "Cold start (until ready): %.0f API requests, %s at --api.rate-limit %g/s\n", coldStart,
		time.Duration(coldStart/w.cfg.RateLimit*float64(time.Second)).Round(time.Second), w.cfg.RateLimit)
	reportHistory(ctx, out, w, w.cfg.HistoryRate)
	fmt.Fprintf(out, "Steady state: %.1f API requests per project per poll, %.1f/s for %d projects; effective poll period %s\n",
		perPoll, perSecond, n, period.Round(time.Second))
	fmt.Fprintf(out, "Series served: %d\n", series)
	return nil
}

// reportHistory reads the look-back history, which serve reads in the background after the first
// poll (for a minute at most), to say what it costs.
func reportHistory(ctx context.Context, out io.Writer, w *wired, rate float64) {
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pages, err := w.exporter.ReadHistory(hctx, 0)
	more := ""
	if err != nil {
		more = fmt.Sprintf(" so far (stopped: %v)", err)
	}
	fmt.Fprintf(out, "Look-back history, read in the background: %d API requests%s, %s at --poll.history-rate %g/s\n",
		pages, more, time.Duration(float64(pages)/rate*float64(time.Second)).Round(time.Second), rate)
}

// label is the value of a metric's label name ("" when it has none).
func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// printCredential says how check authenticated: the API key, or the signed-in user.
func printCredential(out io.Writer, c *credentials) {
	if c.signIn == nil {
		fmt.Fprintf(out, "Credential: platform API key\n")
		return
	}
	if s, ok := c.signIn.Session(); ok {
		fmt.Fprintf(out, "Signed in as %s (platform role %s), token valid until %s\n", s.Email, s.PlatformRole, s.Expires.UTC().Format(time.RFC3339))
		return
	}
	fmt.Fprintf(out, "Not signed in\n")
}
