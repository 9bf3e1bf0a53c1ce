package collector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

type fixture struct {
	project, folder, flowA, flowB string
}

func seedFixture(h *harness) fixture {
	p := h.sim.AddProject("Sales Ops")
	folder := h.sim.AddFolder(p, "Production")
	return fixture{project: p, folder: folder,
		flowA: h.sim.AddFlow(p, folder, "Sync CRM leads"),
		flowB: h.sim.AddFlow(p, "", "Nightly invoice export")}
}

func TestHistoryIsNotCountedButSetsLastRun(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		fx = seedFixture(h)
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: epoch.Add(-10 * time.Minute)})
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: epoch.Add(-20 * time.Minute)})
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusTimeout, Created: epoch.Add(-2 * time.Hour)}) // beyond lookback
	})
	h.mustPoll()
	if got := h.counts(); len(got) != 0 {
		t.Fatalf("history was counted: %v", got)
	}
	if v, ok := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); !ok || v != 1 {
		t.Errorf("last_run_status FAILED = %v, %v; want 1", v, ok)
	}
	if v, _ := h.value("activepieces_flow_consecutive_failures", map[string]string{"flow_id": fx.flowA}); v != 1 {
		t.Errorf("consecutive_failures = %v, want 1", v)
	}
	if _, ok := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowB}); ok {
		t.Error("flow B has a last run status from beyond the look-back")
	}
	// All eight terminal statuses are served from zero for every flow.
	for _, s := range apiclient.TerminalStatuses {
		if v, ok := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowB, "status": string(s)}); !ok || v != 0 {
			t.Errorf("runs_total{status=%s} = %v, %v; want 0 served", s, v, ok)
		}
	}
	h.lint()
}

func TestCountsExactlyOnceAcrossPollsPagesAndTransitions(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{PageSize: 7}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	running := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	queued := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusQueued})
	for i := 0; i < 30; i++ { // several pages, some sharing a millisecond
		st := apiclient.StatusSucceeded
		if i%7 == 3 {
			st = apiclient.StatusFailed
		}
		h.sim.AddRun(simulator.RunSpec{FlowID: []string{fx.flowA, fx.flowB}[i%2], Status: st, Created: h.clock.Now().Add(time.Duration(i/3) * time.Millisecond)})
	}
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_active_runs", map[string]string{"flow_id": fx.flowA, "status": "RUNNING"}); v != 1 {
		t.Errorf("active RUNNING = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 2 {
		t.Errorf("tracked runs = %v, want 2", v)
	}
	h.sim.SetRunStatus(queued, apiclient.StatusRunning)
	h.mustPoll()
	h.sim.SetRunStatus(running, apiclient.StatusSucceeded)
	h.sim.SetRunStatus(queued, apiclient.StatusTimeout)
	for i := 0; i < 6; i++ { // polls that re-read the overlap window
		h.mustPoll()
		h.assertTotals()
	}
	if v, _ := h.value("activepieces_exporter_tracked_runs", nil); v != 0 {
		t.Errorf("tracked runs = %v after they finished, want 0", v)
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowB, "status": "TIMEOUT"}); v != 1 {
		t.Errorf("TIMEOUT count = %v, want 1", v)
	}
	h.lint()
}

func TestBurstBetweenTwoPollsIsFullyCounted(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll() // flows are no longer new
	h.sim.ResetRequests()
	for i := 0; i < 250; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: h.clock.Now().Add(time.Duration(i) * 10 * time.Millisecond)})
	}
	h.clock.Advance(5 * time.Second)
	h.mustPoll()
	h.assertTotals()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); v != 250 {
		t.Fatalf("counted %v of 250", v)
	}
	// ⌈250/100⌉ pages of new runs; and one count of the overlap window below the first poll's
	// position (a project that had no runs since: only in the first minutes after start-up, for
	// late rows of the history).
	if n, c := h.sim.CountRequests("/api/v1/flow-runs"), h.sim.CountRequests("/api/v1/flow-runs/count-by-status"); n != 3 || c != 1 {
		t.Errorf("burst cost %d run listings and %d counts, want 3 and 1", n, c)
	}
	if v, ok := h.value("activepieces_flow_run_duration_seconds", map[string]string{"flow_id": fx.flowA}); !ok || v != 250 {
		t.Errorf("duration histogram count = %v, want 250", v)
	}
}

