package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// fetched is what one poll of a project read, applied at once under the lock.
type fetched struct {
	// api answers the poll's requests (an attempt: see replay.go); serverNow is the server's
	// time when the attempt began.
	api                    runsAPI
	serverNow, serverStart time.Time

	flowsListed   bool
	flows         []apiclient.Flow
	foldersListed bool
	folders       []apiclient.Folder

	listed    []apiclient.FlowRun // from time-range listings
	inflight  []apiclient.FlowRun // from the in-flight listing and the refresh of tracked runs
	gone      []string            // tracked runs the server no longer has
	head      time.Time
	started   bool
	gaps      []gap
	capped    bool
	history   *historyRange // the first poll's: the look-back left to read
	overlapAt time.Time
	// overlapHead is the poll position the overlap sweep checked up to (the first poll's: set by
	// apply).
	overlapHead time.Time
	// server starts as what the project's server was known to be like and gains what this
	// poll learned; applied even when the poll fails.
	server serverTraits

	// The retry watch (at flow refreshes): runs listed in a retryable status, watched runs that
	// listing lacked read again by id, and watched runs the server no longer has.
	watchListed   []apiclient.FlowRun
	watchReread   []apiclient.FlowRun
	unwatched     []string
	watchListedAt time.Time

	// census is the poll's census (census.go), nil when it took none; listedAt: when new runs
	// were listed (zero: a quiet poll that listed none).
	census   *censusRead
	listedAt time.Time
}

// bulkPageSize is the page size of listings that read many rows at once (the retry watch, the
// re-read of the late window): the API enforces no maximum, and a page of 1,000 runs is about
// 1 MB.
const bulkPageSize = 1000

// fetch does every API call of one project's poll; it changes nothing shared (what it learns
// goes into f, applied under the lock by pollProject). A quiet project starts with a census
// (census.go) and reads only what it shows moved; others list their new runs and re-read their
// runs in flight on every poll.
func (e *env) fetch(ctx context.Context, p *projectState, now time.Time, f *fetched) error {
	f.server = p.server
	f.head, f.started = p.head, true
	// A census that settles its window anew compares nothing: such a poll lists as an active one.
	quiet := e.quietPoll(p) && !e.censusPlan(p, f.serverNow, p.head).settle
	if quiet {
		if err := e.takeCensus(ctx, p, f, p.head, latest(f.serverNow, p.head)); err != nil {
			return err
		}
		quiet = f.census != nil
	}
	if quiet {
		f.census.compare(p.expectCensus(f.census), &p.census)
	}
	if !quiet || f.census.total || e.dueAgain(p.lastListed, e.backstopEvery(), now) {
		if err := e.fetchNewRuns(ctx, p, f); err != nil {
			return err
		}
		f.listedAt = now
	}
	refresh := !p.started || p.lastFlows.IsZero() || e.dueAgain(p.lastFlows, e.cfg.FlowsInterval, now)
	if err := e.checkLate(ctx, p, now, f, quiet, refresh); err != nil {
		return err
	}
	if c := f.census; c != nil {
		// Judged on every run read so far: a late row that moves a number can hide a retry
		// that moved it back.
		c.compare(p.expectCensus(c, f.listed), &p.census)
	}
	// Flows are listed after the runs, so that every flow a listed run names is in the listing
	// unless it was deleted: when due, and at once when a run names a flow not known.
	listFlows := refresh
	for _, r := range f.listed {
		if _, ok := p.flows[r.FlowID]; !ok && !p.ignoredFlow(r.FlowID) {
			listFlows = true
			break
		}
	}
	if listFlows {
		if err := e.fetchFlows(ctx, p, now, f); err != nil {
			return err
		}
	}
	// In-flight runs: listed by status at start-up (a run PAUSED before it is found; later ones
	// are tracked from the listing of new runs, re-opened ones by the retry watch), and on every
	// poll while more are tracked than one re-read by id can carry, so that runs sitting
	// unchanged in flight cost ⌈n/1000⌉ requests a poll, not ⌈n/100⌉; only those that left the
	// listing are re-read by id (refreshTracked). A quiet poll does either only when the census
	// says a run in flight moved.
	if !quiet || f.census.inFlight {
		if !p.started || p.lastFlows.IsZero() || len(p.tracked) > apiclient.MaxFlowRunIDs {
			if err := e.fetchInFlight(ctx, p, f); err != nil {
				return err
			}
		}
		if err := e.refreshTracked(ctx, p, f, false); err != nil {
			return err
		}
	} else if err := e.refreshTracked(ctx, p, f, true); err != nil {
		return err
	}
	// The retry watch: at start-up (runs that failed before it), then while runs are watched at
	// every flow refresh (on a quiet project every backstopEvery: a retry that failed again
	// between two censuses moves none of their numbers), at once when a census says a retryable
	// run moved, and always on servers without count-by-status (there it also catches late
	// failed rows).
	watch := refresh && (!p.watchStarted || len(p.watched) > 0 || f.server.CountUnsupported)
	if quiet {
		watch = !p.watchStarted || len(p.watched) > 0 && e.dueAgain(p.watchedAt, e.backstopEvery(), now)
	}
	if c := f.census; c != nil && (c.retry || c.settle && len(p.watched) > 0) {
		watch = true
	}
	if watch && e.cfg.RetryWindow > 0 {
		if err := e.fetchWatch(ctx, p, now, f); err != nil {
			return fmt.Errorf("watching finished runs for retries: %w", err)
		}
	}
	return nil
}

