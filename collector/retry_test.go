package collector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// retryConfig refreshes flows (and so watches for retries) every second poll.
var retryConfig = Config{PollInterval: 30 * time.Second, FlowsInterval: time.Minute}

// untilRefresh polls until a flow refresh has happened: the latest a retry must be noticed.
func (h *harness) untilRefresh() {
	h.t.Helper()
	for range int(h.exp.cfg.FlowsInterval/h.exp.cfg.PollInterval) + 1 {
		h.mustPoll()
	}
}

// failRetrySucceed: a run of flow fails and is counted, then is retried (mode) and succeeds a
// second later, between two polls; the polls go on up to a flow refresh.
func (h *harness) failRetrySucceed(flow string, mode simulator.RetryMode) {
	h.t.Helper()
	h.mustPoll()
	run := h.sim.AddRun(simulator.RunSpec{FlowID: flow, Status: apiclient.StatusFailed})
	h.mustPoll()
	h.sim.RetryRun(run, mode)
	h.clock.Advance(time.Second)
	h.sim.SetRunStatus(run, apiclient.StatusSucceeded)
	h.untilRefresh()
}

// flowValue reads one series of a per-flow family (0 when absent).
func (h *harness) flowValue(name, flowID string, extra ...string) float64 {
	h.t.Helper()
	want := map[string]string{"flow_id": flowID}
	for i := 0; i+1 < len(extra); i += 2 {
		want[extra[i]] = extra[i+1]
	}
	v, _ := h.value(name, want)
	return v
}

