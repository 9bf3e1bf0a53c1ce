package collector

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

func TestCursorLoopEndsWithAnErrorAndNothingDoubleCounted(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{PageSize: 5}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	for i := 0; i < 12; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
	}
	h.clock.Advance(time.Second)
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs", LoopCursor: true, Times: -1})
	err := h.poll()
	if !errors.Is(err, apiclient.ErrCursorLoop) {
		t.Fatalf("poll error = %v, want a cursor loop", err)
	}
	if v, _ := h.value("activepieces_up", nil); v != 0 {
		t.Errorf("activepieces_up = %v during the loop, want 0", v)
	}
	if v, _ := h.value("activepieces_exporter_poll_failures_total", map[string]string{"project_id": fx.project}); v != 1 {
		t.Errorf("poll failures = %v, want 1", v)
	}
	h.sim.ClearFaults()
	h.mustPoll()
	h.mustPoll()
	h.assertTotals()
	if v, _ := h.value("activepieces_up", nil); v != 1 {
		t.Errorf("activepieces_up = %v after recovery, want 1", v)
	}
}

func TestUnauthorizedGivesUpZeroAndALogLineWithoutTheKey(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.SetAPIKey("sk-rotatedKeyThatTheExporterDoesNotHave00000000000000000000000000")
	err := h.poll()
	if !errors.Is(err, apiclient.ErrAuthentication) {
		t.Fatalf("poll error = %v, want authentication failure", err)
	}
	if v, _ := h.value("activepieces_up", nil); v != 0 {
		t.Errorf("activepieces_up = %v, want 0", v)
	}
	h.poll()
	logs := h.logs.String()
	if !strings.Contains(logs, "AUTHENTICATION") || !strings.Contains(logs, "invalid api key") {
		t.Errorf("log does not say why: %s", logs)
	}
	if strings.Count(logs, `"msg":"poll of project failed"`) != 1 {
		t.Errorf("want exactly one warning for a failure that persists, got logs:\n%s", logs)
	}
	if strings.Contains(logs, simulator.DefaultAPIKey) || strings.Contains(err.Error(), simulator.DefaultAPIKey) {
		t.Error("the API key leaked into logs or errors")
	}
	// The series of the project survive a failing poll.
	if _, ok := h.value("activepieces_flow_info", map[string]string{"flow_id": fx.flowA}); !ok {
		t.Error("flow series vanished while the API refused the key")
	}
}

func TestDeletedFlowAndProjectLoseTheirSeries(t *testing.T) {
	var fx fixture
	var other string
	h := newHarness(t, simulator.Options{}, Config{FlowsInterval: time.Minute, ProjectsInterval: time.Minute}, func(h *harness) {
		fx = seedFixture(h)
		other = h.sim.AddProject("Support")
		h.sim.AddFlow(other, "", "Triage")
	})
	h.mustPoll()
	h.sim.DeleteFlow(fx.flowB)
	h.sim.DeleteProject(other)
	h.mustPoll()
	h.mustPoll()
	text := h.text()
	for _, gone := range []string{fx.flowB, other} {
		if strings.Contains(text, gone) {
			t.Errorf("series of deleted %s are still served", gone)
		}
	}
	if _, ok := h.value("activepieces_flow_info", map[string]string{"flow_id": fx.flowA}); !ok {
		t.Error("the remaining flow lost its series")
	}
}

func TestRenamedFlowKeepsItsCountsUnderTheNewName(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{FlowsInterval: time.Minute}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	h.sim.RenameFlow(fx.flowA, "Sync CRM leads v2")
	h.mustPoll()
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "flow_name": "Sync CRM leads v2", "status": "FAILED"}); v != 1 {
		t.Errorf("FAILED under the new name = %v, want 1", v)
	}
	if strings.Contains(h.text(), `value:"Sync CRM leads"`) {
		t.Error("series with the old name are still served")
	}
}