// checkLate catches rows that became visible late. A quiet poll's census that still counts more
// runs than the ledger knows, once the new runs are listed, re-reads where they differ; on
// other polls, every overlap interval and at every flow refresh (the late window's check), a
// census does (or, where the server cannot count, the overlap sweep, every overlap interval).
func (e *env) checkLate(ctx context.Context, p *projectState, now time.Time, f *fetched, quiet, refresh bool) error {
	if quiet {
		r := f.census
		f.overlapAt, f.overlapHead = now, p.head // the census covered the overlap window
		if !r.total {
			return nil
		}
		r.compare(p.expectCensus(r, f.listed), &p.census)
		if !r.total {
			return nil
		}
		return e.sweep(ctx, p, f, r.split, r.to, 0)
	}
	if !p.started {
		f.overlapAt = now
		return nil
	}
	overlapDue := e.dueAgain(p.lastOverlap, e.cfg.OverlapInterval, now)
	if f.server.CountUnsupported {
		if !overlapDue {
			return nil
		}
		f.overlapAt, f.overlapHead = now, p.head
		return e.sweepOverlap(ctx, p, f)
	}
	if !overlapDue && !refresh && !e.censusPlan(p, f.serverNow, f.head).settle {
		return nil
	}
	f.overlapAt, f.overlapHead = now, p.head
	if err := e.takeCensus(ctx, p, f, f.head, f.head); err != nil {
		return err
	}
	r := f.census
	if r == nil {
		return e.sweepOverlap(ctx, p, f)
	}
	r.compare(p.expectCensus(r, f.listed), &p.census)
	if !r.total && !r.settle {
		return nil
	}
	// Where the ledger knows every run, a difference is found and re-read (a settling census
	// cannot tell, so it looks).
	return e.sweep(ctx, p, f, r.split, r.to, 0)
}