// assertExecutions compares runs_total with the simulator's record of finishes (a retried run
// finishes more than once) of runs created since the exporter started.
func (h *harness) assertExecutions() {
	h.t.Helper()
	want := h.sim.Executions(h.exp.startedAt)
	got := h.counts()
	for k, v := range want {
		if got[k] != v {
			h.t.Errorf("%s/%s: counted %d, simulator finished %d", k.FlowID, k.Status, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			h.t.Errorf("%s/%s: counted %d, simulator finished none", k.FlowID, k.Status, v)
		}
	}
}

type flowExpect struct {
	runs        map[apiclient.RunStatus]float64
	retries     float64
	consecFails float64
	lastStatus  apiclient.RunStatus
	durations   float64 // observations of the duration histogram
}

func (h *harness) expectFlow(flowID string, want flowExpect) {
	h.t.Helper()
	for _, st := range apiclient.TerminalStatuses {
		if got := h.flowValue("activepieces_flow_runs_total", flowID, "status", string(st)); got != want.runs[st] {
			h.t.Errorf("runs_total{status=%s} = %v, want %v", st, got, want.runs[st])
		}
	}
	if got := h.flowValue("activepieces_flow_run_retries_total", flowID); got != want.retries {
		h.t.Errorf("retries_total = %v, want %v", got, want.retries)
	}
	if got := h.flowValue("activepieces_flow_consecutive_failures", flowID); got != want.consecFails {
		h.t.Errorf("consecutive_failures = %v, want %v", got, want.consecFails)
	}
	if got := h.flowValue("activepieces_flow_last_run_status", flowID, "status", string(want.lastStatus)); got != 1 {
		h.t.Errorf("last_run_status{status=%s} = %v, want 1", want.lastStatus, got)
	}
	if got := h.flowValue("activepieces_flow_run_duration_seconds", flowID); got != want.durations {
		h.t.Errorf("duration observations = %v, want %v", got, want.durations)
	}
}

// The cases of issue #8: a retry that happens between two polls (never seen in flight), on new
// and old servers, through each kind of same-row retry.
func TestRetryBetweenTwoPolls(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      simulator.Options
		first     apiclient.RunStatus
		mode      simulator.RetryMode
		then      apiclient.RunStatus
		want      flowExpect
		lastSince bool // last_success_timestamp set by the retry
	}{
		{name: "failed, retried from the failed step, succeeded", first: apiclient.StatusFailed, mode: simulator.RetryFromFailedStep,
			then: apiclient.StatusSucceeded, lastSince: true,
			want: flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1, "SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 2}},
		{name: "internal error, automatic retry, succeeded", first: apiclient.StatusInternalError, mode: simulator.RetryAutomatic,
			then: apiclient.StatusSucceeded, lastSince: true,
			// The automatic retry keeps startTime: the second execution's duration is unknown.
			want: flowExpect{runs: map[apiclient.RunStatus]float64{"INTERNAL_ERROR": 1, "SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 1}},
		{name: "failed, retried, failed again", first: apiclient.StatusFailed, mode: simulator.RetryFromFailedStep,
			then: apiclient.StatusFailed,
			want: flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 2}, retries: 1, consecFails: 2, lastStatus: "FAILED", durations: 2}},
		{name: "old server keeps the times until the retry finishes", opts: simulator.Options{OldServer: true}, first: apiclient.StatusTimeout,
			mode: simulator.RetryFromFailedStep, then: apiclient.StatusSucceeded, lastSince: true,
			want: flowExpect{runs: map[apiclient.RunStatus]float64{"TIMEOUT": 1, "SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 1}},
		{name: "log size exceeded, retried, succeeded", first: apiclient.StatusLogSizeExceeded, mode: simulator.RetryFromFailedStep,
			then: apiclient.StatusSucceeded, lastSince: true,
			want: flowExpect{runs: map[apiclient.RunStatus]float64{"LOG_SIZE_EXCEEDED": 1, "SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fx fixture
			h := newHarness(t, tc.opts, retryConfig, func(h *harness) { fx = seedFixture(h) })
			h.mustPoll()
			h.mustPoll()
			run := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: tc.first})
			h.mustPoll()
			if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", string(tc.first)); got != 1 {
				t.Fatalf("first finish counted %v times", got)
			}
			h.clock.Advance(5 * time.Second)
			h.sim.RetryRun(run, tc.mode)
			h.clock.Advance(2 * time.Second)
			h.sim.SetRunStatus(run, tc.then)
			h.untilRefresh()
			h.expectFlow(fx.flowA, tc.want)
			h.assertExecutions()
			if tc.lastSince {
				want := ts(h.sim.Run(run).FinishTime)
				if got := h.flowValue("activepieces_flow_last_success_timestamp_seconds", fx.flowA); got != want {
					t.Errorf("last_success_timestamp = %v, want the retry's finish %v", got, want)
				}
			}
			// Re-reading a run that has not changed never counts it again.
			h.untilRefresh()
			h.untilRefresh()
			h.expectFlow(fx.flowA, tc.want)
			h.lint()
		})
	}
}

// A retry seen in flight counts one retry, and the finish once; the retry's own duration is
// observed where the server reset startTime.
func TestRetrySeenInFlight(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, retryConfig, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	run := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Duration: 20 * time.Second})
	h.clock.Advance(20 * time.Second) // it has finished
	h.mustPoll()
	h.sim.RetryRun(run, simulator.RetryFromFailedStep)
	h.untilRefresh() // the watch sees it QUEUED
	if got := h.flowValue("activepieces_flow_active_runs", fx.flowA, "status", "QUEUED"); got != 1 {
		t.Errorf("re-opened run not tracked in flight: active QUEUED = %v", got)
	}
	if got := h.flowValue("activepieces_flow_run_retries_total", fx.flowA); got != 1 {
		t.Errorf("retries_total = %v while in flight, want 1", got)
	}
	h.sim.SetRunStatus(run, apiclient.StatusRunning)
	h.mustPoll()
	h.clock.Advance(3 * time.Second)
	h.sim.SetRunStatus(run, apiclient.StatusSucceeded)
	h.untilRefresh()
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1, "SUCCEEDED": 1}, retries: 1,
		lastStatus: "SUCCEEDED", durations: 2})
	// The server reset startTime when it re-queued the run: the retry's duration is its own.
	r := h.sim.Run(run)
	if sum, want := histogramSum(h, "activepieces_flow_run_duration_seconds", fx.flowA), 20+r.FinishTime.Sub(r.StartTime).Seconds(); sum != want {
		t.Errorf("duration sum %v, want %v (the first execution's 20 s and the retry's own)", sum, want)
	}
	h.assertExecutions()
}

func histogramSum(h *harness, name, flowID string) float64 {
	for _, m := range h.family(name) {
		if label(m, "flow_id") == flowID {
			return m.GetHistogram().GetSampleSum()
		}
	}
	return -1
}

// Runs that failed before the exporter started are watched too: inside the look-back and beyond
// it (within the retry window).
func TestRetryOfARunThatFailedBeforeStartUp(t *testing.T) {
	var fx fixture
	var recent, old string
	h := newHarness(t, simulator.Options{}, retryConfig, func(h *harness) {
		fx = seedFixture(h)
		recent = h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: epoch.Add(-10 * time.Minute)})
		old = h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusTimeout, Created: epoch.Add(-5 * time.Hour)})
	})
	h.mustPoll()
	if got := h.counts(); len(got) != 0 {
		t.Fatalf("history counted: %v", got)
	}
	for _, id := range []string{recent, old} {
		h.sim.RetryRun(id, simulator.RetryFromFailedStep)
	}
	h.clock.Advance(time.Second)
	h.sim.SetRunStatus(recent, apiclient.StatusSucceeded)
	h.sim.SetRunStatus(old, apiclient.StatusFailed)
	h.untilRefresh()
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 1})
	h.expectFlow(fx.flowB, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1}, retries: 1, consecFails: 1, lastStatus: "FAILED", durations: 1})
}