// A run that becomes visible after newer ones were listed is caught by the overlap sweep: through
// count-by-status, or by re-reading the window on a server without it.
func TestLateCommitIsCaughtByTheOverlapSweep(t *testing.T) {
	for _, withCount := range []bool{true, false} {
		t.Run(fmt.Sprintf("count-by-status=%v", withCount), func(t *testing.T) {
			var fx fixture
			h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
			if !withCount {
				h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs/count-by-status", Status: 404, Times: -1,
					Body: `{"statusCode":404,"error":"Not Found","message":"Route not found"}`})
			}
			h.mustPoll()
			h.mustPoll()
			late := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Hidden: true})
			h.clock.Advance(time.Second)
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded})
			h.mustPoll() // lists the newer run; head moves past the hidden one
			h.sim.Reveal(late)
			h.mustPoll()
			h.mustPoll()
			h.assertTotals()
			if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
				t.Errorf("late FAILED run counted %v times, want 1", v)
			}
			if n := h.sim.CountRequests("/api/v1/flow-runs/count-by-status"); !withCount && n != 1 {
				t.Errorf("count-by-status asked %d times after a 404, want once", n)
			}
		})
	}
}

func TestPageCapLeavesABacklogThatLaterPollsDrain(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{PageSize: 10, MaxPages: 2}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	for i := 0; i < 75; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: h.clock.Now().Add(time.Duration(i) * time.Second)})
	}
	h.clock.Advance(2 * time.Minute)
	h.mustPoll()
	if v, _ := h.value("activepieces_exporter_poll_page_cap_hits_total", map[string]string{"project_id": fx.project}); v != 1 {
		t.Errorf("cap hits = %v, want 1", v)
	}
	if !strings.Contains(h.logs.String(), "page cap reached") {
		t.Error("no log line about the page cap")
	}
	for i := 0; i < 5; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusFailed})
		h.mustPoll()
	}
	h.assertTotals()
	logs := h.logs.String()
	if strings.Count(logs, "page cap reached") != 1 || strings.Count(logs, "backlog read") != 1 {
		t.Errorf("want one line when the backlog appears and one when it is gone:\n%s", logs)
	}
}

func TestServerIgnoringFlowRunIDsFallsBackToGetByID(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{IgnoreFlowRunIDs: true}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	r := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	for i := 0; i < 20; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
	}
	h.mustPoll()
	h.clock.Advance(10 * time.Minute)
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
	h.mustPoll()
	h.mustPoll() // the running run is now outside every time-range listing
	h.sim.SetRunStatus(r, apiclient.StatusSucceeded)
	h.mustPoll()
	if h.sim.CountRequests("/api/v1/flow-runs/"+r) == 0 {
		t.Error("no GET by id after the server ignored flowRunIds")
	}
	h.assertTotals()
	if !strings.Contains(h.logs.String(), "ignores the flowRunIds filter") {
		t.Error("no log line about the ignored filter")
	}
}

func TestRunPausedBeforeStartIsTrackedAndCountedWhenItFinishes(t *testing.T) {
	var fx fixture
	var paused string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		fx = seedFixture(h)
		paused = h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusPaused, Created: epoch.Add(-72 * time.Hour)})
	})
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_active_runs", map[string]string{"flow_id": fx.flowA, "status": "PAUSED"}); v != 1 {
		t.Fatalf("PAUSED runs = %v, want 1", v)
	}
	h.sim.SetRunStatus(paused, apiclient.StatusSucceeded)
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); v != 1 {
		t.Errorf("SUCCEEDED = %v, want 1 for the resumed run", v)
	}
	if v, _ := h.value("activepieces_flow_active_runs", map[string]string{"flow_id": fx.flowA, "status": "PAUSED"}); v != 0 {
		t.Errorf("PAUSED runs = %v, want 0", v)
	}
}

func TestOneFailingProjectDoesNotStopTheOthers(t *testing.T) {
	var fx fixture
	var other, otherFlow string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		fx = seedFixture(h)
		other = h.sim.AddProject("Support")
		otherFlow = h.sim.AddFlow(other, "", "Triage")
	})
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: otherFlow, Status: apiclient.StatusFailed})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	// The first run listing of this poll (one project's) answers 500; the other project's succeeds.
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs", Status: 500, Body: `{"statusCode":500,"code":"ERR_X","error":"Internal Server Error","message":"boom"}`, Times: 1})
	if err := h.poll(); err == nil {
		t.Fatal("poll succeeded despite a 500")
	}
	got := h.counts()
	if got[simulator.Key{FlowID: otherFlow, Status: apiclient.StatusFailed}]+got[simulator.Key{FlowID: fx.flowA, Status: apiclient.StatusFailed}] != 1 {
		t.Errorf("want exactly the healthy project's run counted, got %v", got)
	}
	h.mustPoll()
	h.assertTotals()
}

