package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Exporter polls the API and is the prometheus.Collector for everything it learns.
//
// Ownership and locking:
//   - One poll runs at a time (pollMu, held by PollOnce). Within it, one goroutine per project
//     runs fetch, which only reads that project's state and writes what it learns into its own
//     fetched value (API answers, server traits); pollProject then takes mu and folds it in.
//   - Everything below mu (the projects and all they hold, the exporter's counters) is written
//     only with mu held for writing, and read by renderings (emit: Collect, WriteText) and the
//     state file snapshot with mu held for reading. Functions named …Locked expect the caller to
//     hold mu (for writing, unless their comment says reading).
//   - clock is written (under mu) by PollOnce before and after the project polls, never during
//     them; fetch reads it without mu while no writer can run.
//   - expo (the rendered exposition) has its own lock; its served mark is atomic, set by
//     MarkServed from the HTTP handler's goroutines.
type Exporter struct {
	cfg       Config
	api       *apiclient.Client
	log       *slog.Logger
	now       func() time.Time
	startedAt time.Time
	flowSet   map[string]bool // cfg.Flows as a set
	fam       []*family
	expo      exposition

	pollMu sync.Mutex // one poll at a time
	// The background reader of look-back history (history.go): its own pace, and a wake-up
	// when a first poll leaves history to read.
	historyLimiter *rate.Limiter
	historyWake    chan struct{}
	release        func() // of the state file lock

	mu                sync.RWMutex
	projects          map[string]*projectState
	pollSeq           uint64
	completed         uint64 // the last poll whose results are all applied
	clock             serverClock
	lastDiscovery     time.Time
	discoveryErr      error
	up                bool
	polled            bool
	lastPollOK        time.Time
	exportedFlows     int
	droppedFlows      int
	droppedLogged     map[string]bool
	pollHist          prometheus.Histogram
	trackedDropped    float64
	stateSaveFailures float64
	saveFailing       string    // the state save error last logged ("" when saving works)
	lastSave          time.Time // when the state file was last saved
	rateCheckedFor    int       // the number of projects the rate limit was last checked for
	outOfTime         bool      // the last poll ran out of time (for logging the change only; PollOnce's goroutine)

	// Rendering under Run (the poll's goroutine only): when the exposition was last rendered,
	// what that cost, and whether a tick's results wait for a render.
	renderedAt    time.Time
	renderCost    time.Duration
	renderPending bool
}

// Option changes an Exporter built by New.
type Option func(*Exporter)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(e *Exporter) { e.now = now } }

// New builds an Exporter. It does not poll until Run or PollOnce is called. Runs created before
// now are history: they set the "last run" gauges but are not counted.
func New(cfg Config, api *apiclient.Client, logger *slog.Logger, opts ...Option) (*Exporter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	if api == nil || logger == nil {
		return nil, errors.New("collector: api client and logger are required")
	}
	e := &Exporter{cfg: cfg, api: api, log: logger, now: time.Now, projects: map[string]*projectState{},
		droppedLogged: map[string]bool{}, flowSet: map[string]bool{}, historyLimiter: newHistoryLimiter(cfg.HistoryRate),
		historyWake: make(chan struct{}, 1)}
	for _, o := range opts {
		o(e)
	}
	for _, f := range cfg.Flows {
		e.flowSet[f] = true
	}
	e.startedAt = e.now()
	e.fam = newFamilies()
	e.pollHist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "activepieces_exporter_poll_duration_seconds",
		Help:    "Duration of background polls: under Run, each tick polling the projects due; PollOnce, every project.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
	})
	if cfg.StateFile != "" {
		if !lockSupported {
			logger.Warn("the state file cannot be locked on this operating system: make sure no two exporters use it", "file", cfg.StateFile)
		}
		release, err := lockFile(cfg.StateFile)
		if err != nil {
			return nil, err
		}
		e.release = release
		if !cfg.StateReset {
			if err := e.loadState(); err != nil {
				release()
				return nil, err
			}
		}
	}
	for _, id := range cfg.Projects {
		if e.projects[id] == nil && cfg.ownsProject(id) {
			e.projects[id] = newProjectState(id, id, e.startedAt)
		}
	}
	if len(cfg.Projects) > 0 {
		e.checkRateLocked()
	}
	if err := e.refreshExposition(); err != nil {
		return nil, fmt.Errorf("rendering metrics: %w", err)
	}
	return e, nil
}

