package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// poll polls every project, or with dueOnly those due (Run), and renders the metrics.
func (e *model) poll(ctx context.Context, dueOnly bool) error {
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.cfg.PollTimeout)
	defer cancel()
	e.pollSeq++
	seq := e.pollSeq

	discoverErr := e.discover(ctx)
	e.updateServerClockLocked(clockEvidence{}) // the Date of discovery's answer
	polled, errs := e.pollProjects(ctx, parent, seq, dueOnly)
	e.logDroppedFlows()
	allErr := errors.Join(append([]error{discoverErr}, errs...)...)

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
	if !attempted && discoverErr == nil && !e.renderPending {
		return nil // nothing was due: nothing changed
	}
	// A tick polls a few projects but renders every flow: under Run at most a fifth of the time
	// goes to rendering and the save before it (10k flows take a few hundred ms), and what a
	// tick applied without a render is rendered by a later tick.
	if dueOnly && time.Since(e.renderedAt) < renderShare*e.renderCost {
		e.renderPending = true
		return allErr
	}
	saveErr, renderErr := e.saveAndRender()
	return errors.Join(allErr, saveErr, renderErr)
}

// saveAndRender saves the state file (if any, and if a count in it changed: statePrint), then
// renders and publishes the exposition, and times both (renderShare). What a scrape can see is
// saved first: a crash right after a scrape
// must not restart from a state older than what was served (Prometheus would take the lower
// counters for resets). A save that fails is counted and logged, and the metrics are rendered
// anyway.
func (e *model) saveAndRender() (saveErr, renderErr error) {
	t0 := time.Now()
	if fp := e.statePrint(); e.cfg.StateFile != "" && (fp != e.savedPrint || e.saveFailing != "") {
		if saveErr = e.saveStateLogged(); saveErr == nil {
			e.savedPrint = fp
		}
	}
	if renderErr = e.refreshExposition(); renderErr != nil {
		e.log.Error("cannot render metrics", "err", renderErr)
	}
	e.renderedAt, e.renderCost, e.renderPending = time.Now(), time.Since(t0), false
	return saveErr, renderErr
}

// statePrint sums up what a save of the state file would change: every project (id and gen,
// which moves with whatever it counted, tracked, watched or listed) and the counters saved beside.
// Equal prints: the file on disk already holds every count a render can show, and saving again
// (at 10k flows, about 100 ms) would only move poll positions, which a restart re-reads anyway.
func (e *model) statePrint() uint64 {
	h := fnv.New64a()
	var b []byte
	ids := make([]string, 0, len(e.projects))
	for id := range e.projects {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := e.projects[id]
		b = append(b[:0], id...)
		b = binary.LittleEndian.AppendUint64(append(b, 0), p.gen)
		for _, c := range [...]float64{p.failures, p.capHits, p.cutShort, p.invalidRuns} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c))
		}
		b = append(b, b2byte(p.started))
		h.Write(b)
	}
	h.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(e.trackedDropped)))
	return h.Sum64()
}

func b2byte(b bool) byte { return byte(b2i(b)) }

// renderShare bounds rendering under Run: a render at most every renderShare times what the last
// one took.
const renderShare = 5

// due lists the projects to poll (all, or with dueOnly those due) with each project's phase:
// its place among the projects by id, spread over the interval. The projects polled longest ago
// go first: when a poll runs out of time (a big platform at a low rate limit), the next one
// starts with those it did not reach, so every project is polled in turn instead of the same
// first ones every time.
func (e *model) due(dueOnly bool) ([]*projectState, map[string]time.Duration) {
	all := make([]string, 0, len(e.projects))
	for id := range e.projects {
		all = append(all, id)
	}
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
	sort.Slice(projects, func(i, j int) bool {
		a, b := projects[i], projects[j]
		if !a.lastSuccess.Equal(b.lastSuccess) {
			return a.lastSuccess.Before(b.lastSuccess)
		}
		return a.id < b.id
	})
	return projects, phase
}

// pollProjects polls the projects due, cfg.Concurrency at a time, applies what they read, and
// folds what their runs said about the server's clock. The fetches run on their own goroutines
// while this one, the model's owner, waits: each reads its own project and writes only its
// projectPoll; their results are applied here once all are done.
func (e *model) pollProjects(ctx, parent context.Context, seq uint64, dueOnly bool) (polled int, _ []error) {
	projects, phase := e.due(dueOnly)
	polls := make([]*projectPoll, 0, len(projects))
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
		pp := e.startPoll(parent, p, phase[p.id])
		polls = append(polls, pp)
		wg.Go(func() {
			defer func() { <-sem }()
			pp.err = e.fetch(ctx, pp.p, pp.a.now, pp.f)
		})
	}
	wg.Wait()
	errs := make([]error, 0, len(polls))
	for _, pp := range polls {
		errs = append(errs, e.applyPoll(ctx, parent, pp, seq))
	}
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

	var ev clockEvidence
	for _, p := range projects {
		ev = mergeEvidence(ev, p.clockEv)
		p.clockEv = clockEvidence{}
	}
	e.updateServerClockLocked(ev)
	return len(projects) - postponed, errs
}

// logDroppedFlows logs, in one line, that flows are not exported because --metrics.max-flows is
// reached: when their number first grows, and when it grows again (100,000 flows at the cap make
// one line, not 90,000).
func (e *model) logDroppedFlows() {
	switch {
	case e.droppedFlows > e.droppedLoggedN:
		e.log.Warn("flows not exported: --metrics.max-flows reached (see activepieces_exporter_flows_dropped)",
			"dropped", e.droppedFlows, "max_flows", e.cfg.MaxFlows)
		e.droppedLoggedN = e.droppedFlows
	case e.droppedFlows < e.droppedLoggedN:
		e.droppedLoggedN = e.droppedFlows
	}
}

