package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// Run polls each project once per interval at its own moment: after the first round (at once,
// for readiness) the listings of new runs are spread evenly over the interval, not sent in a
// burst at its start.
func TestRunSpreadsProjectPollsOverTheInterval(t *testing.T) {
	const n, interval = 20, time.Second
	sim := simulator.New(simulator.Options{})
	for i := range n {
		p := sim.AddProject(fmt.Sprintf("customer %02d", i))
		sim.AddFlow(p, "", "relay")
	}
	start := time.Now()
	exp, stop := runAgainst(t, sim, Config{PollInterval: interval, FlowsInterval: time.Hour, OverlapInterval: time.Hour, RateLimit: 1000})
	time.Sleep(interval + 4*interval) // the first round, then four spread ones
	stop()

	// The request that opens each poll after the first round: a listing of new runs (no status
	// filter, no ids) or, for a quiet project, its census; a poll that sends both (a census that
	// settles) counts once.
	var at []time.Time
	perProject := map[string]int{}
	last := map[string]time.Time{}
	for _, r := range sim.Requests() {
		q := r.Query
		opens := r.Path == "/api/v1/flow-runs" && !q.Has("status") && !q.Has("flowRunIds") || r.Path == "/api/v1/flow-runs/count-by-status"
		if !opens || r.At.Before(start.Add(interval+interval/2)) {
			continue
		}
		if prev, ok := last[q.Get("projectId")]; ok && r.At.Sub(prev) < interval/4 {
			continue
		}
		last[q.Get("projectId")] = r.At
		if !r.At.Before(start.Add(interval + interval/2 + 3*interval)) {
			continue
		}
		at = append(at, r.At)
		perProject[q.Get("projectId")]++
	}
	// Three intervals: each project polled 3 times (±1 at the window's edges).
	if len(perProject) != n {
		t.Fatalf("%d of %d projects polled in the window", len(perProject), n)
	}
	for id, c := range perProject {
		if c < 2 || c > 4 {
			t.Errorf("project %s polled %d times in 3 intervals", id, c)
		}
	}
	// Spread: in any tenth of the interval, about n/10 listings (a burst would put all n in one).
	bin := interval / 10
	most := 0
	for i, a := range at {
		c := 0
		for _, b := range at[i:] {
			if b.Sub(a) < bin {
				c++
			}
		}
		most = max(most, c)
	}
	t.Logf("%d listings in 3 intervals; at most %d within %s", len(at), most, bin)
	if most > 2*n/10+2 {
		t.Errorf("%d listings within %s: polls come in bursts, not spread over the interval", most, bin)
	}
	if err := exp.Ready(); err != nil {
		t.Errorf("not ready: %v", err)
	}
}

// An empty platform is ready once discovery has run, under Run as under PollOnce.
func TestRunOnAnEmptyPlatformIsReady(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	exp, stop := runAgainst(t, sim, Config{PollInterval: 200 * time.Millisecond})
	defer stop()
	testkit.WaitFor(t, 5*time.Second, "ready on an empty platform", func() bool { return exp.Ready() == nil })
}

// runAgainst starts an exporter's Run (real clock) against sim; stop ends it.
func runAgainst(t *testing.T, sim *simulator.Server, cfg Config) (exp *Exporter, stop func()) {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey }})
	if err != nil {
		t.Fatal(err)
	}
	exp, err = New(cfg, client, slog.New(slog.NewTextHandler(&testkit.LockedBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exp.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	return exp, func() { cancel(); wg.Wait() }
}

// Under Run a tick renders every flow though it polled a few projects: renders are spaced so
// that they take at most a fifth of the time, and a tick that was not rendered is by a later one.
func TestTicksRenderAtMostAFifthOfTheTime(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	before := h.exp.Snapshot().Poll
	h.exp.m().renderedAt, h.exp.m().renderCost = time.Now(), time.Hour // as if the last render took an hour
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.clock.Advance(h.exp.cfg.PollInterval)
	if err := h.exp.m().poll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if gen := h.exp.Snapshot().Poll; gen != before {
		t.Errorf("a tick rendered (poll %d → %d) within five render times of the last render", before, gen)
	}
	h.exp.m().renderCost = 0                                           // the last render is long enough ago now
	if err := h.exp.m().poll(context.Background(), true); err != nil { // nothing due: the pending render
		t.Fatal(err)
	}
	if gen := h.exp.Snapshot().Poll; gen == before {
		t.Error("the tick's results were never rendered")
	}
}

// The first OpenMetrics scrape after a tick left unrendered renders that tick's results, in both
// formats; like every render, it saves the state file first, so that a crash after the scrape
// restarts from what it served.
func TestFirstOpenMetricsScrapeSavesWhatItRenders(t *testing.T) {
	var fx fixture
	state := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, simulator.Options{}, Config{StateFile: state, ServerURL: "sim"}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	before := h.exp.Snapshot().Poll
	h.exp.m().renderedAt, h.exp.m().renderCost = time.Now(), time.Hour // the next tick is not rendered
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.clock.Advance(h.exp.cfg.PollInterval)
	if err := h.exp.m().poll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	s, err := h.exp.OpenMetricsSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if s.Poll == before || s.Poll != h.exp.Snapshot().Poll {
		t.Errorf("OpenMetrics of poll %d, text of %d: want both of the tick after poll %d", s.Poll, h.exp.Snapshot().Poll, before)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("the tick's results were rendered unsaved: %v", err)
	}
}

// Ticks save the state file at most once an interval; Run saves it once more when it ends, so a
// stop loses nothing a tick applied.
func TestRunSavesTheStateWhenItEnds(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	flow := sim.AddFlow(sim.AddProject("P"), "", "F")
	path := filepath.Join(t.TempDir(), "state.json")
	exp, stop := runAgainst(t, sim, Config{PollInterval: time.Hour, StateFile: path, ServerURL: "sim"})
	testkit.WaitFor(t, 5*time.Second, "ready, state saved", func() bool {
		_, err := os.Stat(path)
		return exp.Ready() == nil && err == nil
	})
	time.Sleep(10 * time.Millisecond) // the first save may still be renaming into place
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sim.AddRun(simulator.RunSpec{FlowID: flow})
	time.Sleep(10 * time.Millisecond)
	stop()
	after, err := os.Stat(path)
	if err != nil || !after.ModTime().After(info.ModTime()) {
		t.Errorf("state file not saved when Run ended (modified %v, then %v, %v)", info.ModTime(), after.ModTime(), err)
	}
}

// Ticks keep to the grid (found by the alert-latency measurement: at a 100 ms interval, 10 s of
// polls every 100 ms, then 10 s every 200 ms, and so on). A one-project platform, each timer
// firing 0.5 ms late, for 20,000 ticks: the project is polled at every tick, each interval.
func TestTicksKeepToTheGridWhenTimersFireLate(t *testing.T) {
	now := epoch
	e := &env{cfg: Config{PollInterval: 100 * time.Millisecond}, startedAt: epoch, now: func() time.Time { return now }}
	tick := e.cfg.PollInterval // one project: one tick an interval
	var nextDue time.Time
	polls := 0
	const ticks = 20000
	for range ticks {
		if !now.Before(nextDue) {
			polls++
			nextDue = e.nextSlot(0, now)
		}
		now = now.Add(e.untilNextTick(tick) + 500*time.Microsecond)
	}
	if intervals := int(now.Sub(epoch) / e.cfg.PollInterval); polls < intervals-1 {
		t.Errorf("%d polls in %d intervals: ticks drifted off the projects' slots", polls, intervals)
	}
}