// fetchNewRuns reads the backlog left by earlier polls, then the runs created since the poll
// position (the look-back on a project's first poll), at most cfg.MaxPages pages in all.
func (e *env) fetchNewRuns(ctx context.Context, p *projectState, f *fetched) error {
	budget := e.cfg.MaxPages
	for _, g := range p.gaps {
		if budget <= 0 {
			f.gaps = append(f.gaps, g)
			continue
		}
		runs, w, err := e.listRange(ctx, p.id, f, apiclient.ListFlowRunsParams{CreatedAfter: g.from, CreatedBefore: g.to}, budget)
		if err != nil {
			return fmt.Errorf("listing runs of a backlog: %w", err)
		}
		budget -= w.pages
		f.listed = append(f.listed, runs...)
		if w.capped {
			f.capped = true
			f.gaps = append(f.gaps, gap{from: g.from, to: w.oldest})
		}
	}
	from := p.head
	serverStart := f.serverStart
	if !p.started {
		from = serverStart.Add(-e.cfg.Lookback)
	} else if p.head.After(e.now().Add(maxClockOffset + maxClockSkew)) {
		// A position no server clock can explain: saved by an exporter misled by a wrong Date.
		// Start again from the newest runs; what happened in between is not counted.
		e.log.Warn("poll position far ahead of any plausible server clock (from a state file written under a wrong Date?); reading from the newest runs",
			"project_id", p.id, "position", p.head)
		from = f.serverNow.Add(-e.cfg.Overlap)
	}
	q := apiclient.ListFlowRunsParams{CreatedAfter: from}
	pages := max(budget, 1)
	if !p.started {
		// The first poll reads the newest page of the look-back: where counting starts, and the
		// recent history. The rest is read in the background (history.go).
		q.Limit, pages = bulkPageSize, 1
	}
	runs, w, err := e.listRange(ctx, p.id, f, q, pages)
	if err != nil {
		return fmt.Errorf("listing new runs: %w", err)
	}
	f.listed = append(f.listed, runs...)
	f.head = from
	if w.newest.After(f.head) || f.head.After(e.now().Add(maxClockOffset+maxClockSkew)) {
		f.head = w.newest
	}
	if f.head.IsZero() {
		f.head = from
	}
	switch {
	case w.capped && !p.started:
		f.history = &historyRange{From: from, To: w.oldest}
		for _, r := range runs {
			if r.Created.Equal(w.oldest) {
				f.history.Boundary = append(f.history.Boundary, r.ID)
			}
		}
	case w.capped:
		f.capped = true
		if w.oldest.After(from) {
			f.gaps = append(f.gaps, gap{from: from, to: w.oldest})
		}
	}
	return nil
}

// fetchInFlight lists in-flight runs by status, without a time bound (a run PAUSED for days
// before start-up is tracked), in pages of bulkPageSize.
func (e *env) fetchInFlight(ctx context.Context, p *projectState, f *fetched) error {
	statuses := apiclient.InFlightStatuses[:]
	if f.server.NoQueuedStatus {
		statuses = statuses[1:]
	}
	pages := e.cfg.MaxTrackedRuns/bulkPageSize + 1
	runs, _, err := e.listRange(ctx, p.id, f, apiclient.ListFlowRunsParams{Statuses: statuses, Limit: bulkPageSize}, pages)
	if errors.Is(err, apiclient.ErrValidation) && !f.server.NoQueuedStatus {
		// Servers before QUEUED existed (shared <= 0.10) reject it as a status filter.
		f.server.NoQueuedStatus = true
		e.log.Info("server rejects the QUEUED status filter; listing RUNNING and PAUSED runs only", "project_id", p.id, "err", err)
		runs, _, err = e.listRange(ctx, p.id, f, apiclient.ListFlowRunsParams{Statuses: statuses[1:], Limit: bulkPageSize}, pages)
	}
	if err != nil {
		return fmt.Errorf("listing in-flight runs: %w", err)
	}
	f.inflight = append(f.inflight, runs...)
	return nil
}

// watchStatuses are the status filters of the retry watch, newest server first: older servers
// reject LOG_SIZE_EXCEEDED (before shared 0.43) and MEMORY_LIMIT_EXCEEDED as filters.
var watchStatuses = [][]apiclient.RunStatus{
	apiclient.RetryableStatuses,
	{apiclient.StatusFailed, apiclient.StatusInternalError, apiclient.StatusQuotaExceeded, apiclient.StatusTimeout, apiclient.StatusMemoryLimitExceeded},
	{apiclient.StatusFailed, apiclient.StatusInternalError, apiclient.StatusQuotaExceeded, apiclient.StatusTimeout},
}

