package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// TestAPICost counts, through the simulator, what the exporter costs the API (README,
// Performance): steady state, a burst, and the overlap sweep at 10 runs/s.
func TestAPICost(t *testing.T) {
	t.Run("steady state: 1 census per project", apiCostSteadyState)
	t.Run("burst of 1000 new runs: ceil(1000/100)+1", apiCostBurst)
	t.Run("overlap sweep per hour at 10 runs/s", apiCostOverlapSweep)
	t.Run("flow refresh: retry watch", apiCostFlowRefresh)
	t.Run("5,000 runs in flight over 20 projects: 1 request per project per poll", apiCostManyInFlight)
}

// apiCostSteadyState: with 2 projects and 250 runs in flight, a poll in which nothing moves costs
// one census per project; one in which a run in flight finishes costs its project an in-flight
// listing more, and the run is counted in that poll.
func apiCostSteadyState(t *testing.T) {
	var fx fixture
	var paused []string
	h := newHarness(t, simulator.Options{}, Config{OverlapInterval: 24 * time.Hour, FlowsInterval: 24 * time.Hour}, func(h *harness) {
		fx = seedFixture(h)
		p2 := h.sim.AddProject("Support")
		h.sim.AddFlow(p2, "", "Triage")
	})
	h.mustPoll()
	for range 250 {
		paused = append(paused, h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusPaused}))
	}
	h.mustPoll()
	h.clock.Advance(10 * time.Minute)
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded}) // moves the head past them
	h.mustPoll()
	h.mustPoll() // lists new runs once more: the last poll found one
	h.sim.ResetRequests()
	for range 10 {
		h.mustPoll()
	}
	perPoll := float64(len(h.sim.Requests())) / 10
	t.Logf("2 projects, 250 runs in flight, nothing moving: %.1f requests per poll", perPoll)
	if perPoll != 2 {
		t.Errorf("%.1f requests per poll, want one census per project (2): %v", perPoll, h.sim.Requests())
	}
	h.sim.SetRunStatus(paused[7], apiclient.StatusSucceeded)
	h.sim.ResetRequests()
	h.mustPoll()
	if n := len(h.sim.Requests()); n != 4 {
		t.Errorf("a run in flight finished: %d requests, want 4 (2 censuses, the in-flight listing, the re-read of the run that left it): %v", n, h.sim.Requests())
	}
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "SUCCEEDED"); got != 1 {
		t.Errorf("the finished run counted %v times in the poll that saw it, want 1", got)
	}
}

// apiCostBurst: a burst of 1000 new runs costs ceil(1000/100)+1 requests.
func apiCostBurst(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{OverlapInterval: 24 * time.Hour}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA})
	h.mustPoll()
	for i := range 1000 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
	}
	h.sim.ResetRequests()
	h.mustPoll()
	n := len(h.sim.Requests())
	t.Logf("burst of 1000 runs: %d requests", n)
	if n != 11 {
		t.Errorf("%d requests, want 11", n)
	}
	h.assertTotals()
}

// apiCostOverlapSweep: over an hour of 30 s polls at 10 runs/s, the overlap sweep costs one
// count-by-status per sweep.
func apiCostOverlapSweep(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{FlowsInterval: 24 * time.Hour}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.sim.ResetRequests()
	for range 120 { // an hour of 30 s polls
		base := h.clock.Now()
		for i := range 300 {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Created: base.Add(time.Duration(i) * 100 * time.Millisecond)})
		}
		h.mustPoll()
	}
	sweep, fresh := 0, 0
	for _, r := range h.sim.Requests() {
		if r.Query.Get("createdBefore") != "" {
			sweep++
		} else {
			fresh++
		}
	}
	t.Logf("one hour at 10 runs/s (36,000 runs): %d listing requests for new runs, %d for the overlap sweep", fresh, sweep)
	if sweep > 61 {
		t.Errorf("overlap sweep cost %d requests an hour, want one count-by-status per sweep (60)", sweep)
	}
	h.assertTotals()
}