// Close releases the state file; the exporter must not poll after it.
func (e *Exporter) Close() {
	if e.release != nil {
		e.release()
		e.release = nil
	}
}

// Run polls until ctx ends, and reads the look-back history in the background meanwhile. Each
// project is polled every PollInterval at its own moment (its phase): the projects are spread
// evenly over the interval, polled in ticks of a tenth of it, instead of all at its start. The
// first poll of every project is at once. When ctx ends, the state file (if any) is saved a last
// time: ticks save it at most once an interval.
func (e *Exporter) Run(ctx context.Context) {
	go e.RunHistory(ctx)
	for {
		start := time.Now()
		if err := e.poll(ctx, true); err != nil && ctx.Err() == nil {
			e.log.Debug("poll finished with errors", "err", err)
		}
		t := time.NewTimer(max(0, e.tick()-time.Since(start)))
		select {
		case <-ctx.Done():
			t.Stop()
			if e.cfg.StateFile != "" {
				e.pollMu.Lock()
				_ = e.saveStateLogged() // logged
				e.pollMu.Unlock()
			}
			return
		case <-t.C:
		}
	}
}

// tick is how often Run looks for projects due: PollInterval split into as many ticks as there
// are projects, 10 at most (each tick that polls renders the metrics again), 100 ms at least.
func (e *Exporter) tick() time.Duration {
	e.mu.RLock()
	n := len(e.projects)
	e.mu.RUnlock()
	return max(e.cfg.PollInterval/time.Duration(min(max(n, 1), 10)), min(100*time.Millisecond, e.cfg.PollInterval))
}

// nextSlot is when a project polled at t with phase (its offset in PollInterval) is due next:
// the first moment of its phase at least half an interval after t. In steady state that is t +
// PollInterval; a project polled off its phase (the first poll, a change in the number of
// projects) moves onto it.
func (e *Exporter) nextSlot(phase time.Duration, t time.Time) time.Time {
	iv := e.cfg.PollInterval
	base := e.startedAt.Add(phase)
	k := (t.Add(iv/2).Sub(base) + iv - 1) / iv // ceil
	return base.Add(k * iv)
}

// Ready reports whether every project has been polled successfully, the oldest of those polls
// within three poll periods (the poll interval, or the longer effective period when the rate
// limit cannot sustain it for this many projects).
func (e *Exporter) Ready() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.polled {
		return errors.New("first poll not finished")
	}
	never, oldest := 0, time.Time{}
	for _, p := range e.projects {
		switch {
		case p.lastSuccess.IsZero():
			never++
		case oldest.IsZero() || p.lastSuccess.Before(oldest):
			oldest = p.lastSuccess
		}
	}
	if len(e.projects) == 0 {
		oldest = e.lastPollOK // an empty platform: discovery is the poll
	}
	_, period := e.pollCost(len(e.projects), e.pollMixLocked())
	switch {
	case never > 0 && never == len(e.projects) || oldest.IsZero():
		return errors.New("no poll has succeeded yet")
	case never > 0:
		return fmt.Errorf("%d of %d projects not polled yet", never, len(e.projects))
	case e.now().Sub(oldest) > 3*period:
		return fmt.Errorf("last successful poll was %s ago", e.now().Sub(oldest).Round(time.Second))
	}
	return nil
}

// PollOnce runs one poll of every project and returns the errors met. Concurrent calls run one
// after the other.
func (e *Exporter) PollOnce(ctx context.Context) error { return e.poll(ctx, false) }