func TestRunFromTheFutureDoesNotFreezeThePollPosition(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(365 * 24 * time.Hour)})
	h.mustPoll()
	for i := 0; i < 3; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowB, "status": "SUCCEEDED"}); v != 3 {
		t.Errorf("runs after a future-dated one: counted %v of 3", v)
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
		t.Errorf("the future-dated run itself: counted %v, want 1 (once)", v)
	}
}

func TestTrackingIsBounded(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{PauseLimit: time.Hour, MaxTrackedRuns: 3}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusPaused})
	h.mustPoll()
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 1 {
		t.Fatalf("tracked = %v, want 1", v)
	}
	h.clock.Advance(2 * time.Hour) // beyond the pause limit: it will never resume
	h.mustPoll()
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 0 {
		t.Errorf("tracked = %v after the pause limit, want 0", v)
	}
	for i := 0; i < 5; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusRunning})
	}
	h.mustPoll()
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 3 {
		t.Errorf("tracked = %v, want the cap of 3", v)
	}
	if v, _ := h.value("activepieces_exporter_tracked_runs_dropped_total", nil); v != 2 {
		t.Errorf("tracked_runs_dropped_total = %v, want 2", v)
	}
}

// A flow created between two requests of one poll, whose run fails at once, is listed and its
// run counted: in a quiet poll (created just after the census), and in one that lists new runs
// (just after that listing).
func TestRunOfAFlowCreatedDuringAPollIsCounted(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		active     bool
	}{{"quiet poll", "/api/v1/flow-runs/count-by-status", false}, {"active poll", "/api/v1/flow-runs", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var fx fixture
			h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
			h.mustPoll()
			h.mustPoll()
			h.clock.Advance(5 * time.Minute) // the flow refresh is due in the next poll
			if tc.active {
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA})
				h.mustPoll()
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA})
			}
			var newFlow string
			h.sim.InjectFault(simulator.Fault{Path: tc.path, Before: func() {
				// Between the exporter's requests of one poll: a flow is created and fails at once.
				newFlow = h.sim.AddFlow(fx.project, "", "Created mid-poll")
				h.sim.AddRun(simulator.RunSpec{FlowID: newFlow, Status: apiclient.StatusFailed})
			}})
			h.mustPoll()
			h.mustPoll()
			h.mustPoll()
			if newFlow == "" {
				t.Fatal("the poll sent no request the fault could take")
			}
			if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": newFlow, "status": "FAILED"}); v != 1 {
				t.Errorf("FAILED run of the flow created mid-poll counted %v times, want 1", v)
			}
			h.assertTotals()
		})
	}
}

func TestReadiness(t *testing.T) {
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { seedFixture(h) })
	if err := h.exp.Ready(); err == nil || err.Error() != "first poll not finished" {
		t.Errorf("before the first poll: %v", err)
	}
	h.setKey("sk-wrong")
	h.poll()
	if err := h.exp.Ready(); err == nil || err.Error() != "no poll has succeeded yet" {
		t.Errorf("after a failed first poll: %v", err)
	}
	h.setKey(simulator.DefaultAPIKey)
	h.mustPoll()
	if err := h.exp.Ready(); err != nil {
		t.Errorf("after a good poll: %v", err)
	}
	h.clock.Advance(91 * time.Second)
	if err := h.exp.Ready(); err == nil || err.Error() != "last successful poll was 1m31s ago" {
		t.Errorf("three intervals later: %v", err)
	}
}

func TestServerFromBeforeQueuedExisted(t *testing.T) {
	var fx fixture
	var running string
	h := newHarness(t, simulator.Options{OldServer: true, NoQueued: true}, Config{}, func(h *harness) {
		fx = seedFixture(h)
		running = h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning, Created: epoch.Add(-48 * time.Hour)})
	})
	h.mustPoll() // the QUEUED filter is a 400: the in-flight listing goes on without it
	if v, _ := h.value("activepieces_flow_active_runs", map[string]string{"flow_id": fx.flowA, "status": "RUNNING"}); v != 1 {
		t.Errorf("RUNNING runs = %v, want the one started two days ago", v)
	}
	h.sim.SetRunStatus(running, "STOPPED")
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "STOPPED"}); v != 1 {
		t.Errorf("STOPPED = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_up", nil); v != 1 {
		t.Errorf("up = %v", v)
	}
}

