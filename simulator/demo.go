package simulator

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Generator keeps creating runs on a simulator with a realistic mix of statuses: mostly
// SUCCEEDED, some FAILED and TIMEOUT, runs that stay RUNNING, QUEUED or PAUSED for a while, and
// now and then the rarer terminal statuses. One flow ("Flaky webhook relay") fails often, so
// alerts have something to fire on, and an operator retries many of its failures from the failed
// step a few seconds later (most retries succeed); one ("Nightly invoice export") never ends
// FAILED or TIMEOUT, so alerts have something not to fire on. Every INTERNAL_ERROR is retried
// by the job queue, and a few rows reach the listings late, as when the runs queue lags.
type Generator struct {
	s     *Server
	rate  float64 // runs per second
	mu    sync.Mutex
	rng   *rand.Rand
	flows []demoFlow
	open  []openRun
	carry float64
	// retries are failed runs an operator (or the job queue) will re-open, and when.
	retries []pendingRetry
	// MinRetryDelay is the least time between a run's failure (or its row showing, when it shows
	// late) and its retry (default 3 s: the
	// demo shows retries at once). An execution that finishes and is re-opened between two polls
	// of its project leaves no trace in the API; a load test that compares counts with every
	// execution sets this above twice its poll interval, as real retries are (a person, or the
	// job queue's 8-minute backoff).
	MinRetryDelay time.Duration
}

type pendingRetry struct {
	id   string
	at   time.Time
	mode RetryMode
}

type demoFlow struct {
	id        string
	flaky     bool
	failRate  float64
	steps     int
	duration  time.Duration
	failSteps []demoStep // where its runs fail, the first most often
}

// demoStep is a step of a demo flow, by name and display name.
type demoStep struct{ name, display string }

// demoFailSteps are the steps the demo flows' runs fail in, as a builder would name them.
var demoFailSteps = map[string][]demoStep{
	"Sync CRM leads":       {{"step_2", "Create Salesforce lead"}, {"step_1", "Get new HubSpot contacts"}},
	"Enrich new signups":   {{"step_1", "Clearbit enrichment"}, {"step_3", "Update Airtable record"}},
	"Flaky webhook relay":  {{"step_2", "Forward to partner webhook"}, {"step_1", "Parse payload"}, {"step_3", "Notify #ops on Slack"}},
	"Triage support email": {{"step_1", "Classify with OpenAI"}, {"step_2", "Create Zendesk ticket"}},
	"Escalate VIP tickets": {{"step_2", "Page on-call in PagerDuty"}, {"step_1", "Look up customer tier"}},
	"Daily SLA report":     {{"step_1", "Query Postgres"}, {"step_2", "Send report email"}},
}

// failStep picks the step a run of f fails in: the first step 70% of the time.
func (g *Generator) failStep(f demoFlow) demoStep {
	if len(f.failSteps) == 0 {
		return demoStep{"step_1", "Code"}
	}
	if len(f.failSteps) == 1 || g.rng.Float64() < 0.7 {
		return f.failSteps[0]
	}
	return f.failSteps[1+g.rng.IntN(len(f.failSteps)-1)]
}

// spec is a run of f in status st, with the step it failed in when it failed.
func (g *Generator) spec(f demoFlow, st apiclient.RunStatus) RunSpec {
	s := RunSpec{FlowID: f.id, Status: st, Steps: f.steps}
	if st.IsFailure() {
		step := g.failStep(f)
		s.FailedStep, s.FailedStepDisplay = step.name, step.display
	}
	return s
}

type openRun struct {
	id    string
	until time.Time
	next  apiclient.RunStatus
	final apiclient.RunStatus // after RUNNING (default SUCCEEDED)
}

// DemoProjects names the demo platform's projects and their flows.
var DemoProjects = map[string][]string{
	"Sales Ops": {"Sync CRM leads", "Nightly invoice export", "Enrich new signups", "Flaky webhook relay"},
	"Support":   {"Triage support email", "Escalate VIP tickets", "Daily SLA report"},
}

