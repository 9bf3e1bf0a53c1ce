package collector

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// A project whose first read needs about ten times the poll deadline: 2,000 flows, 3,000 runs in
// flight and 2,000 failed runs to watch for retries, every answer 200 ms late, polls cut at 250 ms.
// Each poll continues where the last stopped (the answers it read are kept), so the read grows
// monotonically and completes; meanwhile runs finish and new ones come, and every one is counted
// exactly once.
func TestCutShortPollsMakeForwardProgress(t *testing.T) {
	var flows, running []string
	h := newHarness(t, simulator.Options{}, Config{PollTimeout: 250 * time.Millisecond, MaxPages: 5}, func(h *harness) {
		p := h.sim.AddProject("Embedded SaaS")
		for i := range 2000 {
			flows = append(flows, h.sim.AddFlow(p, "", fmt.Sprintf("customer flow %04d", i)))
		}
		for i := range 3000 {
			running = append(running, h.sim.AddRun(simulator.RunSpec{FlowID: flows[i%len(flows)], Status: apiclient.StatusRunning,
				Created: epoch.Add(-time.Duration(i+1) * 100 * time.Millisecond)}))
		}
		for i := range 2000 {
			h.sim.AddRun(simulator.RunSpec{FlowID: flows[i%len(flows)], Status: apiclient.StatusFailed,
				Created: epoch.Add(-2*time.Hour - time.Duration(i)*time.Second)})
		}
	})
	h.sim.InjectFault(simulator.Fault{Delay: 200 * time.Millisecond, Times: -1})
	h.noHistory = true // read once the first read is done (it is not what is measured)
	p := func() *projectState {
		for _, p := range h.exp.m().projects {
			return p
		}
		return nil
	}
	// Activity while the first read is under way (from its second poll on: what the first one
	// lists is history): a run in flight since before start-up finishes, a new one fails. Both
	// are counted: flow i has one SUCCEEDED and one FAILED.
	want := map[simulator.Key]int{}
	activity := func(i int) {
		if i == 0 {
			return
		}
		h.sim.SetRunStatus(running[i], apiclient.StatusSucceeded)
		h.sim.AddRun(simulator.RunSpec{FlowID: flows[i], Status: apiclient.StatusFailed})
		want[simulator.Key{FlowID: flows[i], Status: apiclient.StatusSucceeded}]++
		want[simulator.Key{FlowID: flows[i], Status: apiclient.StatusFailed}]++
	}

	polls, answered := firstReadUnderWay(t, h, p, activity)
	if !p().started {
		t.Fatalf("the first read did not complete in %d polls (%d answers kept)", polls, answered)
	}
	t.Logf("first read completed after %d polls of 250 ms, %d answers kept", polls+1, answered)
	if polls+1 < 4 {
		t.Errorf("first read completed in %d polls: the test meant about ten", polls+1)
	}
	if err := h.exp.Ready(); err != nil {
		t.Errorf("not ready once the first read completed: %v", err)
	}

	// The rest at an ordinary deadline: 3,000 runs in flight are listed on every poll, which
	// does not fit 250 ms under the race detector.
	h.sim.ClearFaults()
	h.exp.cfg.PollTimeout = time.Minute
	h.noHistory = false
	for i := range 5 {
		activity(polls + 1 + i)
		h.mustPoll()
	}
	if got := h.counts(); !maps.Equal(got, want) {
		t.Errorf("counted %v\nwant    %v", got, want)
	}
	if v, _ := h.value("activepieces_exporter_poll_cut_short_total", nil); v < 4 {
		t.Errorf("poll_cut_short_total = %v, want a count of the polls cut short", v)
	}
	if v, _ := h.value("activepieces_exporter_poll_failures_total", nil); v != 0 {
		t.Errorf("poll_failures_total = %v: running out of time is no failure", v)
	}
}

// firstReadUnderWay polls (with activity before each) until the project's first read completes,
// at most 40 times, checking that every poll keeps what it read and adds to it; it returns the
// index of the poll that completed it and the answers the read kept.
func firstReadUnderWay(t *testing.T, h *harness, p func() *projectState, activity func(int)) (polls, answered int) {
	t.Helper()
	for ; polls < 40; polls++ {
		activity(polls)
		if err := h.poll(); err == nil && polls == 0 {
			t.Fatal("the first poll finished within its deadline: the test reads too little")
		}
		pr := p()
		if pr.started {
			return polls, answered
		}
		if pr.attempt == nil {
			t.Fatalf("poll %d dropped what it had read", polls+1)
		}
		if n := len(pr.attempt.answers); n <= answered && polls > 0 {
			t.Fatalf("poll %d made no progress: %d answers kept, %d before", polls+1, n, answered)
		} else {
			answered = n
		}
	}
	return polls, answered
}