// poll polls every project, or with dueOnly those due (Run), and renders the metrics.
func (e *Exporter) poll(ctx context.Context, dueOnly bool) error {
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.cfg.PollTimeout)
	defer cancel()
	e.mu.Lock()
	e.pollSeq++
	seq := e.pollSeq
	e.mu.Unlock()

	discoverErr := e.discover(ctx)
	e.mu.Lock()
	e.updateServerClockLocked(clockEvidence{}) // the Date of discovery's answer
	e.mu.Unlock()
	polled, errs := e.pollProjects(ctx, parent, seq, dueOnly)
	allErr := errors.Join(append([]error{discoverErr}, errs...)...)

	e.mu.Lock()
	shutdown := parent.Err() != nil // a poll cancelled by shutdown is not a failed one
	// A tick that polled nothing says nothing new, unless there is nothing to poll (an empty
	// platform, where discovery is the poll).
	attempted := polled > 0 || !dueOnly || len(e.projects) == 0
	if !shutdown && attempted {
		e.polled = true
		// Up when discovery works and the last poll of every project succeeded (a poll that ran
		// out of time is not a failure).
		e.up = e.discoveryErr == nil
		for _, p := range e.projects {
			if p.failing {
				e.up = false
			}
		}
		if allErr == nil {
			e.lastPollOK = e.now()
		}
		e.pollHist.Observe(time.Since(start).Seconds())
	}
	e.completed = seq
	save := e.cfg.StateFile != "" && (!dueOnly || polled > 0 && time.Since(e.lastSave) >= e.cfg.PollInterval)
	e.mu.Unlock()
	if !attempted && discoverErr == nil && !e.renderPending {
		return nil // nothing was due: nothing changed
	}
	if save {
		allErr = errors.Join(allErr, e.saveStateLogged())
	}
	// A tick polls a few projects but renders every flow: under Run at most a fifth of the time
	// goes to rendering (10k flows take a few hundred ms), and what a tick applied without a
	// render is rendered by a later tick.
	if dueOnly && time.Since(e.renderedAt) < renderShare*e.renderCost {
		e.renderPending = true
		return allErr
	}
	t0 := time.Now()
	if err := e.refreshExposition(); err != nil {
		e.log.Error("cannot render metrics", "err", err)
		allErr = errors.Join(allErr, err)
	}
	e.renderedAt, e.renderCost, e.renderPending = time.Now(), time.Since(t0), false
	return allErr
}

// renderShare bounds rendering under Run: a render at most every renderShare times what the last
// one took.
const renderShare = 5

// pollProjects polls every project, cfg.Concurrency at a time, and folds what their runs said
// about the server's clock.
func (e *Exporter) pollProjects(ctx, parent context.Context, seq uint64, dueOnly bool) (polled int, _ []error) {
	e.mu.RLock()
	all := make([]string, 0, len(e.projects))
	for id := range e.projects {
		all = append(all, id)
	}
	// Each project's phase: its place among the projects by id, spread over the interval.
	sort.Strings(all)
	phase := make(map[string]time.Duration, len(all))
	projects := make([]*projectState, 0, len(e.projects))
	now := e.now()
	for i, id := range all {
		phase[id] = e.cfg.PollInterval * time.Duration(i) / time.Duration(len(all))
		if p := e.projects[id]; !dueOnly || !now.Before(p.nextDue) {
			projects = append(projects, p)
		}
	}
	e.mu.RUnlock()
	// The projects polled longest ago go first: when a poll runs out of time (a big platform at
	// a low rate limit), the next one starts with those it did not reach, so every project is
	// polled in turn instead of the same first ones every time.
	sort.Slice(projects, func(i, j int) bool {
		a, b := projects[i], projects[j]
		if !a.lastSuccess.Equal(b.lastSuccess) {
			return a.lastSuccess.Before(b.lastSuccess)
		}
		return a.id < b.id
	})

	errs := make([]error, len(projects))
	sem := make(chan struct{}, e.cfg.Concurrency)
	var wg sync.WaitGroup
	postponed := 0
	for i, p := range projects {
		sem <- struct{}{}
		if ctx.Err() != nil { // out of time: the rest waits for the next poll, without a failure
			<-sem
			postponed = len(projects) - i
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = e.pollProject(ctx, parent, p, seq, phase[p.id])
		}()
	}
	wg.Wait()
	// Logged when polls start running out of time and when they stop, not on every poll.
	outOfTime := errors.Is(ctx.Err(), context.DeadlineExceeded) // not shutdown
	switch {
	case outOfTime && !e.outOfTime:
		e.log.Warn("a poll ran out of time (--poll.timeout): the projects it did not reach go first next time; see activepieces_exporter_poll_period_seconds",
			"not_reached", postponed, "projects", len(projects), "timeout", e.cfg.PollTimeout)
	case !outOfTime && e.outOfTime:
		e.log.Info("polls finish in time again", "projects", len(projects))
	}
	e.outOfTime = outOfTime

	e.mu.Lock()
	defer e.mu.Unlock()
	var ev clockEvidence
	for _, p := range projects {
		ev = mergeEvidence(ev, p.clockEv)
		p.clockEv = clockEvidence{}
	}
	e.updateServerClockLocked(ev)
	return len(projects) - postponed, errs
}