func TestSteadyStateCostsOneRequestPerProject(t *testing.T) {
	h := newHarness(t, simulator.Options{}, Config{OverlapInterval: time.Hour}, func(h *harness) {
		seedFixture(h)
		p2 := h.sim.AddProject("Support")
		h.sim.AddFlow(p2, "", "Triage")
	})
	h.mustPoll()
	h.mustPoll() // settles the census (census.go)
	h.sim.ResetRequests()
	for i := 0; i < 5; i++ {
		h.mustPoll()
	}
	reqs := h.sim.Requests()
	if len(reqs) != 10 {
		t.Errorf("5 idle polls of 2 projects sent %d requests, want 10: %v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if r.Path != "/api/v1/flow-runs/count-by-status" || r.Query.Get("createdAfter") == "" || r.Query.Get("createdBefore") == "" {
			t.Errorf("unexpected request %s %v", r.Path, r.Query)
		}
	}
}

func TestNewFlowServesZeroBeforeItsFirstFailure(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	newFlow := h.sim.AddFlow(fx.project, "", "Brand new flow")
	h.sim.AddRun(simulator.RunSpec{FlowID: newFlow, Status: apiclient.StatusFailed})
	h.mustPoll()
	v, ok := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": newFlow, "status": "FAILED"})
	if !ok || v != 0 {
		t.Fatalf("first poll after the flow appeared: FAILED = %v (served %v); want 0 served first", v, ok)
	}
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": newFlow, "status": "FAILED"}); v != 1 {
		t.Fatalf("second poll: FAILED = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_flow_consecutive_failures", map[string]string{"flow_id": newFlow}); v != 1 {
		t.Errorf("consecutive failures = %v, want 1", v)
	}
	h.assertTotals()
}

