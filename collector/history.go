package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// historyRange is the part of a project's look-back history still to read: runs created in
// [from, to], newest first. boundary holds the ids already read that were created exactly at to
// (the next page starts there again, inclusive).
type historyRange struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Boundary []string  `json:"boundary,omitempty"`
}

// The look-back history (runs created in the --poll.lookback before start-up) only feeds the
// last-run gauges, the consecutive-failure gauge and the retry watch. A project's first poll
// reads one page of its newest runs; the rest is read here, in the background, at
// Config.HistoryRate, a page per project in turn, newest first: counting, the flows' zero series
// and readiness never wait for it.

// RunHistory reads pending look-back history until ctx ends: Run starts it.
func (e *Exporter) RunHistory(ctx context.Context) {
	for {
		if _, err := e.ReadHistory(ctx, 0); err != nil && ctx.Err() == nil {
			e.log.Debug("reading look-back history", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.historyWake:
		case <-time.After(e.cfg.PollInterval): // a page that failed is tried again
		}
	}
}

// ReadHistory reads pending look-back history, one page per project in turn, until none is left,
// maxPages pages have been read (0: no limit) or ctx ends, and returns the pages read. A
// project whose page fails is left for the next call.
func (e *Exporter) ReadHistory(ctx context.Context, maxPages int) (pages int, err error) {
	failed := map[string]bool{}
	var errs []error
	for {
		ids := e.historyPending(failed)
		if len(ids) == 0 {
			return pages, errors.Join(errs...)
		}
		for _, id := range ids {
			if maxPages > 0 && pages >= maxPages || ctx.Err() != nil {
				return pages, errors.Join(append(errs, ctx.Err())...)
			}
			if err := e.historyLimiter.Wait(ctx); err != nil {
				return pages, errors.Join(append(errs, err)...)
			}
			if err := e.readHistoryPage(ctx, id); err != nil {
				failed[id] = true
				errs = append(errs, fmt.Errorf("project %s: reading look-back history: %w", id, err))
				continue
			}
			pages++
		}
	}
}

// historyPending lists the projects with history left to read, except those in skip.
func (e *Exporter) historyPending(skip map[string]bool) []string {
	m, release := e.acquire()
	defer release()
	var ids []string
	for id, p := range m.projects {
		if p.history != nil && !skip[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// historyJob is a page of a project's history to read: taken from the model by its owner, read
// from the API by the history reader without the model, applied by its owner again.
type historyJob struct {
	project *projectState // for identity only: the page applies only to the same project
	id      string
	h       historyRange
	f       fetched
}

// readHistoryPage reads the newest page of a project's pending history and applies it.
func (e *Exporter) readHistoryPage(ctx context.Context, id string) error {
	m, release := e.acquire()
	job, ok := m.historyJob(id)
	release()
	if !ok {
		return nil // done, or the project gone, meanwhile
	}
	runs, w, err := e.listRange(ctx, id, &job.f, apiclient.ListFlowRunsParams{CreatedAfter: job.h.From, CreatedBefore: job.h.To, Limit: bulkPageSize}, 1)
	if err != nil {
		return err
	}
	m, release = e.acquire()
	defer release()
	m.applyHistoryPage(job, runs, w)
	return nil
}

// historyJob is the next page of project id's pending history, if any.
func (e *model) historyJob(id string) (historyJob, bool) {
	p := e.projects[id]
	if p == nil || p.history == nil {
		return historyJob{}, false
	}
	return historyJob{project: p, id: id, h: *p.history, f: fetched{api: e.api, serverNow: e.serverNow(), server: p.server}}, true
}

// applyHistoryPage applies a page of history that job read.
func (e *model) applyHistoryPage(job historyJob, runs []apiclient.FlowRun, w walk) {
	p, h := e.projects[job.id], job.h
	if p != job.project || p.history == nil {
		return
	}
	p.touch()
	skip := map[string]bool{}
	for _, b := range h.Boundary {
		skip[b] = true
	}
	rules := e.ledgerRules(p, e.pollSeq)
	var news ledgerNews
	for i := range runs {
		r := &runs[i]
		if !skip[r.ID] && !r.Created.After(h.To) {
			p.observeHistory(r, p.id, rules, &news)
		}
	}
	e.noteNewsLocked(p, &news)
	recordHistoryLocked(p, news.finished, e.cfg.DurationBuckets, e.cfg.MaxFailedStepsPerFlow)
	switch {
	case !w.capped:
		p.history = nil
		e.log.Debug("look-back history read", "project_id", p.id)
	case w.oldest.After(h.To):
		// The page went above the range: a server ignoring createdBefore would hand out the same
		// newest page forever. The history only feeds gauges: give it up.
		p.history = nil
		e.log.Warn("the server ignores createdBefore; the look-back history is not read further", "project_id", p.id)
	case w.oldest.Equal(h.To):
		// A whole page created in one millisecond: step below it (only gauges can miss a run).
		p.history = &historyRange{From: h.From, To: h.To.Add(-time.Millisecond)}
	default:
		next := &historyRange{From: h.From, To: w.oldest}
		for _, r := range runs {
			if r.Created.Equal(w.oldest) {
				next.Boundary = append(next.Boundary, r.ID)
			}
		}
		p.history = next
	}
}

// recordHistoryLocked applies history to the flows newest first, as it is read: older runs only
// fill in what newer ones left unknown.
func recordHistoryLocked(p *projectState, finished []pendingRun, buckets []float64, maxSteps int) {
	sortByFinish(finished)
	slices.Reverse(finished)
	for i := range finished {
		if fl := p.flows[finished[i].Run.FlowID]; fl != nil && fl.exported {
			fl.record(&finished[i], buckets, maxSteps)
		}
	}
}

// newHistoryLimiter paces the history reader at Config.HistoryRate.
func newHistoryLimiter(r float64) *rate.Limiter { return rate.NewLimiter(rate.Limit(r), 1) }
