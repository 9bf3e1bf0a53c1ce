package collector

import (
	"time"
)

// applyLocked folds one successful poll of a project into its state.
func (e *model) applyLocked(p *projectState, f *fetched, seq uint64, now time.Time) {
	tracked := len(p.tracked)
	if f.changes(p) {
		p.touch()
	}
	defer func() {
		if len(p.tracked) != tracked { // PAUSED runs past --poll.pause-limit dropped
			p.touch()
		}
	}()
	if !p.started {
		// What the first poll lists is history; what appears after it is counted.
		p.countFrom = f.head.Add(time.Millisecond)
		p.finishedFrom = f.serverNow // when the first read began, by the server's clock
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

	rules := e.ledgerRules(p, seq)
	var news ledgerNews
	news.finished = finished
	for i := range f.inflight {
		p.observe(&f.inflight[i], p.id, false, rules, &news)
	}
	for i := range f.listed {
		p.observe(&f.listed[i], p.id, true, rules, &news)
	}
	e.applyWatchLocked(p, f, rules, &news)
	for _, id := range p.dropGone(f.gone, seq, now, e.cfg.PauseLimit) {
		e.log.Debug("in-flight run no longer listed by the server; dropped", "project_id", p.id, "run_id", id)
	}
	e.noteNewsLocked(p, &news)
	e.recordLocked(p, news.finished, seq)

	p.active = p.started && f.head.After(p.head) || len(f.gaps) > 0
	if !f.listedAt.IsZero() {
		p.lastListed = f.listedAt
	}
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
	e.settleCensusLocked(p, f)
	e.pruneLedgersLocked(p)
}

// changes reports whether applying f may change what p's parts of the rendering show, or what
// the state file holds of p beyond its poll positions: anything read but a census that found
// nothing moved (a quiet poll at rest).
func (f *fetched) changes(p *projectState) bool {
	return !p.started || f.flowsListed || f.foldersListed || f.history != nil || len(p.deferred) > 0 ||
		len(f.listed) > 0 || len(f.inflight) > 0 || len(f.gone) > 0 ||
		len(f.watchListed) > 0 || len(f.watchReread) > 0 || len(f.unwatched) > 0
}

// ledgerRules are the rules p's ledger applies in poll seq.
func (e *model) ledgerRules(p *projectState, seq uint64) *ledgerRules {
	r := &ledgerRules{seq: seq, counting: p.started, countFrom: p.countFrom, finishedFrom: p.finishedFrom, serverNow: e.serverNow(),
		retryWindow: e.cfg.RetryWindow, maxTracked: e.cfg.MaxTrackedRuns,
		skip: func(id string) bool { return p.ignoredFlow(id) || len(e.flowSet) > 0 && p.flows[id] == nil },
		intern: func(id string) string {
			if fl := p.flows[id]; fl != nil {
				return fl.id
			}
			return id
		}}
	// No listing of this poll asked for finished runs older than floor: one that comes back anyway
	// (a server ignoring createdAfter) was counted before and has left the ledger.
	// And a ledger restored from a state file knows the runs only from ledgerFrom on (an older
	// format, or a shorter --poll.late-window, kept less): nothing older is taken as new.
	if p.started {
		r.floor = p.ledgerHorizon(e.ledgerWindow())
		if p.ledgerFrom.After(r.floor) {
			r.floor = p.ledgerFrom
		}
	}
	return r
}

// noteNewsLocked counts and logs what the ledger reported beyond the finished runs.
func (e *model) noteNewsLocked(p *projectState, n *ledgerNews) {
	if n.invalid > 0 {
		if p.invalidRuns == 0 {
			r := n.firstInvalid
			e.log.Warn("the API returned a run without id, created time or status, or of another project; skipping such runs (counted in activepieces_exporter_invalid_runs_total)",
				"project_id", p.id, "run_project_id", capLabel(r.ProjectID), "problem", r.Invalid)
		}
		p.invalidRuns += float64(n.invalid)
	}
	if r := n.droppedFields; r != nil && !p.droppedFieldsLogged {
		p.droppedFieldsLogged = true
		e.log.Warn("the API returned a run with fields that cannot be decoded; the run is counted without them (logged once)",
			"project_id", p.id, "run_id", capLabel(r.ID), "fields", r.Dropped)
	}
	e.trackedDropped += float64(n.trackedDropped)
	if n.watchFull && !p.watchFullLogged {
		p.watchFullLogged = true
		e.log.Warn("too many failed runs to watch for retries (--poll.max-tracked-runs); retries of the others are not seen",
			"project_id", p.id, "max", e.cfg.MaxTrackedRuns)
	}
	if n.reopened > 0 {
		e.log.Debug("finished runs re-opened or finished again (retries)", "project_id", p.id, "runs", n.reopened)
	}
}

// recordLocked applies finished runs (and retries) to their flows in the order they finished;
// those of a flow whose zero series no scrape has been given yet wait for a later poll.
func (e *model) recordLocked(p *projectState, finished []pendingRun, seq uint64) {
	sortByFinish(finished)
	for _, pr := range finished {
		fl := p.flows[pr.Run.FlowID]
		switch {
		case fl == nil:
			e.log.Debug("finished run of a flow not listed; not exported", "project_id", p.id, "flow_id", pr.Run.FlowID)
		case (pr.Count || pr.Retry) && !e.zeroServed(fl, seq):
			// The flow's zero series have not been scraped yet: apply in a later poll, so that
			// the first sample Prometheus sees is 0 and increase() sees the run.
			p.deferred = append(p.deferred, pr)
		case !fl.exported:
		default:
			fl.record(&pr, e.cfg.DurationBuckets, e.cfg.MaxFailedStepsPerFlow)
			if pr.Count && !pr.Retry && !pr.NoQueueWait {
				p.queueWait.observe(&pr.Run)
			}
		}
	}
}

// releaseDeferredLocked applies the deferred runs whose flows' zero series a scrape has now been
// given, between polls (Run calls it when a newer snapshot is served), and reports whether it
// applied any; the others wait on. A release is a generation of its own, as a tick is: its
// snapshot must be newer than the one that was served.
func (e *model) releaseDeferredLocked() bool {
	seq := e.pollSeq + 1
	if !e.anyReleasable(seq) {
		return false
	}
	e.pollSeq, e.completed = seq, seq
	for _, p := range e.projects {
		if len(p.deferred) > 0 {
			waiting := p.deferred
			p.deferred = nil
			e.recordLocked(p, waiting, seq)
			p.touch()
		}
	}
	return true
}

// anyReleasable reports whether recordLocked in generation seq would apply a deferred run.
func (e *model) anyReleasable(seq uint64) bool {
	for _, p := range e.projects {
		for i := range p.deferred {
			if fl := p.flows[p.deferred[i].Run.FlowID]; fl == nil || e.zeroServed(fl, seq) {
				return true
			}
		}
	}
	return false
}

// pruneLedgersLocked forgets the ids of finished runs that no later listing may return again.
// Pruning walks the ledgers: it waits until the horizon has moved by 1/32 of the window.
func (e *model) pruneLedgersLocked(p *projectState) {
	horizon := p.ledgerHorizon(e.ledgerWindow())
	if horizon.Sub(p.prunedAt) < e.ledgerWindow()/32 {
		return
	}
	p.prunedAt = horizon
	p.moveCensusSplit(horizon)
	p.forgetBefore(horizon)
}

// applyWatchLocked folds in the runs the retry watch read: the listing of runs in a retryable
// status and the re-read of watched runs that listing did not return.
func (e *model) applyWatchLocked(p *projectState, f *fetched, rules *ledgerRules, news *ledgerNews) {
	for i := range f.watchReread {
		p.observe(&f.watchReread[i], p.id, false, rules, news)
	}
	for _, id := range f.unwatched {
		delete(p.watched, id)
	}
	for i := range f.watchListed {
		p.observeWatchListing(&f.watchListed[i], p.id, f.head, rules, news)
	}
	if f.watchListedAt.IsZero() {
		return
	}
	p.watchStarted, p.watchedAt = true, f.watchListedAt
	p.unwatchBefore(unixMS(rules.serverNow.Add(-e.cfg.RetryWindow))) // ended before the retry window
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
				e.droppedFlows++ // logged once a poll, in sum (logDroppedFlows)
			}
		}
		if st.Name != name || st.labels == nil {
			st.Name = name
			st.labels = []string{capLabel(p.id), capLabel(fl.ID), capLabel(name)}
		}
		st.Status, st.FolderID = capLabel(fl.Status), capLabel(fl.FolderID)
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
	if f.foldersListed {
		p.folders, p.lastFolders = map[string]string{}, e.now()
		for _, fo := range f.folders {
			if fo.ID != "" {
				p.folders[capLabel(fo.ID)] = capLabel(fo.DisplayName)
			}
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
		p.forgetFlow(id)
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