// A server whose clock is 20 minutes ahead of the exporter's: history is still told from new runs
// on the server's clock, and its creation times (all "in the future" for the exporter) still move
// the poll position.
func TestServerClockAhead(t *testing.T) {
	var fx fixture
	skew := 20 * time.Minute
	h := newHarness(t, simulator.Options{ClockSkew: skew}, Config{}, func(h *harness) {
		fx = seedFixture(h)
		// Finished a minute before the exporter starts, on the server's clock: history.
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: epoch.Add(skew - time.Minute)})
	})
	h.mustPoll()
	h.mustPoll()
	for range 3 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 0 {
		t.Errorf("a run finished before the start (server clock) was counted: %v", v)
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowB, "status": "SUCCEEDED"}); v != 3 {
		t.Errorf("SUCCEEDED = %v, want 3", v)
	}
	if n := strings.Count(h.logs.String(), "the server's clock differs from ours"); n != 1 || !strings.Contains(h.logs.String(), `"offset":1200500000000`) {
		t.Errorf("the 20 min offset logged %d times, want once:\n%s", n, h.logs.String())
	}
	last := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
	h.mustPoll()
	if head := h.exp.m().projects[fx.project].head; !head.Equal(h.sim.Run(last).Created) {
		t.Errorf("poll position %v, want the newest run's creation %v", head, h.sim.Run(last).Created)
	}
}

// A name of 30 KiB is cut to MaxLabelBytes in every label, at a UTF-8 boundary.
func TestHugeNamesAreCutInLabels(t *testing.T) {
	huge := strings.Repeat("é", 15*1024) // 30 KiB of two-byte runes (a project or folder item may be 64 KiB)
	var flow string
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		p := h.sim.AddProject(huge)
		folder := h.sim.AddFolder(p, huge)
		flow = h.sim.AddFlow(p, folder, huge)
	})
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: flow, Status: apiclient.StatusFailed})
	h.mustPoll()
	h.mustPoll()
	text := string(h.exp.Snapshot().Text)
	if len(text) > 64<<10 {
		t.Errorf("/metrics is %d bytes with one flow", len(text))
	}
	want := strings.Repeat("é", (MaxLabelBytes-len("…"))/2) + "…"
	for _, l := range []string{`flow_name="` + want + `"`, `project_name="` + want + `"`, `folder_name="` + want + `"`} {
		if !strings.Contains(text, l) {
			t.Errorf("no label %.40s… of %d bytes", l, len(l))
		}
	}
	if !utf8.ValidString(text) {
		t.Error("a cut label is not valid UTF-8")
	}
	h.lint()
}

// A poll cancelled by shutdown is not a failed one: no warning, no poll failure counted,
// activepieces_up unchanged, and the state file saved without a failure.
func TestPollCancelledByShutdownIsNotAFailure(t *testing.T) {
	cfg := Config{StateFile: filepath.Join(t.TempDir(), "state.json"), ServerURL: "sim"}
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { seedFixture(h) })
	h.mustPoll()
	before := h.logs.String()
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs", Delay: 5 * time.Second, Times: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.exp.PollOnce(ctx) }()
	testkit.WaitFor(t, 5*time.Second, "the poll waiting on the server", func() bool {
		return h.sim.CountRequests("/api/v1/flow-runs") > 1
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the poll did not stop on cancellation")
	}
	logs := strings.TrimPrefix(h.logs.String(), before)
	if strings.Contains(logs, `"level":"WARN"`) {
		t.Errorf("a cancelled poll logged a warning:\n%s", logs)
	}
	if v, _ := h.value("activepieces_exporter_poll_failures_total", nil); v != 0 {
		t.Errorf("poll failures = %v", v)
	}
	if v, _ := h.value("activepieces_up", nil); v != 1 {
		t.Errorf("up = %v after a cancelled poll, want 1 (unchanged)", v)
	}
}