// fetchWatch reads what the retry watch needs: every run created within the retry window that is
// now in a retryable status (one request while there are fewer than bulkPageSize), and then, by
// id, the watched runs that listing did not return: re-opened, finished again in another status,
// archived or deleted. Runs whose times changed are retries (compareWatched).
func (e *env) fetchWatch(ctx context.Context, p *projectState, now time.Time, f *fetched) error {
	from := f.serverNow.Add(-e.cfg.RetryWindow)
	var runs []apiclient.FlowRun
	var w walk
	var err error
	for {
		runs, w, err = e.listRange(ctx, p.id, f, apiclient.ListFlowRunsParams{Statuses: watchStatuses[f.server.WatchLevel], CreatedAfter: from,
			IncludeArchived: true, Limit: bulkPageSize}, e.cfg.MaxPages)
		if !errors.Is(err, apiclient.ErrValidation) || f.server.WatchLevel == len(watchStatuses)-1 {
			break
		}
		// An older server rejects a status it does not know yet as a filter.
		f.server.WatchLevel++
		e.log.Info("server rejects a retryable status as a filter; watching fewer", "project_id", p.id,
			"statuses", watchStatuses[f.server.WatchLevel], "err", err)
	}
	if err != nil {
		return err
	}
	f.watchListed, f.watchListedAt = runs, now
	listedFrom := from
	if w.capped {
		listedFrom = w.oldest // older ones were not listed: their absence says nothing
	}
	returned := map[string]bool{}
	for _, list := range [][]apiclient.FlowRun{runs, f.listed, f.inflight} {
		for i := range list {
			returned[list[i].ID] = true
		}
	}
	var ids []string
	for id, wr := range p.watched {
		if !returned[id] && (!w.capped || wr.Created >= unixMS(listedFrom)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	got, gone, err := e.reread(ctx, p, f, ids, true)
	if err != nil {
		return err
	}
	f.watchReread, f.unwatched = got, gone
	return nil
}

// sweepOverlap catches runs committed late in [previous sweep's head − overlap, head]: a run
// created at T that becomes visible up to overlap later is in the window of the first sweep after
// that, however the sweeps fall (a window of [head − overlap, head] alone misses a run that
// becomes visible just after one sweep, when the next comes more than overlap after T).
func (e *env) sweepOverlap(ctx context.Context, p *projectState, f *fetched) error {
	from := p.head
	if !p.overlapHead.IsZero() && p.overlapHead.Before(from) {
		from = p.overlapHead
	}
	// Never beyond what the ledger remembers (after a long pause between sweeps): a run there
	// could not be told from one already counted.
	return e.sweep(ctx, p, f, latest(from.Add(-e.cfg.Overlap), e.sweepFloor(p, f.serverNow, e.cfg.Overlap),
		p.ledgerHorizon(e.ledgerWindow()).Add(time.Second), p.ledgerFrom), p.head, maxSweepDepth)
}

// sweepFloor is where sweeps start at the earliest: countFrom, since what was created before it
// is history, never counted. But for a while after start-up also late below it (by late, the
// sweep's own reach): a row of the history that commits late, just before the exporter
// started, is still the newest finish of its flow and must reach the last-run gauges, and the
// history reader may have read past it before it showed. Only until such rows must have shown
// (late, an overlap interval and a poll after the first poll): a quiet project does not count
// that window for ever.
func (e *env) sweepFloor(p *projectState, serverNow time.Time, late time.Duration) time.Time {
	if p.finishedFrom.IsZero() || serverNow.Sub(p.finishedFrom) > late+e.cfg.OverlapInterval+e.cfg.PollInterval {
		return p.countFrom
	}
	return p.countFrom.Add(-late)
}

// latest is the latest of ts.
func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// maxSweepDepth bounds the halving of a sweep's window: a difference is narrowed down to at most
// 1/2^maxSweepDepth of the window before that part is re-read.
const maxSweepDepth = 6

// sweep catches runs that became visible late in [from, to]. It asks the server how many runs
// that window holds (count-by-status, one request); only when the number differs from the runs
// the ledger knows there does it look closer: a window the ledger knows many runs of is halved
// (a count each half) down to depth maxSweepDepth, and the halves that differ are re-read.
// Servers without that endpoint get the re-read every time.
func (e *env) sweep(ctx context.Context, p *projectState, f *fetched, from, to time.Time, depth int) error {
	if from.After(to) {
		return nil
	}
	if !f.server.CountUnsupported {
		counts, ok, err := e.countRuns(ctx, p, f, from, to)
		switch {
		case err != nil:
			return err
		case ok:
			var total int64
			for _, c := range counts {
				total += c.Count
			}
			known := p.knownIn(from, to, f.listed)
			if total == int64(known) {
				return nil
			}
			if depth < maxSweepDepth && known > bulkPageSize && to.Sub(from) > 2*time.Millisecond {
				mid := from.Add(to.Sub(from) / 2).Truncate(time.Millisecond)
				if err := e.sweep(ctx, p, f, from, mid, depth+1); err != nil {
					return err
				}
				return e.sweep(ctx, p, f, mid.Add(time.Millisecond), to, depth+1)
			}
		}
	} else if depth == 0 {
		return nil // the late window is not re-read in full on every flow refresh
	}
	runs, _, err := e.listRange(ctx, p.id, f, apiclient.ListFlowRunsParams{CreatedAfter: from, CreatedBefore: to, Limit: bulkPageSize}, e.cfg.MaxPages)
	if err != nil {
		return fmt.Errorf("re-reading runs created %s to %s: %w", apiclient.FormatTime(from), apiclient.FormatTime(to), err)
	}
	f.listed = append(f.listed, runs...)
	return nil
}

// knownIn counts the distinct runs created in [from, to] that the ledger knows of (finished,
// tracked, deliberately untracked) or that this poll has listed.
func (p *projectState) knownIn(from, to time.Time, listed []apiclient.FlowRun) int {
	in := func(c time.Time) bool { return !c.Before(from) && !c.After(to) }
	n := 0
	lo, hi := from.UnixMilli(), to.UnixMilli()
	for _, c := range p.seen {
		if c >= lo && c <= hi {
			n++
		}
	}
	for _, t := range p.tracked {
		if in(t.Created) {
			n++
		}
	}
	for _, c := range p.untracked {
		if in(c) {
			n++
		}
	}
	for _, r := range listed {
		if r.ID == "" || !in(r.Created.Time) {
			continue
		}
		seen := p.seen.has(r.ID)
		_, tracked := p.tracked[r.ID]
		_, untracked := p.untracked[r.ID]
		if !seen && !tracked && !untracked {
			n++ // new in this poll (a run listed twice in it is counted twice: a mismatch, so a re-read)
		}
	}
	return n
}

func (p *projectState) ignoredFlow(id string) bool { return p.ignored != nil && p.ignored[id] }

// dueAgain reports whether something done at last every interval is due at a poll at now. Polls
// come once a PollInterval, on their slots, give or take a timer's lateness: half a poll of
// slack keeps "every minute" from becoming every minute and a half when a poll is a hair early,
// or the time was taken a hair after the poll's own moment.
func (e *env) dueAgain(last time.Time, every time.Duration, now time.Time) bool {
	return !now.Before(last.Add(every - e.cfg.PollInterval/2))
}

// maxFlowsPerProject bounds a project's flow listing: far more than a project holds (a big one
// has a few thousand), so a listing whose next never ends fails clearly instead of growing.
const maxFlowsPerProject = 20000

func (e *env) fetchFlows(ctx context.Context, p *projectState, now time.Time, f *fetched) error {
	var flows []apiclient.Flow
	w, err := apiclient.Paginate(ctx, "", 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Flow], error) {
		// Flows carry their whole definition, but pages are decoded a flow at a time and only its
		// id, name, status and folder are kept: a large page costs the server, not our memory.
		return f.api.ListFlows(ctx, apiclient.ListFlowsParams{ProjectID: p.id, Limit: bulkPageSize, Cursor: cursor})
	}, func(page *apiclient.Page[apiclient.Flow]) (bool, error) {
		for i := range page.Data {
			flows = append(flows, compactFlow(&page.Data[i]))
		}
		if len(flows) > maxFlowsPerProject {
			return false, fmt.Errorf("the listing holds more than %d flows (a next that never ends?)", maxFlowsPerProject)
		}
		return true, nil
	})
	if err == nil && w.Capped {
		err = errors.New("the listing has more than 1000 pages")
	}
	if err != nil {
		return fmt.Errorf("listing flows: %w", err)
	}
	f.flowsListed, f.flows = true, flows
	// Folders only name the folders flows are in: a project without any (most small ones) costs
	// no request for them, and one whose flows are all in folders known lists them again only
	// every projects interval (for renames).
	inFolders, known := false, true
	for _, fl := range flows {
		if fl.FolderID != "" {
			inFolders = true
			if _, ok := p.folders[fl.FolderID]; !ok {
				known = false
			}
		}
	}
	if !inFolders {
		f.foldersListed = true
		return nil
	}
	if known && !p.lastFolders.IsZero() && !e.dueAgain(p.lastFolders, e.cfg.ProjectsInterval, now) {
		return nil
	}
	folders, err := apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Folder], error) {
		return f.api.ListFolders(ctx, p.id, bulkPageSize, cursor)
	})
	if err != nil {
		return fmt.Errorf("listing folders: %w", err)
	}
	f.foldersListed = true
	f.folders = folders
	return nil
}