// saveStateLogged saves the state file, counts a failure, and logs when saving starts failing,
// when the error changes and when it recovers.
func (e *Exporter) saveStateLogged() error {
	err := e.saveState()
	e.mu.Lock()
	if err != nil {
		e.stateSaveFailures++
	}
	logged := e.saveFailing
	e.saveFailing = ""
	if err == nil {
		e.lastSave = time.Now()
	}
	if err != nil {
		e.saveFailing = err.Error()
	}
	e.mu.Unlock()
	switch {
	case err != nil && err.Error() != logged:
		e.log.Warn("cannot save state; a restart now would lose the accounting since the last save (logged again when the error changes)", "err", err)
	case err == nil && logged != "":
		e.log.Info("state saved again", "file", e.cfg.StateFile)
	}
	return err
}

// discover lists projects when due: all of them without a configured list, or the configured
// ones' names.
func (e *Exporter) discover(ctx context.Context) error {
	e.mu.RLock()
	due := e.lastDiscovery.IsZero() || e.now().Sub(e.lastDiscovery) >= e.cfg.ProjectsInterval || e.discoveryErr != nil
	e.mu.RUnlock()
	if !due {
		return nil
	}
	list, err := apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Project], error) {
		return e.api.ListProjects(ctx, e.cfg.PageSize, cursor)
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.cfg.Projects) > 0 {
		// Names are a nicety for configured projects: a key that cannot list projects still polls.
		e.lastDiscovery = e.now()
		if err != nil {
			e.log.Warn("cannot list projects for their names; using ids", "err", err)
			return nil
		}
		for _, pr := range list {
			if p, ok := e.projects[pr.ID]; ok && pr.DisplayName != "" {
				p.name = capLabel(pr.DisplayName)
			}
		}
		return nil
	}
	if err != nil {
		if e.discoveryErr == nil {
			hint := ""
			if errors.Is(err, apiclient.ErrAuthorization) || errors.Is(err, apiclient.ErrNotFound) {
				hint = "this key cannot list projects (only platform API keys can): name them with --activepieces.project"
			}
			e.log.Warn("project discovery failed", "err", err, "hint", hint)
		}
		e.discoveryErr = fmt.Errorf("project discovery: %w", err)
		return e.discoveryErr
	}
	if e.discoveryErr != nil {
		e.log.Info("project discovery recovered")
	}
	e.discoveryErr = nil
	e.lastDiscovery = e.now()
	present := map[string]bool{}
	for _, pr := range list {
		if pr.ID == "" || !e.cfg.ownsProject(pr.ID) {
			continue
		}
		if len(pr.ID) > maxIDBytes {
			e.log.Warn("project with an implausible id skipped", "id_prefix", capLabel(pr.ID[:64]), "bytes", len(pr.ID))
			continue
		}
		present[pr.ID] = true
		if p, ok := e.projects[pr.ID]; ok {
			p.name = capLabel(pr.DisplayName)
			continue
		}
		e.projects[pr.ID] = newProjectState(pr.ID, capLabel(pr.DisplayName), e.startedAt)
		e.log.Info("project discovered", "project_id", pr.ID, "project", pr.DisplayName)
	}
	for id, p := range e.projects {
		if !present[id] {
			e.removeFlowsLocked(p, nil)
			delete(e.projects, id)
			e.log.Info("project gone; its series are dropped", "project_id", id)
		}
	}
	e.checkRateLocked()
	return nil
}