// A poll that runs out of time (more projects than the rate limit allows in --poll.timeout) is
// no failure: the projects it did not reach go first in the next poll, so every project is
// polled in turn (before, the same first projects were polled every time and the others failed).
func TestPollOutOfTimeReachesEveryProjectInTurn(t *testing.T) {
	var projects []string
	h := newHarness(t, simulator.Options{}, Config{Concurrency: 1, PollTimeout: 500 * time.Millisecond}, func(h *harness) {
		for i := range 30 {
			projects = append(projects, h.sim.AddProject(fmt.Sprintf("P%02d", i)))
		}
	})
	// Every request takes 20 ms: a project's first poll (several requests) about 120 ms, a later
	// one 20–40 ms. The 30 projects' later polls alone need more than the poll's 500 ms, so in
	// a fixed order the last ones would never be reached.
	h.sim.InjectFault(simulator.Fault{Delay: 20 * time.Millisecond, Times: -1, Before: func() {}})
	_ = h.poll()
	if err := h.exp.Ready(); err == nil || !strings.Contains(err.Error(), "of 30 projects not polled yet") {
		t.Errorf("ready after a poll that reached only some projects: %v", err)
	}
	for range 14 {
		_ = h.poll()
	}
	for _, p := range projects {
		if _, ok := h.value("activepieces_exporter_last_poll_success_timestamp_seconds", map[string]string{"project_id": p}); !ok {
			t.Errorf("project %s was never polled", p)
		}
	}
	if v, _ := h.value("activepieces_exporter_poll_failures_total", nil); v != 0 {
		t.Errorf("poll failures = %v: running out of time is not a failure", v)
	}
	if strings.Contains(h.logs.String(), "poll of project failed") {
		t.Error("a project cut short by the poll's time was logged as failed")
	}
	if n := strings.Count(h.logs.String(), "a poll ran out of time"); n != 1 {
		t.Errorf("running out of time was logged %d times, want once", n)
	}
}

// One far-future finishTime (hostile round 3, item 4): a FAILED run finishing in 2300 must not
// stay the flow's latest run for good; its implausible time is dropped (the run is counted
// without it), later runs take over the gauges, and no timestamp is exported negative.
func TestFarFutureFinishTimeDoesNotFreezeTheFlow(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Duration: 275 * 365 * 24 * time.Hour})
	h.mustPoll()
	for range 7 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded})
		h.mustPoll()
	}
	if v, _ := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); v != 1 {
		t.Errorf("last_run_status SUCCEEDED = %v after 7 successes: a finish in 2300 froze the flow", v)
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
		t.Errorf("FAILED = %v, want 1: the run is counted, without its finish time", v)
	}
	for _, name := range []string{"activepieces_flow_last_run_finish_timestamp_seconds", "activepieces_flow_last_failure_timestamp_seconds", "activepieces_flow_last_success_timestamp_seconds"} {
		for _, m := range h.family(name) {
			if v := m.GetGauge().GetValue(); v < 1e9 || v > 1e10 {
				t.Errorf("%s = %v: not a plausible time", name, v)
			}
		}
	}
	if ts(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)) < 1e10 {
		t.Errorf("ts(2300-01-01) = %v: overflowed", ts(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
}

// Unknown statuses pass through, but a flow counts at most MaxUnknownStatuses of them apart
// (hostile round 3, item 5): 59 distinct ones make 8 series and OTHER_UNKNOWN, and every run is
// still counted.
func TestUnknownStatusesAreBoundedPerFlow(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	for i := range 59 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.RunStatus(fmt.Sprintf("NEW_STATUS_%02d", i))})
	}
	h.mustPoll()
	h.mustPoll()
	var series, total float64
	for _, m := range h.family("activepieces_flow_runs_total") {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["flow_id"] != fx.flowA || !strings.HasPrefix(labels["status"], "NEW_STATUS_") && labels["status"] != string(OtherStatus) {
			continue
		}
		series++
		total += m.GetCounter().GetValue()
	}
	if series != MaxUnknownStatuses+1 || total != 59 {
		t.Errorf("%v series of unknown statuses holding %v runs; want %d and 59", series, total, MaxUnknownStatuses+1)
	}
}
