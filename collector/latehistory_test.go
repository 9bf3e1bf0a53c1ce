package collector

import (
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// A late row at start-up (issue #19 item 1): a run of flow A created 3 s before the exporter's
// first poll and finished FAILED before it becomes visible only after that poll (the server's
// runs queue lags). It finished before start-up, so it is history: never counted. But it is the
// flow's newest finish, so the last-run gauges must show it, however it is found: the overlap
// sweep, the late-window check or the retry watch.
func TestLateHistoryRowSetsTheLastRunGauges(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		// newer: a run of flow B visible to the first poll, created after the late row (so the
		// late row is below the first poll's position, not above it).
		newer bool
	}{
		{"overlap sweep", Config{}, false},
		{"retry watch first", Config{OverlapInterval: time.Hour, FlowsInterval: time.Minute}, false},
		{"late-window check", Config{OverlapInterval: time.Hour, FlowsInterval: time.Hour, LateWindow: 30 * time.Minute}, false},
		{"below the position, overlap sweep", Config{}, true},
		{"below the position, retry watch first", Config{OverlapInterval: time.Hour, FlowsInterval: time.Minute}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fx fixture
			h := newHarness(t, simulator.Options{}, tc.cfg, func(h *harness) {
				fx = seedFixture(h)
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: epoch.Add(-5 * time.Minute)})
				// The first poll is at epoch + 30 s: created 3 s before, finished 1 s before,
				// visible 10 s after it.
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed,
					Created: epoch.Add(27 * time.Second), Duration: 2 * time.Second, VisibleAfter: 13 * time.Second})
				if tc.newer {
					h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded, Created: epoch.Add(28 * time.Second)})
				}
			})
			h.mustPoll()
			if v, _ := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); v != 1 {
				t.Fatalf("before the late row: last_run_status SUCCEEDED = %v, want 1", v)
			}
			for range 12 { // 6 minutes
				h.mustPoll()
			}
			if v, _ := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
				t.Errorf("last_run_status FAILED = %v, want 1: the late row is the flow's newest finish\n%v", v, h.sim.Requests())
			}
			want := float64(epoch.Add(29*time.Second+100*time.Millisecond).UnixMilli()) / 1e3 // queue wait 100 ms
			if v, _ := h.value("activepieces_flow_last_run_finish_timestamp_seconds", map[string]string{"flow_id": fx.flowA}); v != want {
				t.Errorf("last_run_finish_timestamp_seconds = %v, want %v", v, want)
			}
			if v, _ := h.value("activepieces_flow_consecutive_failures", map[string]string{"flow_id": fx.flowA}); v != 1 {
				t.Errorf("consecutive_failures = %v, want 1", v)
			}
			if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 0 {
				t.Errorf("runs_total FAILED = %v: the late row finished before start-up, it is history", v)
			}
		})
	}
}