// saveStateLogged saves the state file, counts a failure, and logs when saving starts failing,
// when the error changes and when it recovers.
func (e *model) saveStateLogged() error {
	err := e.saveState()
	if err != nil {
		e.stateSaveFailures++
	}
	logged := e.saveFailing
	e.saveFailing = ""
	if err != nil {
		e.saveFailing = err.Error()
	}
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
func (e *model) discover(ctx context.Context) error {
	due := e.lastDiscovery.IsZero() || e.now().Sub(e.lastDiscovery) >= e.cfg.ProjectsInterval || e.discoveryErr != nil
	if !due {
		return nil
	}
	flags := e.askServer(ctx)
	list, err := e.listProjects(ctx)
	e.learnServer(flags)
	if len(e.cfg.Projects) > 0 {
		// Names are a nicety for configured projects: a key that cannot list projects still polls.
		e.lastDiscovery = e.now()
		if err != nil {
			e.log.Warn("cannot list projects for their names; using ids", "err", err)
			return nil
		}
		for _, pr := range list {
			if p, ok := e.projects[pr.ID]; ok && pr.DisplayName != "" {
				p.rename(capLabel(pr.DisplayName))
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
			p.rename(capLabel(pr.DisplayName))
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

// listProjects lists the projects to watch: GET /v1/projects; on servers without that route
// (mid-2025, API.md §10) the signed-in user's GET /v1/users/projects; without either, the user's
// default project (from the sign-in answer), when there is one.
func (e *model) listProjects(ctx context.Context) ([]apiclient.Project, error) {
	list, err := apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Project], error) {
		return e.api.ListProjects(ctx, e.cfg.PageSize, cursor)
	})
	if !errors.Is(err, apiclient.ErrRouteNotFound) {
		return list, err
	}
	list, err = apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Project], error) {
		return e.api.ListUserProjects(ctx, e.cfg.PageSize, cursor)
	})
	if !errors.Is(err, apiclient.ErrRouteNotFound) || e.defaultProject == nil {
		return list, err
	}
	if id := e.defaultProject(); id != "" {
		return []apiclient.Project{{ID: id}}, nil
	}
	return nil, err
}

// pollMix is what the projects' polls cost beyond the listing of new runs, on average per
// project: the requests of a flow refresh (every FlowsInterval: flows; folders for projects whose
// flows are in any; the late-window count for projects with runs to check) and of an overlap
// sweep (every OverlapInterval, for those too). Runs in flight and the retry watch add theirs only
// when there are such runs. A project not polled yet is assumed to need everything.
type pollMix struct{ refresh, overlap float64 }

// pollMixLocked walks the projects once for their pollMix (mu held, reading is enough).
func (e *model) pollMixLocked() pollMix {
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
			folders = f.FolderID != ""
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
func (e *model) pollCost(n int, m pollMix) (perPoll float64, period time.Duration) {
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

// checkRateLocked warns, at start-up and when the number of projects changes, when the rate
// limit cannot sustain the poll interval for them.
func (e *model) checkRateLocked() {
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

// projectPoll is one project's part of a poll: prepared by the model's owner (startPoll),
// filled by a fetch on its own goroutine, applied by the owner (applyPoll).
type projectPoll struct {
	p     *projectState // read by the fetch, written only by applyPoll
	phase time.Duration
	now   time.Time
	a     *attempt // the fetch's (replay.go)
	f     *fetched // the fetch's
	err   error    // the fetch's
}

// startPoll prepares a project's poll: the attempt an earlier poll could not finish is continued
// (replay.go), else a new one starts.
func (e *model) startPoll(parent context.Context, p *projectState, phase time.Duration) *projectPoll {
	now := e.now()
	a := p.attempt
	if a == nil {
		a = newAttempt(e.api, now, e.serverNow(), e.startedAt.Add(e.clock.applied))
	}
	p.attempt = nil
	a.polls, a.reqCtx = a.polls+1, parent
	return &projectPoll{p: p, phase: phase, now: now, a: a, f: &fetched{api: a, serverNow: a.serverNow, serverStart: a.serverStart}}
}

// applyPoll folds a project's fetched poll into the model, or its failure; ctx is the poll's
// deadline, parent the poll's context without it.
func (e *model) applyPoll(ctx, parent context.Context, pp *projectPoll, seq uint64) error {
	p, a, f, err, now := pp.p, pp.a, pp.f, pp.err, pp.now
	phase := pp.phase
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
	if errors.Is(err, apiclient.ErrAuthorization) && len(e.cfg.Projects) == 0 && e.api.SignsIn() {
		// A project the signed-in user may not read (removed from it since discovery): left
		// out until a discovery lists it again, not a poll that fails forever. Logged once.
		e.removeFlowsLocked(p, nil)
		delete(e.projects, p.id)
		level := slog.LevelWarn
		if e.deniedLogged[p.id] {
			level = slog.LevelDebug
		}
		e.deniedLogged[p.id] = true
		e.log.Log(context.Background(), level, "the signed-in user may not read this project; it is left out until a discovery lists it again (make the user a platform admin to watch every project)",
			"project_id", p.id, "project", p.name, "err", err)
		return nil
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
