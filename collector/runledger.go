package collector

import (
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// runLedger is the run accounting of one project as plain data: the runs in flight (tracked
// until they finish), the finished runs recently read (so a run listed twice is counted once),
// the in-flight runs deliberately not tracked, and the finished runs watched for a retry that
// re-opens their row. Its methods are pure: given what was read and the rules of the moment,
// they change the ledger and say what changed (ledgerNews): no I/O, no logs, no locks, no
// Prometheus. The model applies the news to the flows' counters and logs what is worth it.
type runLedger struct {
	// seen holds the ids of finished runs recently read (bounded by the ledger window).
	seen idSet
	// untracked holds in-flight runs deliberately not tracked (no room, or paused beyond the
	// pause limit), so a re-read neither tracks them nor counts them as dropped again (bounded
	// like seen).
	untracked map[string]time.Time
	tracked   map[string]*trackedRun
	// watched holds finished runs that may be retried on the same row (see watchedRun).
	watched map[string]watchedRun
}

func newRunLedger() runLedger {
	return runLedger{seen: idSet{}, untracked: map[string]time.Time{}, tracked: map[string]*trackedRun{}, watched: map[string]watchedRun{}}
}

// ledgerRules are the rules the ledger applies to what it is shown, as of one apply.
type ledgerRules struct {
	seq uint64 // the poll applied
	// floor: no listing asked for finished runs created before it (they were counted and have
	// left the ledger); one that comes back anyway is not new.
	floor time.Time
	// counting: the project's first poll is done; finished runs created from countFrom on are
	// counted, older ones are history (gauges only), and so are runs that finished before
	// finishedFrom (the server's time of the first poll): a row that became visible late.
	counting     bool
	countFrom    time.Time
	finishedFrom time.Time
	serverNow    time.Time     // the server's clock now (the retry window is measured on it)
	retryWindow  time.Duration // how long a finished run is watched for a retry (0: not at all)
	maxTracked   int           // runs tracked (and, apart, watched) at most
	// skip reports flows whose runs are not accounted (excluded by the flow filter, deleted).
	skip func(flowID string) bool
	// intern returns the flow's own copy of a flow id (or the id), so that a watched run does
	// not hold a string of its own.
	intern func(flowID string) string
}

// ledgerNews is what observations changed beyond the ledger itself.
type ledgerNews struct {
	finished       []pendingRun // finished executions to apply to the flows (counted or gauges only)
	invalid        int          // runs without id, created time or status, or of another project
	firstInvalid   *apiclient.FlowRun
	droppedFields  *apiclient.FlowRun // a run with fields that could not be decoded
	trackedDropped int                // in-flight runs not tracked: no room
	watchFull      bool               // a retryable run not watched: no room
	reopened       int                // finished runs re-opened by a retry
}

// plausibleTimes drops a run's start, finish or update time when it lies beyond what the server's
// clock allows (as far ahead of ours as a clock may be, maxClockOffset, and maxClockSkew more): a
// finishTime in 2300 would otherwise stay the flow's latest run for good. The run is accounted without that time (as if the server had not said it),
// and the field is named in r.Dropped.
func (rules *ledgerRules) plausibleTimes(r *apiclient.FlowRun) {
	horizon := rules.serverNow.Add(maxClockOffset + maxClockSkew)
	for _, t := range []struct {
		name string
		at   *apiclient.Time
	}{{"startTime", &r.StartTime}, {"finishTime", &r.FinishTime}, {"updated", &r.Updated}} {
		if t.at.After(horizon) {
			*t.at = apiclient.Time{}
			r.Dropped = append(r.Dropped, t.name)
		}
	}
}

// valid reports whether a run can be accounted at all.
func validRun(r *apiclient.FlowRun, projectID string) bool {
	return r.Invalid == "" && r.ID != "" && !r.Created.IsZero() && r.Status != "" && (r.ProjectID == "" || r.ProjectID == projectID)
}

// observe classifies one run read from the API. listed says it came from a time-range listing
// (where a finished run may be first seen) rather than an in-flight listing or a refresh (where
// only runs already tracked matter).
func (l *runLedger) observe(r *apiclient.FlowRun, projectID string, listed bool, rules *ledgerRules, news *ledgerNews) {
	rules.plausibleTimes(r)
	if !validRun(r, projectID) {
		if news.invalid == 0 {
			news.firstInvalid = r
		}
		news.invalid++
		return
	}
	if len(r.Dropped) > 0 && news.droppedFields == nil {
		news.droppedFields = r
	}
	if rules.skip(r.FlowID) {
		if listed {
			l.seen.add(r.ID, r.Created.Time) // known, so the overlap sweep's count matches
		}
		return
	}
	if t, ok := l.tracked[r.ID]; ok {
		l.observeTracked(r, t, rules, news)
		return
	}
	if w, ok := l.watched[r.ID]; ok {
		l.compareWatched(r, w, rules, news)
		return
	}
	if l.seen.has(r.ID) {
		return
	}
	if r.Status.IsInFlight() {
		if _, skip := l.untracked[r.ID]; skip {
			return
		}
		if len(l.tracked) >= rules.maxTracked {
			l.untracked[r.ID] = r.Created.Time
			news.trackedDropped++
			return
		}
		l.tracked[r.ID] = &trackedRun{FlowID: r.FlowID, Status: r.Status, Created: r.Created.Time, Start: r.StartTime.Time, touched: rules.seq,
			Archived: !r.ArchivedAt.IsZero()}
		return
	}
	if !listed || r.Created.Before(rules.floor) {
		return // never tracked: only a time-range listing may show it first, and only recent
	}
	l.seen.add(r.ID, r.Created.Time)
	l.watch(r, rules, news)
	// Runs that finished before the exporter started are history: gauges only. All that the first
	// poll of a project lists is (whatever its times, which a wrong clock can put anywhere).
	news.finished = append(news.finished, pendingRun{Run: *r, Count: rules.counts(r)})
}

// counts reports whether a finished run first seen now is counted: created after what the
// first poll listed, and not finished before that poll (a late row of the history).
func (rules *ledgerRules) counts(r *apiclient.FlowRun) bool {
	return rules.counting && !r.Created.Before(rules.countFrom) &&
		(r.FinishTime.IsZero() || !r.FinishTime.Before(rules.finishedFrom))
}

// observeTracked updates a tracked run; one that has finished leaves the tracked runs and is counted.
func (l *runLedger) observeTracked(r *apiclient.FlowRun, t *trackedRun, rules *ledgerRules, news *ledgerNews) {
	if !r.Status.IsTerminal() {
		t.Status, t.Start, t.touched, t.Archived = r.Status, r.StartTime.Time, rules.seq, !r.ArchivedAt.IsZero()
		return
	}
	delete(l.tracked, r.ID)
	l.seen.add(r.ID, r.Created.Time)
	if t.Reopened && unixMS(r.StartTime.Time) == t.OrigStart && unixMS(r.FinishTime.Time) == t.OrigFinish {
		// Re-opened, and finished with the times it had before: the same execution seen again
		// (a status that flapped), not a retry. Nothing is counted.
		l.watch(r, rules, news)
		return
	}
	pr := pendingRun{Run: *r, Count: true, Retry: t.Reopened && !t.RetrySeen}
	// A retry on a server that keeps startTime: finishTime − startTime spans both executions.
	pr.NoDuration = t.Reopened && unixMS(r.StartTime.Time) == t.OrigStart
	pr.NoQueueWait = t.Reopened // its startTime − created spans the execution before
	l.watch(r, rules, news)
	news.finished = append(news.finished, pr)
}

// watch remembers a finished run that may be retried on the same row, while it ended within the
// retry window.
func (l *runLedger) watch(r *apiclient.FlowRun, rules *ledgerRules, news *ledgerNews) {
	if rules.retryWindow <= 0 || !r.Status.IsRetryable() {
		delete(l.watched, r.ID)
		return
	}
	if rules.serverNow.Sub(orderTime(r)) > rules.retryWindow {
		return
	}
	if _, ok := l.watched[r.ID]; !ok && len(l.watched) >= rules.maxTracked {
		news.watchFull = true
		return
	}
	w := watchedOf(r)
	w.FlowID = rules.intern(r.FlowID)
	l.watched[r.ID] = w
}

// compareWatched compares a watched run as read now with what was recorded when it finished. A
// retry re-opens the row: the run is back in flight (tracked until it finishes again), or it has
// finished again between two reads (a new finishTime, or a new startTime): that execution is
// counted too. A new status with the same times is a correction of the same execution: nothing is
// counted again.
func (l *runLedger) compareWatched(r *apiclient.FlowRun, w watchedRun, rules *ledgerRules, news *ledgerNews) {
	start, finish := unixMS(r.StartTime.Time), unixMS(r.FinishTime.Time)
	switch {
	case r.Status.IsInFlight():
		// Back in flight: a retry when its times are new (servers since 2026-04-22 set a new
		// startTime and clear finishTime); with the old times it may be an older server's retry
		// or a status that flapped, told apart when it finishes (observeTracked).
		delete(l.watched, r.ID)
		retry := start != w.Start || finish != w.Finish
		l.tracked[r.ID] = &trackedRun{FlowID: r.FlowID, Status: r.Status, Created: r.Created.Time, Start: r.StartTime.Time,
			touched: rules.seq, Archived: !r.ArchivedAt.IsZero(), Reopened: true, OrigStart: w.Start, OrigFinish: w.Finish, RetrySeen: retry}
		if retry {
			news.finished = append(news.finished, pendingRun{Run: *r, Retry: true})
			news.reopened++
		}
	case finish != w.Finish || start != w.Start:
		l.seen.add(r.ID, r.Created.Time)
		l.watch(r, rules, news)
		news.finished = append(news.finished, pendingRun{Run: *r, Count: true, Retry: true, NoDuration: start == w.Start})
		news.reopened++
	case r.Status != w.Status:
		w.Status = r.Status
		l.watched[r.ID] = w
		if !r.Status.IsRetryable() {
			delete(l.watched, r.ID)
		}
	}
}

// observeWatchListing takes in a run of the retry watch's listing (runs in a retryable status):
// head is the poll position (a run created after it is the next listing's to read).
func (l *runLedger) observeWatchListing(r *apiclient.FlowRun, projectID string, head time.Time, rules *ledgerRules, news *ledgerNews) {
	_, known := l.watched[r.ID]
	_, tracked := l.tracked[r.ID]
	_, untracked := l.untracked[r.ID]
	switch {
	case known || tracked || untracked || l.seen.has(r.ID) || r.ID == "" || r.Created.IsZero():
		l.observe(r, projectID, false, rules, news)
	case rules.skip(r.FlowID):
		// A flow not exported.
	case r.Created.After(head) && !rules.counting:
		// Newer than the first poll's position: the next listing reads it, and counts it.
	case rules.counting && !r.Created.Before(rules.floor):
		// Within the ledger's window, never listed: a row that became visible late, or one newer
		// than this poll's listing. Taken in now, as a listing would (counted unless it is a
		// late row of the history, which still sets the gauges): were it left to the next
		// listing, a retry in between would hide this execution.
		l.observe(r, projectID, true, rules, news)
	default:
		// Finished before the exporter knew the project (or beyond the ledger): the baseline a
		// retry is compared with.
		l.watch(r, rules, news)
	}
}

// unwatchBefore stops watching runs that ended before oldest (unix ms): beyond the retry window.
func (l *runLedger) unwatchBefore(oldest int64) {
	for id, w := range l.watched {
		end := w.Finish
		if end == 0 {
			end = w.Created
		}
		if end < oldest {
			delete(l.watched, id)
		}
	}
}

// observeHistory takes in one run of the look-back history: never counted; a run the ledger has
// applied is skipped; one in flight is tracked; a finished one is remembered (so the late-window
// check finds it known), watched for retries, and feeds the gauges.
func (l *runLedger) observeHistory(r *apiclient.FlowRun, projectID string, rules *ledgerRules, news *ledgerNews) {
	rules.plausibleTimes(r)
	if !validRun(r, projectID) {
		return
	}
	_, tracked := l.tracked[r.ID]
	_, untracked := l.untracked[r.ID]
	if tracked || untracked || l.seen.has(r.ID) || rules.skip(r.FlowID) {
		return
	}
	if _, watched := l.watched[r.ID]; watched {
		// Watched since the first poll's retry watch listed it, but not yet applied to the
		// gauges: the watch keeps its baseline (a retry is the watch's to see).
		l.seen.add(r.ID, r.Created.Time)
		news.finished = append(news.finished, pendingRun{Run: *r, backfill: true})
		return
	}
	if r.Status.IsInFlight() {
		if len(l.tracked) < rules.maxTracked {
			l.tracked[r.ID] = &trackedRun{FlowID: r.FlowID, Status: r.Status, Created: r.Created.Time, Start: r.StartTime.Time, touched: rules.seq,
				Archived: !r.ArchivedAt.IsZero()}
		}
		return
	}
	if !r.Status.IsTerminal() {
		return
	}
	l.seen.add(r.ID, r.Created.Time)
	l.watch(r, rules, news)
	news.finished = append(news.finished, pendingRun{Run: *r, backfill: true})
}

// dropGone stops tracking in-flight runs the server no longer has (gone, unless a listing of
// this poll returned them) and PAUSED runs older than pauseLimit, which will never be resumed;
// it returns the ids of the gone ones it dropped.
func (l *runLedger) dropGone(gone []string, seq uint64, now time.Time, pauseLimit time.Duration) (dropped []string) {
	for _, id := range gone {
		if t, ok := l.tracked[id]; ok && t.touched != seq {
			delete(l.tracked, id)
			dropped = append(dropped, id)
		}
	}
	for id, t := range l.tracked {
		if t.Status == apiclient.StatusPaused && now.Sub(t.Created) > pauseLimit {
			delete(l.tracked, id)
			l.untracked[id] = t.Created // a re-read must not track it again
		}
	}
	return dropped
}

// forgetBefore forgets the finished runs (and untracked ones) created before horizon: no later
// listing may return them again.
func (l *runLedger) forgetBefore(horizon time.Time) {
	h := horizon.UnixMilli()
	for k, created := range l.seen {
		if created < h {
			delete(l.seen, k)
		}
	}
	for id, created := range l.untracked {
		if created.Before(horizon) {
			delete(l.untracked, id)
		}
	}
}

// forgetFlow stops tracking the runs of a flow that is gone.
func (l *runLedger) forgetFlow(flowID string) {
	for rid, t := range l.tracked {
		if t.FlowID == flowID {
			delete(l.tracked, rid)
		}
	}
}