// apiCostFlowRefresh: on a quiet project, the failed runs in the retry window cost one watch
// request per bulkPageSize of them every two flow intervals (the backstop: census.go); the late
// window costs nothing apart (each poll's census covers it).
func apiCostFlowRefresh(t *testing.T) {
	for _, failed := range []int{10, 1500} {
		var fx fixture
		h := newHarness(t, simulator.Options{}, Config{OverlapInterval: 24 * time.Hour, FlowsInterval: time.Minute}, func(h *harness) { fx = seedFixture(h) })
		h.mustPoll()
		for i := range failed {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
		}
		h.untilRefresh()
		h.untilRefresh()
		h.sim.ResetRequests()
		const polls = 8 // 4 minutes: two backstop listings of a quiet project (every 2 flow intervals)
		for range polls {
			h.mustPoll()
		}
		watch, counts := 0, 0
		for _, r := range h.sim.Requests() {
			switch {
			case r.Path == "/api/v1/flow-runs" && r.Query.Get("includeArchived") == "true" && len(r.Query["status"]) > 0:
				watch++
			case r.Path == "/api/v1/flow-runs/count-by-status":
				counts++
			}
		}
		t.Logf("%d failed runs in the retry window: %d watch requests and %d count-by-status in %d polls", failed, watch, counts, polls)
		if want := 2 * ((failed + bulkPageSize - 1) / bulkPageSize); watch != want || counts != polls {
			t.Errorf("%d failed runs: %d watch requests and %d counts in %d polls, want %d and %d (the censuses)", failed, watch, counts, polls, want, polls)
		}
		if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); got != float64(failed) {
			t.Errorf("counted %v of %d", got, failed)
		}
	}
}

// apiCostManyInFlight: 5,000 unchanging runs in flight over 20 projects cost one request per
// project per poll (the census), and each is counted once when they end.
func apiCostManyInFlight(t *testing.T) {
	var flows []string
	h := newHarness(t, simulator.Options{}, Config{OverlapInterval: 24 * time.Hour, FlowsInterval: 24 * time.Hour}, func(h *harness) {
		for i := range 20 {
			p := h.sim.AddProject(fmt.Sprintf("P%02d", i))
			flows = append(flows, h.sim.AddFlow(p, "", "F"))
		}
	})
	h.mustPoll()
	var inflight []string
	base := h.clock.Now()
	for _, f := range flows {
		for i := range 250 {
			inflight = append(inflight, h.sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusPaused,
				Created: base.Add(time.Duration(i) * time.Millisecond)}))
		}
	}
	h.mustPoll()
	h.mustPoll()
	h.mustPoll()
	h.sim.ResetRequests()
	for range 10 {
		h.mustPoll()
	}
	perProject := float64(len(h.sim.Requests())) / 10 / 20
	t.Logf("5,000 unchanging runs in flight over 20 projects: %.2f requests per project per poll", perProject)
	if perProject != 1 {
		t.Errorf("%.2f requests per project per poll, want 1", perProject)
	}
	for _, id := range inflight { // they all end: each counted once
		h.sim.SetRunStatus(id, apiclient.StatusSucceeded)
	}
	h.mustPoll()
	h.mustPoll()
	if n := h.assertTotals(); n != 5000 {
		t.Errorf("%d runs counted, want 5000", n)
	}
}

// With N projects and a rate limit R that cannot sustain --poll.interval, one warning says so
// with the numbers and the ways out (again only when N changes); the effective period of each
// project is a gauge.
func TestRateLimitTooLowForTheProjectsIsSaid(t *testing.T) {
	h := newHarness(t, simulator.Options{}, Config{PollInterval: 30 * time.Second, FlowsInterval: 5 * time.Minute, RateLimit: 1}, func(h *harness) {
		for i := range 40 {
			h.sim.AddProject(fmt.Sprintf("P%02d", i))
		}
	})
	h.mustPoll()
	h.mustPoll()
	logs := h.logs.String()
	if n := strings.Count(logs, "cannot sustain the poll interval"); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, logs)
	}
	// Said at discovery, before any project is polled, so each is assumed to cost everything:
	// per poll 1 listing + 3/10 of a flow refresh (flows, folders, late count every 5 min) + 1/2
	// overlap count (every 1 min): 40 × 1.8 / 30 s = 2.4/s. At 1/s the period P solves P = 40 ×
	// (1 + 3 × P/300 + 1) (P beyond a minute): 133 s.
	for _, want := range []string{`"projects":40`, `"requests_per_second_needed":"2.4"`, `"rate_limit":1`, `"effective_period":133000000000`, "--shard.count"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the warning lacks %s", want)
		}
	}
	if v, ok := h.value("activepieces_exporter_poll_period_seconds", nil); !ok || v != 30 {
		t.Errorf("poll period = %v, %v; want 30 s between two polls", v, ok)
	}
	h.sim.AddProject("P40")
	h.clock.Advance(10 * time.Minute) // discovery is due
	h.mustPoll()
	if n := strings.Count(h.logs.String(), "cannot sustain the poll interval"); n != 2 {
		t.Errorf("warned %d times after a project was added, want twice", n)
	}
}