// A new flow's first runs wait until a scrape has served its zero series, however long that
// takes (scrape interval longer than the poll interval), but not forever.
func TestNewFlowWaitsForAScrapeOfItsZero(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.noScrape = true
	newFlow := h.sim.AddFlow(fx.project, "", "Brand new flow")
	h.sim.AddRun(simulator.RunSpec{FlowID: newFlow, Status: apiclient.StatusFailed})
	for range 3 {
		h.mustPoll()
	}
	served := h.exp.Snapshot() // Prometheus' first scrape since the flow appeared
	h.exp.Served(served.Poll)
	if !strings.Contains(string(served.Text), `flow_id="`+newFlow+`",flow_name="Brand new flow",project_id="`+fx.project+`",status="FAILED"} 0`) {
		t.Fatal("the first scrape does not serve the new flow's FAILED counter at 0")
	}
	h.mustPoll()
	if !strings.Contains(string(h.exp.Snapshot().Text), `flow_id="`+newFlow+`",flow_name="Brand new flow",project_id="`+fx.project+`",status="FAILED"} 1`) {
		t.Fatal("the poll after that scrape did not count the run")
	}

	// Nobody scrapes at all: the runs are counted after maxDeferPolls polls anyway.
	other := h.sim.AddFlow(fx.project, "", "Unwatched flow")
	h.sim.AddRun(simulator.RunSpec{FlowID: other, Status: apiclient.StatusSucceeded})
	// Many polls in a short time (Run's ticks) are no reason to give up waiting for a scrape.
	for range 3 * maxDeferPolls {
		h.clock.Advance(h.exp.cfg.PollInterval / 10)
		if err := h.exp.PollOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(string(h.exp.Snapshot().Text), `flow_id="`+other+`",flow_name="Unwatched flow",project_id="`+fx.project+`",status="SUCCEEDED"} 1`) {
		t.Error("the new flow's run was counted after 3 intervals of frequent polls, with its zero never scraped")
	}
	for range maxDeferPolls + 1 {
		h.mustPoll()
	}
	if !strings.Contains(string(h.exp.Snapshot().Text), `flow_id="`+other+`",flow_name="Unwatched flow",project_id="`+fx.project+`",status="SUCCEEDED"} 1`) {
		t.Error("an unscraped exporter never counted the new flow's run")
	}
}

// Under Run, a new flow's first runs are applied as soon as a scrape has been given its zero
// series, not at the project's next poll: the first failure is one scrape interval behind a known
// flow's, not one poll interval (the alert-latency target). Run here polls once an hour, so only
// the scrape can have applied it.
func TestNewFlowIsCountedOnceItsZeroIsServed(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	project := sim.AddProject("P")
	sim.AddFlow(project, "", "Known flow")
	exp, stop := runAgainst(t, sim, Config{PollInterval: time.Hour})
	defer stop()
	testkit.WaitFor(t, 5*time.Second, "ready", func() bool { return exp.Ready() == nil })

	newFlow := sim.AddFlow(project, "", "Brand new flow")
	sim.AddRun(simulator.RunSpec{FlowID: newFlow, Status: apiclient.StatusFailed})
	if err := exp.PollOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	series := `flow_id="` + newFlow + `",flow_name="Brand new flow",project_id="` + project + `",status="FAILED"} `
	zero := exp.Snapshot()
	if !strings.Contains(string(zero.Text), series+"0") {
		t.Fatal("the poll that found the flow does not serve its FAILED counter at 0")
	}
	exp.Served(zero.Poll)
	testkit.WaitFor(t, 5*time.Second, "the run counted after the scrape of the zero", func() bool {
		return strings.Contains(string(exp.Snapshot().Text), series+"1")
	})
	counted := exp.Snapshot()
	if counted.Poll != zero.Poll+1 {
		t.Errorf("the release rendered generation %d after %d: want the next one", counted.Poll, zero.Poll)
	}
	// Serving that snapshot releases nothing more: no render.
	exp.Served(counted.Poll)
	time.Sleep(50 * time.Millisecond)
	if now := exp.Snapshot().Poll; now != counted.Poll {
		t.Errorf("a scrape with nothing to release rendered again (generation %d → %d)", counted.Poll, now)
	}
}

func TestUnknownStatusIsCountedUnderItsOwnValue(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{OldServer: true}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: "STOPPED"})
	h.mustPoll()
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "STOPPED"}); v != 1 {
		t.Errorf("STOPPED count = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "STOPPED"}); v != 1 {
		t.Errorf("last_run_status{STOPPED} = %v, want 1", v)
	}
	if v, ok := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "SUCCEEDED"}); !ok || v != 0 {
		t.Errorf("last_run_status{SUCCEEDED} = %v, %v; want 0 beside the unknown one", v, ok)
	}
	h.assertTotals()
	h.lint()
}

// scenario plays the same runs on any simulator mode and returns the flow metrics it produced.
func scenario(t *testing.T, opts simulator.Options) string {
	var fx fixture
	opts.Seed = 42
	h := newHarness(t, opts, Config{PageSize: 5}, func(h *harness) {
		fx = seedFixture(h)
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: epoch.Add(-time.Minute), Steps: 3})
	})
	h.mustPoll()
	h.mustPoll()
	base := h.clock.Now()
	// 23 runs, many sharing a second, so pages end inside a second.
	for i := 0; i < 23; i++ {
		st := []apiclient.RunStatus{apiclient.StatusSucceeded, apiclient.StatusFailed, apiclient.StatusSucceeded, apiclient.StatusTimeout}[i%4]
		h.sim.AddRun(simulator.RunSpec{FlowID: []string{fx.flowA, fx.flowB}[i%2], Status: st, Steps: i % 5,
			Created: base.Add(time.Duration(i*137) * time.Millisecond), Duration: time.Duration(i) * 700 * time.Millisecond})
	}
	r := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusRunning, Created: base.Add(5 * time.Second)})
	h.clock.Advance(10 * time.Second)
	h.mustPoll()
	h.sim.SetRunStatus(r, apiclient.StatusFailed)
	h.mustPoll()
	h.mustPoll()
	h.assertTotals()
	var b strings.Builder
	for _, name := range []string{"activepieces_flow_runs_total", "activepieces_flow_run_duration_seconds",
		"activepieces_flow_run_tasks_total", "activepieces_flow_last_run_status", "activepieces_flow_last_run_duration_seconds",
		"activepieces_flow_last_run_tasks", "activepieces_flow_consecutive_failures", "activepieces_flow_last_success_timestamp_seconds"} {
		for _, m := range h.family(name) {
			fmt.Fprintf(&b, "%s %s\n", name, m.String())
		}
	}
	return b.String()
}