// A retry that happens while the exporter is down is counted after a restart from the state file.
func TestRetryWhileDownIsCountedAfterRestart(t *testing.T) {
	var fx fixture
	cfg := retryConfig
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	run := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	h.exp.Close() // down
	h.clock.Advance(10 * time.Minute)
	h.sim.RetryRun(run, simulator.RetryFromFailedStep)
	h.clock.Advance(time.Second)
	h.sim.SetRunStatus(run, apiclient.StatusSucceeded)
	h.clock.Advance(10 * time.Minute)
	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	h.mustPoll() // the first poll after a restart refreshes flows, and so watches
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1, "SUCCEEDED": 1}, retries: 1,
		lastStatus: "SUCCEEDED", durations: 2})
}

// "Retry on latest version" is a new row: an ordinary new run, no retry.
func TestRetryOnLatestVersionIsANewRun(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, retryConfig, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	h.clock.Advance(time.Second)
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded})
	h.untilRefresh()
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1, "SUCCEEDED": 1}, lastStatus: "SUCCEEDED", durations: 2})
}

// A run archived while in flight is still counted when it finishes (re-reads include archived).
func TestRunArchivedInFlightIsCountedWhenItFinishes(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, retryConfig, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	run := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	h.mustPoll()
	h.sim.ArchiveRun(run)
	h.mustPoll()
	h.sim.SetRunStatus(run, apiclient.StatusFailed)
	h.untilRefresh()
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); got != 1 {
		t.Errorf("archived run's finish counted %v times, want 1", got)
	}
}

// With --poll.retry-window=0 nothing is watched, and no request is spent on it.
func TestRetryWatchOff(t *testing.T) {
	var fx fixture
	cfg := retryConfig
	cfg.RetryWatchOff = true
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.failRetrySucceed(fx.flowA, simulator.RetryFromFailedStep)
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1}, consecFails: 1, lastStatus: "FAILED", durations: 1})
	for _, r := range h.sim.Requests() {
		if len(r.Query["status"]) > 0 && r.Query.Get("includeArchived") == "true" {
			t.Errorf("a watch listing was sent with the watch off: %v", r.Query)
		}
	}
}

// Servers that reject newer statuses as filters (LOG_SIZE_EXCEEDED before shared 0.43) still get
// the watch, with the statuses they know.
func TestRetryWatchOnAServerWithFewerStatuses(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{NoQueued: true}, retryConfig, func(h *harness) { fx = seedFixture(h) })
	h.failRetrySucceed(fx.flowA, simulator.RetryAutomatic)
	h.expectFlow(fx.flowA, flowExpect{runs: map[apiclient.RunStatus]float64{"FAILED": 1, "SUCCEEDED": 1}, retries: 1, lastStatus: "SUCCEEDED", durations: 1})
	if v, _ := h.value("activepieces_up", nil); v != 1 {
		t.Errorf("up = %v", v)
	}
}

// A run that becomes visible 30 s after its created time, behind newer runs, with an overlap of
// only 5 s: the late-window check counts it within one flow refresh of appearing, exactly once.
// Without count-by-status a late run in a retryable status is still caught by the retry watch's
// listing; a late SUCCEEDED one only when the overlap sweep reaches it (its window goes back to
// the previous sweep's position minus the overlap, which here covers it; README).
func TestRowVisibleLateIsCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		withCount bool
		status    apiclient.RunStatus
		want      float64
	}{
		{"count-by-status, succeeded", true, apiclient.StatusSucceeded, 1},
		{"count-by-status, failed", true, apiclient.StatusFailed, 1},
		{"no count-by-status, failed", false, apiclient.StatusFailed, 1},
		{"no count-by-status, succeeded", false, apiclient.StatusSucceeded, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fx fixture
			cfg := Config{PollInterval: 10 * time.Second, Overlap: 5 * time.Second, OverlapInterval: 10 * time.Second, FlowsInterval: time.Minute}
			h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
			if !tc.withCount {
				h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs/count-by-status", Status: 404, Times: -1,
					Body: `{"statusCode":404,"error":"Not Found","message":"Route not found"}`})
			}
			h.mustPoll()
			late := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: tc.status, VisibleAfter: 30 * time.Second})
			for i := range 4 { // newer runs move the poll position past it while it is invisible
				h.clock.Advance(2 * time.Second)
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
				if i%2 == 0 {
					h.mustPoll()
				}
			}
			appeared := h.sim.Run(late).VisibleAt
			for h.clock.Now().Before(appeared.Add(cfg.FlowsInterval + cfg.PollInterval)) {
				h.mustPoll()
			}
			if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", string(tc.status)); got != tc.want {
				t.Errorf("run visible 30 s late counted %v times within a flow refresh, want %v", got, tc.want)
			}
			for range 10 {
				h.mustPoll()
			}
			if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", string(tc.status)); got != tc.want {
				t.Errorf("later polls moved the count to %v, want %v", got, tc.want)
			}
			if tc.want == 1 {
				h.assertTotals()
			}
		})
	}
}