// The demo's platform admin, for a client that signs in (a Community Edition demo has no API
// keys; docs/activepieces-api.md §10).
const (
	DemoEmail    = "demo@example.com"
	DemoPassword = "demo-password-1"
)

// NewDemo returns the demo: a simulator with opts (Edition "community" for a Community Edition
// server, signed in to with DemoEmail and DemoPassword; DefaultAPIKey works on the others),
// seeded by NewGenerator with rate runs per second, and the demo admin user on every edition.
func NewDemo(opts Options, rate float64, seed uint64) (*Server, *Generator) {
	s := New(opts)
	g := NewGenerator(s, rate, seed)
	s.AddDemoUser()
	return s, g
}

// AddDemoUser adds the platform admin DemoEmail (password DemoPassword, default project the
// first demo project) unless it exists, and returns its id.
func (s *Server) AddDemoUser() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.auth.byEmail[DemoEmail]; ok {
		return u.id
	}
	return s.addUserLocked(UserSpec{Email: DemoEmail, Password: DemoPassword, FirstName: "Demo", LastName: "Admin", PlatformRole: RoleAdmin})
}

// NewGenerator seeds s with the demo projects, folders and flows, and an hour of history, and
// returns a generator producing rate runs per second.
func NewGenerator(s *Server, rate float64, seed uint64) *Generator {
	g := &Generator{s: s, rate: rate, rng: rand.New(rand.NewPCG(seed, seed+1)), MinRetryDelay: 3 * time.Second}
	for _, pname := range []string{"Sales Ops", "Support"} {
		pid := s.AddProject(pname)
		folder := s.AddFolder(pid, "Production")
		for i, fname := range DemoProjects[pname] {
			fid := s.AddFlow(pid, folder, fname)
			fail := 0.04
			switch fname {
			case "Flaky webhook relay":
				fail = 0.35
			case "Nightly invoice export":
				fail = 0
			}
			g.flows = append(g.flows, demoFlow{id: fid, failRate: fail, steps: 2 + i, flaky: fname == "Flaky webhook relay",
				duration: time.Duration(300+g.rng.IntN(4000)) * time.Millisecond, failSteps: demoFailSteps[fname]})
		}
	}
	now := s.now()
	for i := 0; i < 120; i++ {
		f := g.flows[g.rng.IntN(len(g.flows))]
		created := now.Add(-time.Duration(g.rng.Int64N(int64(time.Hour))))
		spec := g.spec(f, g.terminal(f))
		spec.Created, spec.Duration = created, g.jitter(f.duration)
		s.AddRun(spec)
	}
	return g
}

func (g *Generator) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(g.rng.Int64N(int64(d)))
}

func (g *Generator) terminal(f demoFlow) apiclient.RunStatus {
	x := g.rng.Float64()
	switch {
	case x < f.failRate*0.75:
		return apiclient.StatusFailed
	case x < f.failRate:
		return apiclient.StatusTimeout
	case x < f.failRate+0.004:
		return apiclient.StatusInternalError
	case x < f.failRate+0.007:
		return apiclient.StatusQuotaExceeded
	case x < f.failRate+0.009:
		return apiclient.StatusMemoryLimitExceeded
	case x < f.failRate+0.011:
		return apiclient.StatusLogSizeExceeded
	case x < f.failRate+0.015:
		return apiclient.StatusCanceled
	}
	return apiclient.StatusSucceeded
}

