package collector

import (
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// applyLocked folds one successful poll of a project into its state.
func (e *model) applyLocked(p *projectState, f *fetched, seq uint64, now time.Time) {
	if !p.started {
		// What the first poll lists is history; what appears after it is counted.
		p.countFrom = f.head.Add(time.Millisecond)
		p.history = f.history
		if p.history != nil {
			select { // wake the history reader
			case e.historyWake <- struct{}{}:
			default:
			}
		}
	}
	if f.flowsListed {
		e.applyFlowsLocked(p, f, seq)
	}
	finished := p.deferred
	p.deferred = nil

	// No listing of this poll asked for finished runs older than floor: one that comes back anyway
	// (a server ignoring createdAfter) was counted before and has left the ledger.
	// And a ledger restored from a state file knows the runs only from ledgerFrom on (an older
	// format, or a shorter --poll.late-window, kept less): nothing older is taken as new.
	var floor time.Time
	if p.started {
		floor = p.ledgerHorizon(e.ledgerWindow())
		if p.ledgerFrom.After(floor) {
			floor = p.ledgerFrom
		}
	}
	for i := range f.inflight {
		e.observeLocked(p, &f.inflight[i], seq, false, floor, &finished)
	}
	for i := range f.listed {
		e.observeLocked(p, &f.listed[i], seq, true, floor, &finished)
	}
	e.applyWatchLocked(p, f, seq, floor, &finished)
	e.dropTrackedLocked(p, f.gone, seq, now)
	e.recordLocked(p, finished, seq)

	p.head, p.started, p.gaps = f.head, f.started, f.gaps
	if !f.overlapAt.IsZero() {
		p.lastOverlap = f.overlapAt
		p.overlapHead = f.overlapHead
		if p.overlapHead.IsZero() {
			p.overlapHead = f.head // the first poll: its position
		}
	}
	if f.capped {
		p.capHits++
	}
	// Logged when a backlog appears and when it is gone, not on every poll in between.
	switch {
	case len(p.gaps) > 0 && !p.backlogged:
		e.log.Warn("page cap reached; the rest is read in later polls", "project_id", p.id,
			"max_pages", e.cfg.MaxPages, "backlog_ranges", len(p.gaps))
	case len(p.gaps) == 0 && p.backlogged:
		e.log.Info("backlog read; the project is up to date", "project_id", p.id)
	}
	p.backlogged = len(p.gaps) > 0
	e.pruneLedgersLocked(p)
}

// dropTrackedLocked stops tracking in-flight runs the server no longer has (gone, unless a
// listing of this poll returned them) and PAUSED runs older than the platform's pause limit,
// which will never be resumed.
func (e *model) dropTrackedLocked(p *projectState, gone []string, seq uint64, now time.Time) {
	for _, id := range gone {
		if t, ok := p.tracked[id]; ok && t.touched != seq {
			delete(p.tracked, id)
			e.log.Debug("in-flight run no longer listed by the server; dropped", "project_id", p.id, "run_id", id)
		}
	}
	for id, t := range p.tracked {
		if t.status == apiclient.StatusPaused && now.Sub(t.created) > e.cfg.PauseLimit {
			delete(p.tracked, id)
			p.untracked[id] = t.created // a re-read must not track it again
		}
	}
}

// recordLocked applies finished runs (and retries) to their flows in the order they finished;
// those of a flow whose zero series no scrape has been given yet wait for a later poll.
func (e *model) recordLocked(p *projectState, finished []pendingRun, seq uint64) {
	sortByFinish(finished)
	for _, pr := range finished {
		fl := p.flows[pr.run.FlowID]
		switch {
		case fl == nil:
			e.log.Debug("finished run of a flow not listed; not exported", "project_id", p.id, "flow_id", pr.run.FlowID)
		case (pr.count || pr.retry) && !e.zeroServed(fl, seq):
			// The flow's zero series have not been scraped yet: apply in a later poll, so that
			// the first sample Prometheus sees is 0 and increase() sees the run.
			p.deferred = append(p.deferred, pr)
		case !fl.exported:
		default:
			fl.record(&pr, e.cfg.DurationBuckets, e.cfg.MaxFailedStepsPerFlow)
			if pr.count && !pr.retry && !pr.noQueueWait {
				p.queueWait.observe(&pr.run)
			}
		}
	}
}

// pruneLedgersLocked forgets the ids of finished runs that no later listing may return again.
// Pruning walks the ledgers: it waits until the horizon has moved by 1/32 of the window.
func (e *model) pruneLedgersLocked(p *projectState) {
	horizon := p.ledgerHorizon(e.ledgerWindow())
	if horizon.Sub(p.prunedAt) < e.ledgerWindow()/32 {
		return
	}
	p.prunedAt = horizon
	h := horizon.UnixMilli()
	for k, created := range p.seen {
		if created < h {
			delete(p.seen, k)
		}
	}
	for id, created := range p.untracked {
		if created.Before(horizon) {
			delete(p.untracked, id)
		}
	}
}

// observeLocked classifies one run read from the API. listed says it came from a time-range listing
// (where a finished run may be first seen) rather than an in-flight listing or a refresh (where
// only runs already tracked matter).
func (e *model) observeLocked(p *projectState, r *apiclient.FlowRun, seq uint64, listed bool, floor time.Time, finished *[]pendingRun) {
	if r.Invalid != "" || r.ID == "" || r.Created.IsZero() || r.Status == "" || r.ProjectID != "" && r.ProjectID != p.id {
		if p.invalidRuns == 0 {
			e.log.Warn("the API returned a run without id, created time or status, or of another project; skipping such runs (counted in activepieces_exporter_invalid_runs_total)",
				"project_id", p.id, "run_project_id", capLabel(r.ProjectID), "problem", r.Invalid)
		}
		p.invalidRuns++
		return
	}
	if len(r.Dropped) > 0 && !p.droppedFieldsLogged {
		p.droppedFieldsLogged = true
		e.log.Warn("the API returned a run with fields that cannot be decoded; the run is counted without them (logged once)",
			"project_id", p.id, "run_id", capLabel(r.ID), "fields", r.Dropped)
	}
	if p.ignoredFlow(r.FlowID) || len(e.flowSet) > 0 && p.flows[r.FlowID] == nil {
		if listed {
			p.seen.add(r.ID, r.Created.Time) // known, so the overlap sweep's count matches
		}
		return
	}
	if t, ok := p.tracked[r.ID]; ok {
		if r.Status.IsTerminal() {
			delete(p.tracked, r.ID)
			p.seen.add(r.ID, r.Created.Time)
			pr := pendingRun{run: *r, count: true}
			// A retry on a server that keeps startTime: finishTime − startTime spans both executions.
			pr.noDuration = t.reopened && unixMS(r.StartTime.Time) == t.origStart
			pr.noQueueWait = t.reopened // its startTime − created spans the execution before
			e.watchLocked(p, r)
			*finished = append(*finished, pr)
			return
		}
		t.status, t.start, t.touched = r.Status, r.StartTime.Time, seq
		return
	}
	if w, ok := p.watched[r.ID]; ok {
		e.compareWatchedLocked(p, r, w, seq, finished)
		return
	}
	if p.seen.has(r.ID) {
		return
	}
	if r.Status.IsInFlight() {
		if _, skip := p.untracked[r.ID]; skip {
			return
		}
		if len(p.tracked) >= e.cfg.MaxTrackedRuns {
			p.untracked[r.ID] = r.Created.Time
			e.trackedDropped++
			return
		}
		p.tracked[r.ID] = &trackedRun{flowID: r.FlowID, status: r.Status, created: r.Created.Time, start: r.StartTime.Time, touched: seq}
		return
	}
	if !listed || r.Created.Before(floor) {
		return // never tracked: only a time-range listing may show it first, and only recent
	}
	p.seen.add(r.ID, r.Created.Time)
	e.watchLocked(p, r)
	// Runs that finished before the exporter started are history: gauges only. All that the first
	// poll of a project lists is (whatever its times, which a wrong clock can put anywhere).
	*finished = append(*finished, pendingRun{run: *r, count: p.started && !r.Created.Before(p.countFrom)})
}

// watchLocked remembers a finished run that may be retried on the same row, while it ended within the
// retry window.
func (e *model) watchLocked(p *projectState, r *apiclient.FlowRun) {
	if e.cfg.RetryWindow <= 0 || !r.Status.IsRetryable() {
		delete(p.watched, r.ID)
		return
	}
	end := orderTime(r)
	if e.serverNow().Sub(end) > e.cfg.RetryWindow {
		return
	}
	if _, ok := p.watched[r.ID]; !ok && len(p.watched) >= e.cfg.MaxTrackedRuns {
		if !p.watchFullLogged {
			p.watchFullLogged = true
			e.log.Warn("too many failed runs to watch for retries (--poll.max-tracked-runs); retries of the others are not seen",
				"project_id", p.id, "max", e.cfg.MaxTrackedRuns)
		}
		return
	}
	w := watchedOf(r)
	if fl := p.flows[r.FlowID]; fl != nil {
		w.flowID = fl.id // share the flow's copy of the id rather than keep one per run
	}
	p.watched[r.ID] = w
}

// compareWatchedLocked compares a watched run as read now with what was recorded when it finished. A
// retry re-opens the row: the run is back in flight (tracked until it finishes again), or it has
// finished again between two reads (a new finishTime, or a new startTime): that execution is
// counted too. A new status with the same times is a correction of the same execution: nothing is
// counted again.
func (e *model) compareWatchedLocked(p *projectState, r *apiclient.FlowRun, w watchedRun, seq uint64, finished *[]pendingRun) {
	start, finish := unixMS(r.StartTime.Time), unixMS(r.FinishTime.Time)
	switch {
	case r.Status.IsInFlight():
		delete(p.watched, r.ID)
		p.tracked[r.ID] = &trackedRun{flowID: r.FlowID, status: r.Status, created: r.Created.Time, start: r.StartTime.Time,
			touched: seq, reopened: true, origStart: w.start}
		*finished = append(*finished, pendingRun{run: *r, retry: true})
		e.log.Debug("finished run re-opened (retry)", "project_id", p.id, "run_id", r.ID, "was", w.status, "now", r.Status)
	case finish != w.finish || start != w.start:
		p.seen.add(r.ID, r.Created.Time)
		e.watchLocked(p, r)
		*finished = append(*finished, pendingRun{run: *r, count: true, retry: true, noDuration: start == w.start})
		e.log.Debug("finished run retried and finished again", "project_id", p.id, "run_id", r.ID, "was", w.status, "now", r.Status)
	case r.Status != w.status:
		w.status = r.Status
		p.watched[r.ID] = w
		if !r.Status.IsRetryable() {
			delete(p.watched, r.ID)
		}
	}
}

// applyWatch folds in the runs the retry watch read: the listing of runs in a retryable status
// and the re-read of watched runs that listing did not return.
func (e *model) applyWatchLocked(p *projectState, f *fetched, seq uint64, floor time.Time, finished *[]pendingRun) {
	for i := range f.watchReread {
		e.observeLocked(p, &f.watchReread[i], seq, false, floor, finished)
	}
	for _, id := range f.unwatched {
		delete(p.watched, id)
	}
	for i := range f.watchListed {
		r := &f.watchListed[i]
		_, known := p.watched[r.ID]
		_, tracked := p.tracked[r.ID]
		seen := p.seen.has(r.ID)
		_, untracked := p.untracked[r.ID]
		switch {
		case known || tracked || seen || untracked || r.ID == "" || r.Created.IsZero():
			e.observeLocked(p, r, seq, false, floor, finished)
		case r.Created.After(f.head) || p.ignoredFlow(r.FlowID) || len(e.flowSet) > 0 && p.flows[r.FlowID] == nil:
			// Newer than the poll position: the next listing reads it. Or a flow not exported.
		case !r.Created.Before(floor) && !r.Created.Before(p.countFrom):
			// Created after the exporter started, within the ledger's window, never listed: a row
			// that became visible late. Counted now.
			e.observeLocked(p, r, seq, true, floor, finished)
		default:
			// Finished before the exporter knew the project (or beyond the ledger): the
			// baseline a retry is compared with.
			e.watchLocked(p, r)
		}
	}
	if f.watchListedAt.IsZero() {
		return
	}
	p.watchStarted = true
	// Runs that ended before the retry window are no longer watched.
	oldest := unixMS(e.serverNow().Add(-e.cfg.RetryWindow))
	for id, w := range p.watched {
		end := w.finish
		if end == 0 {
			end = w.created
		}
		if end < oldest {
			delete(p.watched, id)
		}
	}
}

// ledgerWindow is how far below the poll position the ledger keeps the ids of finished runs: as
// far as the overlap sweep reaches (the overlap below the previous sweep's position, an overlap
// interval and a poll before), or the late window when it is longer.
func (e *env) ledgerWindow() time.Duration {
	return max(e.cfg.Overlap+e.cfg.OverlapInterval+e.cfg.PollInterval, e.cfg.LateWindow)
}

// applyFlowsLocked replaces a project's flows and folders with a fresh listing.
func (e *model) applyFlowsLocked(p *projectState, f *fetched, seq uint64) {
	present := map[string]bool{}
	p.ignored = map[string]bool{}
	for _, fl := range f.flows {
		if fl.ID == "" {
			continue
		}
		name := fl.DisplayName()
		if len(e.flowSet) > 0 && !e.flowSet[fl.ID] && !e.flowSet[name] {
			p.ignored[fl.ID] = true
			continue
		}
		present[fl.ID] = true
		st, ok := p.flows[fl.ID]
		if !ok {
			st = &flowState{id: fl.ID, bornPoll: seq, bornAt: e.now()}
			st.resetCounts(len(e.cfg.DurationBuckets))
			p.flows[fl.ID] = st
			if e.exportedFlows < e.cfg.MaxFlows {
				st.exported = true
				e.exportedFlows++
			} else {
				e.droppedFlows++
				if !e.droppedLogged[fl.ID] {
					e.droppedLogged[fl.ID] = true
					e.log.Warn("flow not exported: --metrics.max-flows reached", "project_id", p.id, "flow_id", fl.ID, "max_flows", e.cfg.MaxFlows)
				}
			}
		}
		if st.name != name || st.labels == nil {
			st.name = name
			st.labels = []string{capLabel(p.id), capLabel(fl.ID), capLabel(name)}
		}
		st.status, st.folderID = capLabel(fl.Status), capLabel(fl.FolderID)
	}
	// Runs named flows this listing lacks: remember them so they do not trigger listings.
	for _, r := range f.listed {
		if !present[r.FlowID] {
			p.ignored[r.FlowID] = true
		}
	}
	e.removeFlowsLocked(p, present)
	// Flows beyond the cap take free slots, starting from zero so increase() sees their runs.
	for _, st := range p.flows {
		if !st.exported && e.exportedFlows < e.cfg.MaxFlows {
			st.exported, st.bornPoll, st.bornAt = true, seq, e.now()
			st.resetCounts(len(e.cfg.DurationBuckets))
			e.exportedFlows++
			e.droppedFlows--
		}
	}
	p.folders = map[string]string{}
	for _, fo := range f.folders {
		if fo.ID != "" {
			p.folders[capLabel(fo.ID)] = capLabel(fo.DisplayName)
		}
	}
	p.lastFlows = e.now()
}

// removeFlowsLocked drops the flows of p not in keep (all of them when keep is nil).
func (e *model) removeFlowsLocked(p *projectState, keep map[string]bool) {
	for id, st := range p.flows {
		if keep[id] {
			continue
		}
		if st.exported {
			e.exportedFlows--
		} else {
			e.droppedFlows--
		}
		delete(p.flows, id)
		for rid, t := range p.tracked {
			if t.flowID == id {
				delete(p.tracked, rid)
			}
		}
	}
}

// ledgerHorizon is the oldest creation time a listing may still return: the overlap window below
// the head, or the start of the oldest backlog range.
func (p *projectState) ledgerHorizon(overlap time.Duration) time.Time {
	h := p.head.Add(-overlap - time.Second)
	for _, g := range p.gaps {
		if g.from.Before(h) {
			h = g.from.Add(-time.Second)
		}
	}
	return h
}

// maxDeferPolls bounds how long a new flow's runs wait for a scrape of its zero series, in poll
// intervals: an exporter nobody scrapes still counts. It is time, not polls: Run polls in ticks
// of a tenth of the interval, and ten ticks are shorter than many scrape intervals.
const maxDeferPolls = 10

// zeroServed reports whether a scrape has served the flow's series at zero: an exposition
// rendered after the poll that first listed it (every such exposition has them) was served, or
// the flow has waited maxDeferPolls poll intervals.
func (e *env) zeroServed(fl *flowState, seq uint64) bool {
	return fl.bornPoll < seq && (e.expo.served.Load() >= fl.bornPoll || e.now().Sub(fl.bornAt) >= maxDeferPolls*e.cfg.PollInterval)
}