func TestOldNewAndRawServersGiveTheSameMetrics(t *testing.T) {
	want := scenario(t, simulator.Options{})
	if !strings.Contains(want, "FAILED") {
		t.Fatal("scenario produced no FAILED runs")
	}
	for name, opts := range map[string]simulator.Options{
		"raw":     {Raw: true},
		"old":     {OldServer: true},
		"old raw": {OldServer: true, Raw: true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := scenario(t, opts); got != want {
				t.Errorf("metrics differ from the new strict server:\n--- new\n%s\n--- %s\n%s", want, name, got)
			}
		})
	}
}

func TestFlowFilterAndCardinalityCap(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{Flows: []string{"Sync CRM leads"}}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusFailed})
	h.mustPoll()
	if strings.Contains(h.text(), fx.flowB) {
		t.Error("a flow outside --activepieces.flow is exported")
	}
	if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
		t.Errorf("filtered-in flow FAILED = %v, want 1", v)
	}

	h2 := newHarness(t, simulator.Options{}, Config{MaxFlows: 1}, func(h *harness) { fx = seedFixture(h) })
	h2.mustPoll()
	h2.mustPoll()
	if n := len(h2.family("activepieces_flow_info")); n != 1 {
		t.Errorf("%d flows exported with --metrics.max-flows=1", n)
	}
	if v, _ := h2.value("activepieces_exporter_flows_dropped", nil); v != 1 {
		t.Errorf("flows_dropped = %v, want 1", v)
	}
	if n := strings.Count(h2.logs.String(), "max-flows reached"); n != 1 {
		t.Errorf("the dropped flow was logged %d times, want once", n)
	}
}

// Folders are listed only for projects whose flows are in any (most small projects have none),
// and there only when a flow is in a folder not known yet, or every projects interval (for
// renames): a flow refresh otherwise costs the flows listing alone.
func TestFlowRefreshListsFoldersOnlyWhenFlowsUseThem(t *testing.T) {
	var withFolder, without string
	var sim *simulator.Server
	h := newHarness(t, simulator.Options{}, Config{OverlapInterval: time.Hour}, func(h *harness) {
		fx := seedFixture(h) // flow A is in a folder
		withFolder = fx.project
		without = h.sim.AddProject("Support")
		h.sim.AddFlow(without, "", "Triage")
		sim = h.sim
	})
	folderListings := func(advance time.Duration) map[string]int {
		h.sim.ResetRequests()
		h.clock.Advance(advance)
		h.mustPoll()
		folders := map[string]int{}
		for _, r := range h.sim.Requests() {
			if r.Path == "/api/v1/folders" {
				folders[r.Query.Get("projectId")]++
			}
		}
		return folders
	}
	if got := folderListings(0); got[withFolder] != 1 || got[without] != 0 {
		t.Errorf("folder listings by project at the first poll: %v; want 1 for %s (a flow in a folder), 0 for %s", got, withFolder, without)
	}
	if got := folderListings(h.exp.cfg.FlowsInterval); len(got) != 0 {
		t.Errorf("folder listings at a flow refresh with every folder known: %v, want none", got)
	}
	folder := sim.AddFolder(withFolder, "Staging")
	sim.AddFlow(withFolder, folder, "Nightly export")
	if got := folderListings(h.exp.cfg.FlowsInterval); got[withFolder] != 1 {
		t.Errorf("folder listings at a flow refresh that finds a flow in a new folder: %v, want 1 for %s", got, withFolder)
	}
	if got := folderListings(h.exp.cfg.ProjectsInterval); got[withFolder] != 1 || got[without] != 0 {
		t.Errorf("folder listings a projects interval later: %v, want 1 for %s", got, withFolder)
	}
	if v, ok := h.value("activepieces_folder_info", map[string]string{"project_id": withFolder, "folder_name": "Staging"}); !ok || v != 1 {
		t.Errorf("folder_info of the new folder = %v, %v", v, ok)
	}
}