// Step advances the generator by dt: new runs at the configured rate, in-flight runs moved on
// when their time has come, and retries of failed runs.
func (g *Generator) Step(dt time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.s.now()
	keep := g.open[:0]
	for _, o := range g.open {
		if now.Before(o.until) {
			keep = append(keep, o)
			continue
		}
		if o.next.IsFailure() {
			step := g.failStep(g.flowOf(o.id))
			g.s.SetFailedStep(o.id, step.name, step.display)
		}
		g.s.SetRunStatus(o.id, o.next)
		if o.next.IsInFlight() {
			o.next, o.until = apiclient.StatusSucceeded, now.Add(time.Duration(2+g.rng.IntN(8))*time.Second)
			if o.final != "" {
				o.next = o.final
			}
			keep = append(keep, o)
		} else {
			g.maybeRetry(o.id, o.next, now)
		}
	}
	g.open = keep
	waiting := g.retries[:0]
	for _, r := range g.retries {
		if now.Before(r.at) {
			waiting = append(waiting, r)
			continue
		}
		g.s.RetryRun(r.id, r.mode)
		final := apiclient.StatusSucceeded
		if g.rng.Float64() < 0.2 {
			final = apiclient.StatusFailed // the retry fails too
		}
		next := apiclient.StatusRunning
		if r.mode == RetryAutomatic {
			next = final // already RUNNING
		}
		g.open = append(g.open, openRun{id: r.id, until: now.Add(time.Duration(1+g.rng.IntN(3)) * time.Second), next: next, final: final})
	}
	g.retries = waiting
	g.carry += g.rate * dt.Seconds()
	for ; g.carry >= 1; g.carry-- {
		f := g.flows[g.rng.IntN(len(g.flows))]
		x := g.rng.Float64()
		switch {
		case x < 0.06: // still running: finishes within seconds
			id := g.s.AddRun(RunSpec{FlowID: f.id, Status: apiclient.StatusRunning, Steps: f.steps})
			g.open = append(g.open, openRun{id: id, until: now.Add(time.Duration(2+g.rng.IntN(10)) * time.Second), next: g.terminal(f)})
		case x < 0.08: // queued, then running
			id := g.s.AddRun(RunSpec{FlowID: f.id, Status: apiclient.StatusQueued, Steps: f.steps})
			g.open = append(g.open, openRun{id: id, until: now.Add(time.Duration(1+g.rng.IntN(3)) * time.Second), next: apiclient.StatusRunning})
		case x < 0.10: // paused on a webhook or approval for a while
			id := g.s.AddRun(RunSpec{FlowID: f.id, Status: apiclient.StatusPaused, Steps: f.steps})
			g.open = append(g.open, openRun{id: id, until: now.Add(time.Duration(20+g.rng.IntN(40)) * time.Second), next: apiclient.StatusSucceeded})
		default:
			spec := g.spec(f, g.terminal(f))
			spec.Duration = g.jitter(f.duration)
			if g.rng.Float64() < 0.03 { // the runs queue lags: the row is listed late
				spec.VisibleAfter = time.Duration(3+g.rng.IntN(12)) * time.Second
			}
			id := g.s.AddRun(spec)
			if f.flaky || spec.Status == apiclient.StatusInternalError {
				g.maybeRetry(id, spec.Status, now)
			}
		}
	}
}

// maybeRetry schedules the retry of a run that just finished: every INTERNAL_ERROR (the job
// queue's automatic retry), and 40% of the flaky flow's other failures (an operator).
func (g *Generator) maybeRetry(id string, status apiclient.RunStatus, now time.Time) {
	if v := g.s.Run(id).VisibleAt; v.After(now) {
		now = v // a row not listed yet: its retry comes after it shows
	}
	switch {
	case status == apiclient.StatusInternalError:
		g.retries = append(g.retries, pendingRetry{id: id, at: now.Add(g.MinRetryDelay + time.Duration(g.rng.IntN(5))*time.Second), mode: RetryAutomatic})
	case status.IsRetryable() && g.isFlaky(id) && g.rng.Float64() < 0.4:
		g.retries = append(g.retries, pendingRetry{id: id, at: now.Add(g.MinRetryDelay + time.Duration(g.rng.IntN(8))*time.Second), mode: RetryFromFailedStep})
	}
}

func (g *Generator) isFlaky(runID string) bool { return g.flowOf(runID).flaky }

func (g *Generator) flowOf(runID string) demoFlow {
	r := g.s.Run(runID)
	for _, f := range g.flows {
		if f.id == r.FlowID {
			return f
		}
	}
	return demoFlow{}
}

// Run steps the generator every tick until ctx ends.
func (g *Generator) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.Step(now.Sub(last))
			last = now
		}
	}
}
