package collector

import (
	"context"
	"encoding/json"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// runsAPI is what a project's poll asks of the API (an *apiclient.Client, or an attempt replaying
// the answers it already has).
type runsAPI interface {
	ListFlowRuns(ctx context.Context, p apiclient.ListFlowRunsParams) (*apiclient.Page[apiclient.FlowRun], error)
	GetFlowRun(ctx context.Context, id string) (*apiclient.FlowRun, error)
	CountByStatus(ctx context.Context, projectID string, after, before time.Time) ([]apiclient.StatusCount, error)
	ListFlows(ctx context.Context, p apiclient.ListFlowsParams) (*apiclient.Page[apiclient.Flow], error)
	ListFolders(ctx context.Context, projectID string, limit int, cursor string) (*apiclient.Page[apiclient.Folder], error)
}

// attempt is one read of a project (fetch), which may span several polls: when a poll is cut
// short (its --poll.timeout, the rate limit, an error), the answers read so far are kept, and the
// next poll runs the same fetch again, from the same moment (now, serverNow), with those answers
// replayed instead of asked again, so it continues where the last one stopped instead of starting
// over. Nothing of an attempt is applied until it completes: what is applied is one consistent
// read, as from one slow poll. Answers are kept decoded (a page of 1,000 runs is about 300 KB).
type attempt struct {
	api            *apiclient.Client
	reqCtx         context.Context // of the poll under way, without its deadline
	now, serverNow time.Time
	serverStart    time.Time // the server's time when the exporter started, as known then
	answers        map[string]any
	replayed       int // answers served from memory in this attempt
	polls          int // polls it has run in
	failures       int // consecutive polls it failed in with an error of the API
}

// maxAttemptFailures is how many polls in a row an attempt may fail with an API error before it
// is dropped and the next poll starts afresh (a deterministic failure would otherwise keep stale
// answers forever; running out of time never drops it).
const maxAttemptFailures = 3

func newAttempt(api *apiclient.Client, now, serverNow, serverStart time.Time) *attempt {
	return &attempt{api: api, now: now, serverNow: serverNow, serverStart: serverStart, answers: map[string]any{}}
}

// remember answers call from memory when the same request was answered earlier in the attempt,
// and otherwise asks and keeps a successful answer. ctx is the poll's: once its deadline has
// passed no request is started, but one under way is finished (within --api.timeout, under
// a.reqCtx, which only shutdown cancels), so that no poll's last request is wasted and a request
// longer than what is left of a poll still completes.
func remember[T any](a *attempt, ctx context.Context, kind string, req any, call func(ctx context.Context) (T, error)) (T, error) {
	b, err := json.Marshal(req)
	if err != nil { // never for these requests; then just ask
		return call(ctx)
	}
	key := kind + string(b)
	if v, ok := a.answers[key]; ok {
		a.replayed++
		return v.(T), nil
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	v, err := call(a.reqCtx)
	if err == nil {
		a.answers[key] = v
	}
	return v, err
}

func (a *attempt) ListFlowRuns(ctx context.Context, p apiclient.ListFlowRunsParams) (*apiclient.Page[apiclient.FlowRun], error) {
	return remember(a, ctx, "runs", p, func(ctx context.Context) (*apiclient.Page[apiclient.FlowRun], error) {
		return a.api.ListFlowRuns(ctx, p)
	})
}

func (a *attempt) GetFlowRun(ctx context.Context, id string) (*apiclient.FlowRun, error) {
	return remember(a, ctx, "run", id, func(ctx context.Context) (*apiclient.FlowRun, error) { return a.api.GetFlowRun(ctx, id) })
}

func (a *attempt) CountByStatus(ctx context.Context, projectID string, after, before time.Time) ([]apiclient.StatusCount, error) {
	return remember(a, ctx, "count", [3]any{projectID, after, before}, func(ctx context.Context) ([]apiclient.StatusCount, error) {
		return a.api.CountByStatus(ctx, projectID, after, before)
	})
}

func (a *attempt) ListFlows(ctx context.Context, p apiclient.ListFlowsParams) (*apiclient.Page[apiclient.Flow], error) {
	return remember(a, ctx, "flows", p, func(ctx context.Context) (*apiclient.Page[apiclient.Flow], error) { return a.api.ListFlows(ctx, p) })
}

func (a *attempt) ListFolders(ctx context.Context, projectID string, limit int, cursor string) (*apiclient.Page[apiclient.Folder], error) {
	return remember(a, ctx, "folders", [3]any{projectID, limit, cursor}, func(ctx context.Context) (*apiclient.Page[apiclient.Folder], error) {
		return a.api.ListFolders(ctx, projectID, limit, cursor)
	})
}