// The late check costs one count-by-status per project per flow refresh when nothing is late.
func TestLateCheckCost(t *testing.T) {
	var fx fixture
	cfg := Config{PollInterval: 10 * time.Second, OverlapInterval: time.Hour, FlowsInterval: time.Minute}
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	for range 12 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	h.sim.ResetRequests()
	for range 12 { // two minutes: two flow refreshes
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
		h.mustPoll()
	}
	counts, watch := 0, 0
	for _, r := range h.sim.Requests() {
		switch {
		case r.Path == "/api/v1/flow-runs/count-by-status":
			counts++
		case r.Path == "/api/v1/flow-runs" && r.Query.Get("includeArchived") == "true" && len(r.Query["status"]) > 0:
			watch++
		}
	}
	if counts != 2 || watch != 2 {
		t.Errorf("two flow refreshes sent %d count-by-status and %d watch listings, want 2 and 2", counts, watch)
	}
}

// A run that becomes visible just after an overlap sweep, up to the overlap late, is counted by the
// next sweep, however the sweeps fall: the sweep's window starts at the previous sweep's position
// minus the overlap. With [position − overlap, position] alone (the position trails the clock by
// a poll), a run created 25 s before a sweep and visible 50 s later is invisible to that sweep and
// out of the next one's window (the late-window check is off here; it would find it only at the
// next flow refresh).
func TestOverlapSweepCatchesEveryRunUpToTheOverlapLate(t *testing.T) {
	var fx fixture
	cfg := Config{PollInterval: 10 * time.Second, Overlap: time.Minute, OverlapInterval: time.Minute, LateCheckOff: true, FlowsInterval: time.Hour}
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	// Find a sweep, then create the late run just before the poll that follows it.
	swept := func() time.Time {
		return h.exp.m().projects[fx.project].lastOverlap
	}
	for last := swept(); swept().Equal(last); {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	for range 4 { // 25 s before the next sweep
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	late := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: h.clock.Now().Add(-5 * time.Second),
		VisibleAfter: 50 * time.Second})
	for range 12 { // two minutes of polls, each with a newer run moving the position on
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "SUCCEEDED"); got != 1 {
		t.Errorf("run visible %s late (overlap %s) counted %v times, want 1", h.sim.Run(late).VisibleAt.Sub(h.sim.Run(late).Created), cfg.Overlap, got)
	}
	h.assertTotals()
}

// A status that flaps (hostile round 3, item 2): a late status upload shows a failed run
// RUNNING, then FAILED again, with the same startTime and finishTime, over and over. The same
// execution seen again counts nothing, whichever path sees it: FAILED stays 1, no retry. A real
// retry (new times) after that is still counted.
func TestFlappingStatusIsCountedOnce(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{FlowsInterval: 30 * time.Second, OverlapInterval: 30 * time.Second},
		func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	id := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	for range 10 {
		h.sim.UploadStaleStatus(id, apiclient.StatusRunning)
		h.mustPoll()
		h.sim.UploadStaleStatus(id, apiclient.StatusFailed)
		h.mustPoll()
	}
	failed := func() float64 {
		v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"})
		return v
	}
	retries := func() float64 {
		v, _ := h.value("activepieces_flow_run_retries_total", map[string]string{"flow_id": fx.flowA})
		return v
	}
	if failed() != 1 || retries() != 0 {
		t.Errorf("after 10 flaps: FAILED = %v, retries = %v; want 1 and 0", failed(), retries())
	}
	h.sim.RetryRun(id, simulator.RetryFromFailedStep)
	h.mustPoll()
	h.sim.SetRunStatus(id, apiclient.StatusSucceeded)
	for range 3 {
		h.mustPoll()
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); v != 1 || retries() != 1 || failed() != 1 {
		t.Errorf("a real retry after the flaps: SUCCEEDED = %v, retries = %v, FAILED = %v; want 1, 1, 1", v, retries(), failed())
	}
}
