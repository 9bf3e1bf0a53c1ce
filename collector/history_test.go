package collector

import (
	"context"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// The look-back history is read after the first poll, in the background and newest first: the
// first poll serves every flow's zero series, counts from then on and makes the exporter ready;
// the history then fills the last-run gauges as if it had been read at once.
func TestLookbackHistoryIsReadInTheBackground(t *testing.T) {
	var a, b, c, busy string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		p := h.sim.AddProject("Big")
		a, b = h.sim.AddFlow(p, "", "A"), h.sim.AddFlow(p, "", "B")
		c, busy = h.sim.AddFlow(p, "", "C"), h.sim.AddFlow(p, "", "Busy")
		add := func(flow string, st apiclient.RunStatus, ago time.Duration) {
			h.sim.AddRun(simulator.RunSpec{FlowID: flow, Status: st, Created: epoch.Add(-ago)})
		}
		// 2,400 runs of Busy from 39 to 1 minutes ago: the first poll's page of 1,000 reaches
		// back about 16 minutes; everything of A and B is older, C has a run on each side.
		for i := range 2400 {
			add(busy, apiclient.StatusSucceeded, time.Minute+time.Duration(i)*time.Second*38*60/2400)
		}
		add(a, apiclient.StatusSucceeded, 50*time.Minute)
		add(a, apiclient.StatusFailed, 45*time.Minute)
		add(a, apiclient.StatusFailed, 40*time.Minute)
		add(b, apiclient.StatusTimeout, 55*time.Minute)
		add(c, apiclient.StatusSucceeded, 50*time.Minute)
		add(c, apiclient.StatusFailed, 3*time.Minute)
		add(c, apiclient.StatusFailed, 2*time.Hour) // beyond the look-back
	})
	h.noHistory = true
	h.mustPoll()
	if err := h.exp.Ready(); err != nil {
		t.Fatalf("not ready after the first poll: %v", err)
	}
	if v, _ := h.value("activepieces_exporter_history_pending_projects", nil); v != 1 {
		t.Errorf("history_pending_projects = %v, want 1", v)
	}
	if _, ok := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": a}); ok {
		t.Error("A has a last-run status before its history was read")
	}
	for _, fl := range []string{a, b} {
		if v, ok := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fl, "status": "FAILED"}); !ok || v != 0 {
			t.Errorf("flow %s: runs_total{FAILED} = %v, %v; want its zero served by the first poll", fl, v, ok)
		}
	}
	// Counting starts with the first poll, not with the history.
	h.sim.AddRun(simulator.RunSpec{FlowID: b, Status: apiclient.StatusFailed})
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": b, "status": "FAILED"}); v != 1 {
		t.Fatalf("B's new failure counted %v times before the history was read, want 1", v)
	}

	h.sim.ResetRequests()
	pages, err := h.exp.ReadHistory(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// 1,407 runs left below the first page, 1,000 a page.
	if pages != 2 || h.sim.CountRequests("/api/v1/flow-runs") != 2 {
		t.Errorf("history read in %d pages, %d requests; want 2", pages, h.sim.CountRequests("/api/v1/flow-runs"))
	}
	h.mustPoll() // renders
	want := []struct {
		flow, what string
		labels     map[string]string
		v          float64
	}{
		{a, "activepieces_flow_last_run_status", map[string]string{"status": "FAILED"}, 1},
		{a, "activepieces_flow_consecutive_failures", nil, 2},
		{a, "activepieces_flow_last_success_timestamp_seconds", nil, float64(epoch.Add(-50*time.Minute+1600*time.Millisecond).UnixMilli()) / 1000},
		{b, "activepieces_flow_consecutive_failures", nil, 2}, // the counted FAILED and the historical TIMEOUT
		{b, "activepieces_flow_last_run_status", map[string]string{"status": "FAILED"}, 1},
		{c, "activepieces_flow_consecutive_failures", nil, 1},
		{c, "activepieces_flow_last_success_timestamp_seconds", nil, float64(epoch.Add(-50*time.Minute+1600*time.Millisecond).UnixMilli()) / 1000},
		{busy, "activepieces_flow_last_run_status", map[string]string{"status": "SUCCEEDED"}, 1},
		{"", "activepieces_exporter_history_pending_projects", nil, 0},
	}
	for _, w := range want {
		h.expectValue(w.what, w.flow, w.labels, w.v)
	}
	if n := h.assertTotals(); n != 1 {
		t.Errorf("counted %d runs, want only B's new failure", n)
	}
	h.lint()
}

// expectValue checks the value of family name's series of flow (any flow when "") with labels.
func (h *harness) expectValue(name, flow string, labels map[string]string, want float64) {
	h.t.Helper()
	all := map[string]string{}
	for k, v := range labels {
		all[k] = v
	}
	if flow != "" {
		all["flow_id"] = flow
	}
	if v, ok := h.value(name, all); !ok || v != want {
		h.t.Errorf("%s%v = %v (present %v), want %v", name, all, v, ok, want)
	}
}

// A server that ignores createdBefore cannot keep the history reader busy forever.
func TestHistoryReaderStopsOnAServerIgnoringCreatedBefore(t *testing.T) {
	var flow string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		flow = h.sim.AddFlow(h.sim.AddProject("P"), "", "F")
		for i := range 2500 {
			h.sim.AddRun(simulator.RunSpec{FlowID: flow, Created: epoch.Add(-time.Duration(i+1) * time.Second)})
		}
	})
	h.noHistory = true
	h.mustPoll()
	h.clock.Advance(time.Hour) // the newest runs now are after the history's range
	for range 5 {
		h.sim.AddRun(simulator.RunSpec{FlowID: flow})
	}
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs", IgnoreCreatedBefore: true, Times: -1})
	pages, err := h.exp.ReadHistory(context.Background(), 100)
	if err != nil || pages > 3 {
		t.Errorf("history reader read %d pages (err %v) from a server ignoring its range, want it to stop", pages, err)
	}
}
