package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// A census is one count-by-status request over the creation times of every run the ledger still
// cares about (those in flight, those watched for a retry, and every run of the ledger's window),
// compared with what the ledger says those runs are: how many in all, how many in flight, how
// many in a status the retry watch lists (API.md §3). A run created, a run that finished, a row
// that became visible late, a retry that re-opened a failed run: each moves one of the three
// numbers, so a project where nothing moved costs that one request a poll, and only what moved
// is listed. A quiet project is polled by census alone; an active one lists its new runs on
// every poll as before, and takes a census every overlap interval instead of the overlap sweep's
// count (which the census's total comprises).
//
// Below split the ledger does not know every run (it forgets finished runs beyond its window):
// there the census only learns how many runs there are (below), which holds while nothing there
// changes, and is what the classes are compared on. A run below split that finishes or is
// retried still moves its class.

// censusCounts are a census window's runs: all of them, those in flight, and those in a
// retryable status.
type censusCounts struct{ total, inFlight, retry int64 }

func (c *censusCounts) add(st apiclient.RunStatus, n int64) {
	c.total += n
	switch {
	case st.IsInFlight():
		c.inFlight += n
	case st.IsRetryable():
		c.retry += n
	}
}

// census is what a project's last census settled (not saved: a restored project settles anew).
type census struct {
	// The window starts at from; from split on the ledger knows every run; below counts the
	// runs in [from, split).
	from, split time.Time
	below       int64
	// The in-flight and retryable runs the server counts and the ledger cannot know of (archived
	// ones, runs beyond --poll.max-tracked-runs, runs of flows not exported): what the server's
	// numbers exceed the ledger's by when nothing has moved.
	offInFlight, offRetry int64
	settled               bool
}

// censusRead is one poll's census: its window, the server's answer, and which numbers differ
// from the ledger's (settle: a census that settles the window anew, where nothing is compared).
type censusRead struct {
	from, split, to        time.Time
	below                  int64
	got                    censusCounts
	settle                 bool
	total, inFlight, retry bool
}

// censusSlack is how far below the oldest run it must reach a census window may start before it
// is moved up (a settling census, which costs a few requests more).
const censusSlack = 6 * time.Hour

// censusSplit is where the ledger knows every run from, as of serverNow and a poll position head
// (this poll's: the project's may be one being repaired). Never after head: what is created
// after it is new, never counted below.
func (e *env) censusSplit(p *projectState, serverNow, head time.Time) time.Time {
	horizon := head.Add(-e.ledgerWindow() - time.Second)
	for _, g := range p.gaps {
		if g.from.Before(horizon) {
			horizon = g.from.Add(-time.Second)
		}
	}
	split := latest(horizon.Add(time.Second), p.ledgerFrom, e.sweepFloor(p, serverNow, e.cfg.Overlap))
	if split.After(head) {
		split = head
	}
	return split
}

// censusNeeds is where a census window must start: at the oldest run tracked or watched, or at
// split.
func (p *projectState) censusNeeds(split time.Time) time.Time {
	need := split
	for _, t := range p.tracked {
		if t.Created.Before(need) {
			need = t.Created
		}
	}
	for _, w := range p.watched {
		if c := time.UnixMilli(w.Created); c.Before(need) {
			need = c
		}
	}
	return need
}

// censusPlan is the window of a census taken now, at poll position head.
func (e *env) censusPlan(p *projectState, serverNow, head time.Time) *censusRead {
	c := &p.census
	if !c.settled {
		split := e.censusSplit(p, serverNow, head)
		return &censusRead{from: p.censusNeeds(split), split: split, settle: true}
	}
	need := p.censusNeeds(c.split)
	switch {
	case need.Before(c.from), need.Sub(c.from) > censusSlack, need.Equal(c.split) && c.from.Before(c.split):
		// An older run to watch, or the window far below what it must watch (the run that held
		// it there is gone): settled anew. (below holds what the server's count of the whole
		// window exceeds the ledger's by, archived runs included: it cannot just be dropped.)
		split := e.censusSplit(p, serverNow, head)
		return &censusRead{from: p.censusNeeds(split), split: split, settle: true}
	}
	return &censusRead{from: c.from, split: c.split, below: c.below}
}