// pollMix is what the projects' polls cost beyond the listing of new runs, on average per
// project: the requests of a flow refresh (every FlowsInterval: flows; folders for projects whose
// flows are in any; the late-window count for projects with runs to check) and of an overlap
// sweep (every OverlapInterval, for those too). Runs in flight and the retry watch add theirs only
// when there are such runs. A project not polled yet is assumed to need everything.
type pollMix struct{ refresh, overlap float64 }

// pollMixLocked walks the projects once for their pollMix (mu held, reading is enough).
func (e *Exporter) pollMixLocked() pollMix {
	if len(e.projects) == 0 {
		return pollMix{refresh: 3, overlap: 1}
	}
	var refresh, overlap int
	for _, p := range e.projects {
		refresh++ // flows
		folders := len(p.flows) == 0 || len(p.folders) > 0
		for _, f := range p.flows {
			if folders {
				break
			}
			folders = f.folderID != ""
		}
		if folders {
			refresh++
		}
		// Sweeps check only windows where runs are counted: none on a project without a run
		// since its first poll.
		if !p.started || !p.head.Before(p.countFrom) {
			refresh++
			overlap++
		}
	}
	n := float64(len(e.projects))
	return pollMix{refresh: float64(refresh) / n, overlap: float64(overlap) / n}
}

// cost is what a poll of one project costs on average in steady state at a period.
func (m pollMix) cost(cfg Config, period time.Duration) float64 {
	return 1 + m.refresh*min(1, period.Seconds()/cfg.FlowsInterval.Seconds()) + m.overlap*min(1, period.Seconds()/cfg.OverlapInterval.Seconds())
}

// pollCost is what polling costs in steady state with n projects of mix m: the requests one
// project's poll costs on average, and the effective period at RateLimit. When the rate limit
// cannot sustain PollInterval the period stretches, and with it the share of polls that refresh:
// the period is the fixed point of period = n × cost(period) / RateLimit.
func (e *Exporter) pollCost(n int, m pollMix) (perPoll float64, period time.Duration) {
	period = e.cfg.PollInterval
	for range 20 {
		perPoll = m.cost(e.cfg, period)
		next := max(e.cfg.PollInterval, time.Duration(float64(n)*perPoll/e.cfg.RateLimit*float64(time.Second)))
		if (next - period).Abs() < time.Millisecond {
			break
		}
		period = next
	}
	return perPoll, period
}

// PollBudget is what polling costs in steady state: the projects polled, the requests a poll of
// one costs on average, the requests per second that takes at PollInterval, and the effective
// period of each project's poll at RateLimit (PollInterval, or longer when the rate limit cannot
// sustain it).
func (e *Exporter) PollBudget() (projects int, perPoll, perSecond float64, period time.Duration) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	projects = len(e.projects)
	mix := e.pollMixLocked()
	perPoll, period = e.pollCost(projects, mix)
	perSecond = float64(projects) * mix.cost(e.cfg, e.cfg.PollInterval) / e.cfg.PollInterval.Seconds()
	return projects, perPoll, perSecond, period
}

// checkRateLocked warns, at start-up and when the number of projects changes, when the rate
// limit cannot sustain the poll interval for them.
func (e *Exporter) checkRateLocked() {
	n := len(e.projects)
	if n == e.rateCheckedFor {
		return
	}
	e.rateCheckedFor = n
	mix := e.pollMixLocked()
	perPoll, period := e.pollCost(n, mix)
	if period <= e.cfg.PollInterval {
		return
	}
	need := float64(n) * mix.cost(e.cfg, e.cfg.PollInterval) / e.cfg.PollInterval.Seconds()
	e.log.Warn("the API rate limit cannot sustain the poll interval for this many projects: each is polled less often",
		"projects", n, "requests_per_second_needed", fmt.Sprintf("%.1f", need), "rate_limit", e.cfg.RateLimit,
		"poll_interval", e.cfg.PollInterval, "effective_period", period.Round(time.Second),
		"requests_per_project_poll", fmt.Sprintf("%.2f", perPoll),
		"ways_out", "raise --api.rate-limit, lengthen --poll.interval, or shard the projects over replicas (--shard.count)")
}