// compactFlow is what a poll keeps of a listed flow: id, name, status and folder, bounded like
// label values (a page of 10 KB names must not be kept whole).
func compactFlow(fl *apiclient.Flow) apiclient.Flow {
	out := apiclient.Flow{ID: capLabel(fl.ID), FolderID: capLabel(fl.FolderID), Status: capLabel(fl.Status)}
	if fl.Version != nil && fl.Version.DisplayName != "" {
		out.Version = &apiclient.FlowVersion{DisplayName: capLabel(fl.Version.DisplayName)}
	}
	return out
}

// maxClockSkew is how far ahead of the exporter's clock a run's creation time may be and still
// move the poll position.
const maxClockSkew = 10 * time.Minute

type walk struct {
	pages          int
	capped         bool
	newest, oldest time.Time
}

// listRange lists a project's runs matching base (project and paging are set here), newest first,
// for at most maxPages pages. On servers whose cursors have second granularity it re-reads each
// page's boundary second, which plain paging there would skip.
func (e *env) listRange(ctx context.Context, projectID string, f *fetched, base apiclient.ListFlowRunsParams, maxPages int) ([]apiclient.FlowRun, walk, error) {
	base.ProjectID = projectID
	if base.Limit == 0 {
		base.Limit = e.cfg.PageSize
	}
	var out []apiclient.FlowRun
	var w walk
	// A creation time far in the future (a bad clock or row) must not become the poll position:
	// every later run would be created "before" it and never listed.
	horizon := f.serverNow.Add(maxClockSkew)
	note := func(runs []apiclient.FlowRun) {
		for i := range runs {
			c := runs[i].Created.Time
			if c.After(horizon) {
				continue
			}
			if w.newest.IsZero() || c.After(w.newest) {
				w.newest = c
			}
			if w.oldest.IsZero() || c.Before(w.oldest) {
				w.oldest = c
			}
		}
		out = append(out, runs...)
	}
	res, err := apiclient.Paginate(ctx, "", maxPages,
		func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.FlowRun], error) {
			q := base
			q.Cursor = cursor
			return f.api.ListFlowRuns(ctx, q)
		},
		func(page *apiclient.Page[apiclient.FlowRun]) (bool, error) {
			note(page.Data)
			next := page.NextCursor()
			if next == "" || len(page.Data) == 0 || apiclient.ClassifyCursor(next) == apiclient.CursorKeyset {
				return true, nil
			}
			f.server.SecondCursors = true
			sec := page.Data[len(page.Data)-1].Created.Truncate(time.Second)
			q := base
			q.Limit, q.CreatedAfter, q.CreatedBefore = -1, sec, sec.Add(time.Second-time.Millisecond)
			if !base.CreatedAfter.IsZero() && base.CreatedAfter.After(q.CreatedAfter) {
				q.CreatedAfter = base.CreatedAfter
			}
			if !base.CreatedBefore.IsZero() && base.CreatedBefore.Before(q.CreatedBefore) {
				q.CreatedBefore = base.CreatedBefore
			}
			b, err := f.api.ListFlowRuns(ctx, q)
			if err != nil {
				return false, fmt.Errorf("re-reading boundary second %s: %w", apiclient.FormatTime(sec), err)
			}
			note(b.Data)
			return true, nil
		})
	w.pages, w.capped = res.Pages, res.Capped
	if err != nil {
		return nil, w, err
	}
	return out, w, nil
}

