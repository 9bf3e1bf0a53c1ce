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
	flowsListed bool
	flows       []apiclient.Flow
	folders     []apiclient.Folder

	listed    []apiclient.FlowRun // from time-range listings
	inflight  []apiclient.FlowRun // from the in-flight listing and the refresh of tracked runs
	gone      []string            // tracked runs the server no longer has
	head      time.Time
	started   bool
	gaps      []gap
	capped    bool
	overlapAt time.Time
}

// fetch does every API call of one project's poll; it changes nothing shared.
func (e *Exporter) fetch(ctx context.Context, p *projectState, now time.Time, f *fetched) error {
	budget := e.cfg.MaxPages
	f.head, f.started = p.head, true
	for _, g := range p.gaps {
		if budget <= 0 {
			f.gaps = append(f.gaps, g)
			continue
		}
		runs, w, err := e.listRange(ctx, p, apiclient.ListFlowRunsParams{CreatedAfter: g.from, CreatedBefore: g.to}, budget)
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
	if !p.started {
		from = e.startedAt.Add(-e.cfg.Lookback)
	}
	runs, w, err := e.listRange(ctx, p, apiclient.ListFlowRunsParams{CreatedAfter: from}, max(budget, 1))
	if err != nil {
		return fmt.Errorf("listing new runs: %w", err)
	}
	f.listed = append(f.listed, runs...)
	f.head = from
	if w.newest.After(f.head) {
		f.head = w.newest
	}
	if w.capped {
		f.capped = true
		gapFrom := from
		if !p.started && e.startedAt.After(gapFrom) {
			gapFrom = e.startedAt // history beyond the cap only feeds gauges: not worth a backlog
		}
		if w.oldest.After(gapFrom) {
			f.gaps = append(f.gaps, gap{from: gapFrom, to: w.oldest})
		}
	}
	// Late commits: check the overlap window now and then.
	if p.started && now.Sub(p.lastOverlap) >= e.cfg.OverlapInterval {
		if err := e.sweepOverlap(ctx, p, f); err != nil {
			return err
		}
		f.overlapAt = now
	} else if !p.started {
		f.overlapAt = now
	}

	// Flows are listed after the runs, so that every flow a listed run names is in the listing
	// unless it was deleted: when due, and at once when a run names a flow not known.
	refresh := !p.started || p.lastFlows.IsZero() || now.Sub(p.lastFlows) >= e.cfg.FlowsInterval
	listFlows := refresh
	for _, r := range f.listed {
		if _, ok := p.flows[r.FlowID]; !ok && !p.ignoredFlow(r.FlowID) {
			listFlows = true
			break
		}
	}
	if listFlows {
		if err := e.fetchFlows(ctx, p, f); err != nil {
			return err
		}
	}
	if refresh {
		// In-flight runs by status, without a time bound: a run PAUSED for days is tracked.
		statuses := apiclient.InFlightStatuses
		if p.noQueuedStatus {
			statuses = statuses[1:]
		}
		runs, _, err := e.listRange(ctx, p, apiclient.ListFlowRunsParams{Statuses: statuses}, e.cfg.MaxTrackedRuns/e.cfg.PageSize+1)
		if errors.Is(err, apiclient.ErrValidation) && !p.noQueuedStatus {
			// Servers before QUEUED existed (shared <= 0.10) reject it as a status filter.
			p.noQueuedStatus = true
			e.log.Info("server rejects the QUEUED status filter; listing RUNNING and PAUSED runs only", "project_id", p.id, "err", err)
			runs, _, err = e.listRange(ctx, p, apiclient.ListFlowRunsParams{Statuses: statuses[1:]}, e.cfg.MaxTrackedRuns/e.cfg.PageSize+1)
		}
		if err != nil {
			return fmt.Errorf("listing in-flight runs: %w", err)
		}
		f.inflight = append(f.inflight, runs...)
	}
	return e.refreshTracked(ctx, p, f)
}

// sweepOverlap catches runs committed late in [head − overlap, head]. It first asks the server
// how many runs that window holds (count-by-status, one request); only when the number differs
// from the runs the ledger knows there does it re-read the window. Servers without that
// endpoint get the re-read every time.
func (e *Exporter) sweepOverlap(ctx context.Context, p *projectState, f *fetched) error {
	from, to := p.head.Add(-e.cfg.Overlap), p.head
	if !p.countUnsupported {
		counts, err := e.api.CountByStatus(ctx, p.id, from, to)
		var apiErr *apiclient.APIError
		switch {
		case errors.As(err, &apiErr) && (apiErr.StatusCode == 404 && apiErr.EntityType == "" || apiErr.StatusCode == 400):
			p.countUnsupported = true
			e.log.Info("server has no usable count-by-status; the overlap window is re-read in full", "project_id", p.id, "err", err)
		case err != nil:
			return fmt.Errorf("counting runs of the overlap window: %w", err)
		default:
			var total int64
			for _, c := range counts {
				total += c.Count
			}
			if total == int64(p.knownIn(from, to, f.listed)) {
				return nil
			}
		}
	}
	runs, _, err := e.listRange(ctx, p, apiclient.ListFlowRunsParams{CreatedAfter: from, CreatedBefore: to}, e.cfg.MaxPages)
	if err != nil {
		return fmt.Errorf("re-reading the overlap window: %w", err)
	}
	f.listed = append(f.listed, runs...)
	return nil
}

// knownIn counts the distinct runs created in [from, to] that the ledger knows of (finished,
// tracked, deliberately untracked) or that this poll has listed.
func (p *projectState) knownIn(from, to time.Time, listed []apiclient.FlowRun) int {
	in := func(c time.Time) bool { return !c.Before(from) && !c.After(to) }
	n := 0
	for _, c := range p.seen {
		if in(c) {
			n++
		}
	}
	for _, t := range p.tracked {
		if in(t.created) {
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
		_, seen := p.seen[r.ID]
		_, tracked := p.tracked[r.ID]
		_, untracked := p.untracked[r.ID]
		if !seen && !tracked && !untracked {
			n++ // new in this poll (a run listed twice in it is counted twice: a mismatch, so a re-read)
		}
	}
	return n
}

func (p *projectState) ignoredFlow(id string) bool { return p.ignored != nil && p.ignored[id] }

func (e *Exporter) fetchFlows(ctx context.Context, p *projectState, f *fetched) error {
	flows, err := apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Flow], error) {
		return e.api.ListFlows(ctx, apiclient.ListFlowsParams{ProjectID: p.id, Limit: e.cfg.PageSize, Cursor: cursor})
	})
	if err != nil {
		return fmt.Errorf("listing flows: %w", err)
	}
	folders, err := apiclient.ListAll(ctx, 1000, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Folder], error) {
		return e.api.ListFolders(ctx, p.id, e.cfg.PageSize, cursor)
	})
	if err != nil {
		return fmt.Errorf("listing folders: %w", err)
	}
	f.flowsListed, f.flows, f.folders = true, flows, folders
	return nil
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
func (e *Exporter) listRange(ctx context.Context, p *projectState, base apiclient.ListFlowRunsParams, maxPages int) ([]apiclient.FlowRun, walk, error) {
	base.ProjectID, base.Limit = p.id, e.cfg.PageSize
	var out []apiclient.FlowRun
	var w walk
	// A creation time far in the future (a bad clock or row) must not become the poll position:
	// every later run would be created "before" it and never listed.
	horizon := e.serverNow().Add(maxClockSkew)
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
			return e.api.ListFlowRuns(ctx, q)
		},
		func(page *apiclient.Page[apiclient.FlowRun]) (bool, error) {
			note(page.Data)
			next := page.NextCursor()
			if next == "" || len(page.Data) == 0 || apiclient.ClassifyCursor(next) == apiclient.CursorKeyset {
				return true, nil
			}
			p.secondCursors = true
			sec := page.Data[len(page.Data)-1].Created.Truncate(time.Second)
			q := base
			q.Limit, q.CreatedAfter, q.CreatedBefore = -1, sec, sec.Add(time.Second-time.Millisecond)
			if !base.CreatedAfter.IsZero() && base.CreatedAfter.After(q.CreatedAfter) {
				q.CreatedAfter = base.CreatedAfter
			}
			if !base.CreatedBefore.IsZero() && base.CreatedBefore.Before(q.CreatedBefore) {
				q.CreatedBefore = base.CreatedBefore
			}
			b, err := e.api.ListFlowRuns(ctx, q)
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

// refreshTracked re-reads tracked runs no listing of this poll returned, 100 ids a request, or one
// by one on servers that ignore flowRunIds.
func (e *Exporter) refreshTracked(ctx context.Context, p *projectState, f *fetched) error {
	returned := map[string]bool{}
	for _, r := range f.listed {
		returned[r.ID] = true
	}
	for _, r := range f.inflight {
		returned[r.ID] = true
	}
	var ids []string
	for id := range p.tracked {
		if !returned[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		n := min(len(ids), 100)
		batch := ids[:n]
		ids = ids[n:]
		if !p.flowRunIDsIgnored {
			page, err := e.api.ListFlowRuns(ctx, apiclient.ListFlowRunsParams{ProjectID: p.id, FlowRunIDs: batch, Limit: len(batch)})
			if err != nil {
				return fmt.Errorf("refreshing in-flight runs: %w", err)
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
				f.inflight = append(f.inflight, page.Data...)
				for _, id := range batch {
					if !got[id] {
						f.gone = append(f.gone, id)
					}
				}
				continue
			}
			p.flowRunIDsIgnored = true
			e.log.Warn("server ignores the flowRunIds filter; refreshing in-flight runs one by one", "project_id", p.id)
		}
		for _, id := range batch {
			r, err := e.api.GetFlowRun(ctx, id)
			switch {
			case errors.Is(err, apiclient.ErrNotFound):
				f.gone = append(f.gone, id)
			case err != nil:
				return fmt.Errorf("refreshing in-flight run: %w", err)
			default:
				f.inflight = append(f.inflight, *r)
			}
		}
	}
	return nil
}