// transient tells an error a later request may not meet (a 5xx, a 429, the network) from one
// an answer already read may have caused (a cursor loop, a malformed page): only after the
// former is an attempt's memory worth keeping.
func transient(err error) bool {
	var apiErr *apiclient.APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500 || apiErr.StatusCode == 429
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr) && !errors.Is(err, apiclient.ErrBadResponse) && !errors.Is(err, apiclient.ErrResponseTooLarge) &&
		!errors.Is(err, apiclient.ErrRedirect)
}

// maxIDBytes bounds an id taken from the API (they are 21 characters).
const maxIDBytes = 64

// pollProject polls one project within ctx (the poll's deadline); parent is the poll's context
// without it, for finishing a request under way when the deadline passes.
func (e *Exporter) pollProject(ctx, parent context.Context, p *projectState, seq uint64, phase time.Duration) error {
	now := e.now()
	a := p.attempt // the attempt an earlier poll could not finish, continued (replay.go)
	if a == nil {
		a = newAttempt(e.api, now, e.serverNow(), e.startedAt.Add(e.clock.applied))
	}
	a.polls, a.reqCtx = a.polls+1, parent
	f := &fetched{api: a, serverNow: a.serverNow, serverStart: a.serverStart}
	err := e.fetch(ctx, p, a.now, f)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.projects[p.id]; !ok {
		return nil // dropped by discovery meanwhile
	}
	p.server = f.server // what was learned holds even when the poll failed
	p.attempt = nil
	p.nextDue = e.nextSlot(phase, now) // unless cut short: then at once
	if err != nil && (ctx.Err() != nil || errors.Is(err, apiclient.ErrOutOfTime)) {
		// Shutdown, or the poll's own time ran out (not a request's): the next poll continues
		// this attempt, first. Not a failure: nothing logged; counted as cut short unless it is
		// shutdown.
		p.attempt, p.nextDue = a, time.Time{}
		if parent.Err() == nil {
			p.cutShort++
		}
		return err
	}
	if err != nil && transient(err) {
		if a.failures++; a.failures < maxAttemptFailures {
			p.attempt = a // what it read is kept; the next poll asks again what failed
		}
	}
	var apiErr *apiclient.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == 404 && apiErr.EntityType == "project" && len(e.cfg.Projects) == 0 {
		// Deleted between two discoveries: drop it now and rediscover next poll.
		e.removeFlowsLocked(p, nil)
		delete(e.projects, p.id)
		e.lastDiscovery = time.Time{}
		e.log.Info("project gone; its series are dropped", "project_id", p.id, "project", p.name)
		return nil
	}
	if err != nil {
		p.failures++
		if !p.failing || p.lastErr != err.Error() {
			e.log.Warn("poll of project failed", "project_id", p.id, "project", p.name, "err", err)
		} else {
			e.log.Debug("poll of project still failing", "project_id", p.id, "err", err)
		}
		if !p.failing {
			p.failingAt = e.now()
		}
		p.failing, p.lastErr = true, err.Error()
		return fmt.Errorf("project %s: %w", p.id, err)
	}
	if p.failing {
		e.log.Info("poll of project recovered", "project_id", p.id, "project", p.name)
	}
	if a.polls > 1 {
		e.log.Info("a read of the project that polls cut short is complete", "project_id", p.id, "polls", a.polls,
			"answers_kept", len(a.answers), "answers_replayed", a.replayed)
	}
	p.failing, p.lastErr = false, ""
	p.clockEv = clockEvidenceOf(f, e.now(), p.lastSuccess, p.head)
	e.applyLocked(p, f, seq, now)
	p.prevSuccess, p.lastSuccess = p.lastSuccess, now
	return nil
}