// expectCensus is what the ledger says r's window holds, given this poll's reads so far (the
// latest status read of a run stands for it).
func (p *projectState) expectCensus(r *censusRead, reads ...[]apiclient.FlowRun) censusCounts {
	in := func(t time.Time) bool { return !t.Before(r.from) && !t.After(r.to) }
	latestRead := map[string]*apiclient.FlowRun{}
	var all []apiclient.FlowRun
	for _, list := range reads {
		for i := range list {
			if list[i].ID != "" {
				latestRead[list[i].ID] = &list[i]
			}
		}
		all = append(all, list...)
	}
	var c censusCounts
	for id, t := range p.tracked {
		if in(t.Created) && !t.Archived {
			st := t.Status
			if run, ok := latestRead[id]; ok {
				st = run.Status
			}
			c.add(st, 1)
		}
	}
	for id, w := range p.watched {
		if in(time.UnixMilli(w.Created)) {
			st := w.Status
			if run, ok := latestRead[id]; ok {
				st = run.Status
			}
			c.add(st, 1)
		}
	}
	for id, run := range latestRead {
		_, tracked := p.tracked[id]
		_, watched := p.watched[id]
		if !tracked && !watched && in(run.Created.Time) && validRun(run, p.id) {
			c.add(run.Status, 1)
		}
	}
	c.total = r.below + int64(p.knownIn(r.split, r.to, all))
	return c
}

// compare marks the numbers of r that differ from want, beyond what the census c settled.
func (r *censusRead) compare(want censusCounts, c *census) {
	if r.settle {
		return
	}
	r.total = r.got.total != want.total
	r.inFlight = r.got.inFlight-want.inFlight != c.offInFlight
	r.retry = r.got.retry-want.retry != c.offRetry
}

// countRuns asks the server for the runs of p created in [from, to] by status; ok is false when
// the server has no usable count-by-status (learned in f.server, and logged once).
func (e *env) countRuns(ctx context.Context, p *projectState, f *fetched, from, to time.Time) (counts []apiclient.StatusCount, ok bool, err error) {
	counts, err = f.api.CountByStatus(ctx, p.id, from, to)
	var apiErr *apiclient.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.StatusCode == 404 && apiErr.EntityType == "" || apiErr.StatusCode == 400):
		f.server.CountUnsupported = true
		e.log.Info("server has no usable count-by-status; every poll lists runs, and the overlap window is re-read in full", "project_id", p.id, "err", err)
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("counting runs created %s to %s: %w", apiclient.FormatTime(from), apiclient.FormatTime(to), err)
	}
	return counts, true, nil
}

// takeCensus counts p's runs created up to to by status, at poll position head, into f.census
// (left nil when the server cannot count).
func (e *env) takeCensus(ctx context.Context, p *projectState, f *fetched, head, to time.Time) error {
	r := e.censusPlan(p, f.serverNow, head)
	r.to = to
	if r.from.After(r.to) {
		r.from = r.to
	}
	counts, ok, err := e.countRuns(ctx, p, f, r.from, r.to)
	if err != nil || !ok {
		return err
	}
	for _, c := range counts {
		r.got.add(c.Status, c.Count)
	}
	f.census = r
	return nil
}

// settleCensusLocked takes what a poll's census counted, now that the poll's reads are applied,
// as what the project looks like when nothing moves.
func (e *model) settleCensusLocked(p *projectState, f *fetched) {
	r := f.census
	if r == nil {
		return
	}
	if len(p.gaps) > 0 {
		p.census.settled = false // runs of the window are still to read
		return
	}
	r.below = 0
	want := p.expectCensus(r)
	p.census = census{from: r.from, split: r.split, settled: true,
		below:       r.got.total - want.total,
		offInFlight: r.got.inFlight - want.inFlight, offRetry: r.got.retry - want.retry}
}

// moveCensusSplit moves p's census split up to horizon before the ledger forgets what lies below
// it: the runs it knew there join those counted below; or, when nothing lies below (the window
// starts at split), the window starts there too and they leave it. (A run there that the ledger
// knows and the server no longer counts, archived or deleted, leaves below off by one: the next
// census differs, finds nothing, and settles it.)
func (p *projectState) moveCensusSplit(horizon time.Time) {
	c := &p.census
	if !c.settled || !c.split.Before(horizon) {
		return
	}
	if c.from.Equal(c.split) && !p.censusNeeds(horizon).Before(horizon) {
		c.from, c.split = horizon, horizon
		return
	}
	c.below += int64(p.knownIn(c.split, horizon.Add(-time.Millisecond), nil))
	c.split = horizon
}

// backstopEvery is how often a quiet project lists its new runs and its retryable runs although
// no census said so: a new run whose census move another run's archiving or deletion cancelled
// out, and a retry that failed again between two censuses, move no number.
func (e *env) backstopEvery() time.Duration { return 2 * e.cfg.FlowsInterval }

// quietPoll reports whether p's next poll starts with a census and lists only what it shows
// moved: a settled project whose last poll found no new run.
func (e *env) quietPoll(p *projectState) bool {
	return p.started && p.census.settled && !p.active && len(p.gaps) == 0 && !p.lastFlows.IsZero() && !p.server.CountUnsupported
}