// refreshTracked re-reads tracked runs no listing of this poll returned (only the archived ones,
// which no census counts, when archivedOnly).
func (e *env) refreshTracked(ctx context.Context, p *projectState, f *fetched, archivedOnly bool) error {
	returned := map[string]bool{}
	for _, r := range f.listed {
		returned[r.ID] = true
	}
	for _, r := range f.inflight {
		returned[r.ID] = true
	}
	var ids []string
	for id, t := range p.tracked {
		if !returned[id] && (t.Archived || !archivedOnly) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	runs, gone, err := e.reread(ctx, p, f, ids, true)
	if err != nil {
		return fmt.Errorf("refreshing in-flight runs: %w", err)
	}
	f.inflight = append(f.inflight, runs...)
	f.gone = append(f.gone, gone...)
	return nil
}

// reread reads runs by id, apiclient.MaxFlowRunIDs a request, or one by one on servers that
// ignore flowRunIds. Archived runs are included: a run archived while in flight still finishes.
// gone lists the ids the server no longer has.
func (e *env) reread(ctx context.Context, p *projectState, f *fetched, ids []string, includeArchived bool) (runs []apiclient.FlowRun, gone []string, err error) {
	for len(ids) > 0 {
		n := min(len(ids), apiclient.MaxFlowRunIDs)
		if f.server.RepeatLimit > 0 {
			n = min(n, f.server.RepeatLimit)
		}
		batch := ids[:n]
		ids = ids[n:]
		if !f.server.FlowRunIDsIgnored {
			page, err := f.api.ListFlowRuns(ctx, apiclient.ListFlowRunsParams{ProjectID: p.id, FlowRunIDs: batch, Limit: len(batch),
				IncludeArchived: includeArchived})
			if errors.Is(err, apiclient.ErrRepeatLimit) && f.server.RepeatLimit == 0 {
				// A server whose query parser caps repeated keys (API.md §1): 20 ids a request.
				f.server.RepeatLimit = apiclient.SafeRepeatedValues
				e.log.Info("server accepts at most 20 values of a repeated query key; reading runs by id 20 at a time", "project_id", p.id)
				ids = append(slices.Clone(batch), ids...)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			asked := map[string]bool{}
			for _, id := range batch {
				asked[id] = true
			}
			foreign := slices.ContainsFunc(page.Data, func(r apiclient.FlowRun) bool { return !asked[r.ID] })
			if !foreign {
				got := map[string]bool{}
				for _, r := range page.Data {
					got[r.ID] = true
				}
				runs = append(runs, page.Data...)
				for _, id := range batch {
					if !got[id] {
						gone = append(gone, id)
					}
				}
				continue
			}
			f.server.FlowRunIDsIgnored = true
			e.log.Warn("server ignores the flowRunIds filter; reading runs one by one", "project_id", p.id)
		}
		for _, id := range batch {
			r, err := f.api.GetFlowRun(ctx, id)
			switch {
			case errors.Is(err, apiclient.ErrNotFound):
				gone = append(gone, id)
			case err != nil:
				return nil, nil, err
			default:
				runs = append(runs, *r)
			}
		}
	}
	return runs, gone, nil
}
