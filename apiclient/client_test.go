package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

func decodePage(t *testing.T, file string) apiclient.Page[apiclient.FlowRun] {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var p apiclient.Page[apiclient.FlowRun]
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

func TestDecodeStrictNewSchemaPage(t *testing.T) {
	p := decodePage(t, "flowruns_page_strict.json")
	if len(p.Data) != 2 || p.Previous != nil || p.NextCursor() == "" {
		t.Fatalf("page = %+v", p)
	}
	r := p.Data[1]
	if r.Status != apiclient.StatusFailed || r.FailedStepLabel() != "step_2" || r.FlowVersion.DisplayName != "Sync CRM leads" {
		t.Errorf("run = %+v", r)
	}
	if d, ok := r.DurationSeconds(); !ok || d != 2.287 {
		t.Errorf("duration = %v, %v; want finishTime-startTime 2.287", d, ok)
	}
	if n, ok := r.TaskCount(); !ok || n != 2 {
		t.Errorf("tasks = %v, %v; want stepsCount 2", n, ok)
	}
	if apiclient.ClassifyCursor(p.NextCursor()) != apiclient.CursorKeyset {
		t.Error("the docs/activepieces-api.md cursor is a composite keyset cursor")
	}
}

func TestDecodeRawOldSchemaPage(t *testing.T) {
	p := decodePage(t, "flowruns_page_raw_old.json")
	old, queued := p.Data[0], p.Data[1]
	if old.Status != "STOPPED" || !old.Status.IsTerminal() || old.Status.IsFailure() {
		t.Errorf("STOPPED must pass through as a terminal, non-failure status: %+v", old.Status)
	}
	if d, ok := old.DurationSeconds(); !ok || d != 1.492 {
		t.Errorf("duration = %v, %v; want the server's 1492 ms", d, ok)
	}
	if n, ok := old.TaskCount(); !ok || n != 3 {
		t.Errorf("tasks = %v, %v; want 3", n, ok)
	}
	if old.FailedStepLabel() != "step_3" {
		t.Errorf("failed step = %q", old.FailedStepLabel())
	}
	if queued.Status.IsTerminal() || !queued.StartTime.IsZero() || queued.FlowVersion != nil {
		t.Errorf("queued run = %+v", queued)
	}
	if _, ok := queued.DurationSeconds(); ok {
		t.Error("a queued run has no duration")
	}
	if _, ok := queued.TaskCount(); ok {
		t.Error("null stepsCount/tasks must read as unknown")
	}
	if apiclient.ClassifyCursor(p.NextCursor()) != apiclient.CursorSecond {
		t.Error("the issue #11231 cursor is a second-granularity cursor")
	}
}

func TestDurationEdgeCases(t *testing.T) {
	at := func(s string) apiclient.Time {
		v, _ := time.Parse(time.RFC3339, s)
		return apiclient.Time{Time: v}
	}
	neg := -5.0
	huge := 1e13
	for name, tc := range map[string]struct {
		r  apiclient.FlowRun
		ok bool
	}{
		"clock skew":      {apiclient.FlowRun{StartTime: at("2026-01-01T00:00:10Z"), FinishTime: at("2026-01-01T00:00:00Z")}, false},
		"no start":        {apiclient.FlowRun{FinishTime: at("2026-01-01T00:00:00Z")}, false},
		"negative server": {apiclient.FlowRun{Duration: &neg}, false},
		"absurd server":   {apiclient.FlowRun{Duration: &huge}, false},
		"fine":            {apiclient.FlowRun{StartTime: at("2026-01-01T00:00:00Z"), FinishTime: at("2026-01-01T00:00:10Z")}, true},
	} {
		if _, ok := tc.r.DurationSeconds(); ok != tc.ok {
			t.Errorf("%s: known = %v, want %v", name, ok, tc.ok)
		}
	}
}

// A run whose id, created time or status cannot be decoded is kept, marked invalid with the
// reason; an optional field that cannot be decoded (a number out of range) is dropped and named;
// only malformed JSON fails.
func TestUndecodableRunFields(t *testing.T) {
	var r apiclient.FlowRun
	if err := json.Unmarshal([]byte(`{"id":"x","created":"yesterday","status":"FAILED"}`), &r); err != nil {
		t.Fatalf("a bad created time failed the decode: %v", err)
	}
	if !strings.Contains(r.Invalid, "yesterday") || r.ID != "x" {
		t.Errorf("invalid = %q, id %q", r.Invalid, r.ID)
	}
	r = apiclient.FlowRun{}
	if err := json.Unmarshal([]byte(`{"id":"x","created":"2026-01-01T00:00:00Z","status":"FAILED","stepsCount":1e400,"tags":7}`), &r); err != nil {
		t.Fatal(err)
	}
	slices.Sort(r.Dropped)
	if r.Invalid != "" || !slices.Equal(r.Dropped, []string{"stepsCount", "tags"}) || r.StepsCount != nil || r.Status != "FAILED" {
		t.Errorf("run %+v", r)
	}
	if _, ok := r.TaskCount(); ok {
		t.Error("a task count out of range is known")
	}
	huge := 1e300
	if _, ok := (&apiclient.FlowRun{StepsCount: &huge}).TaskCount(); ok {
		t.Error("an implausible task count (1e300) is known")
	}
	if err := json.Unmarshal([]byte(`{"id":"x",`), &r); err == nil {
		t.Error("malformed JSON decoded")
	}
}

type env struct {
	sim    *simulator.Server
	client *apiclient.Client
	url    string
	calls  atomic.Int64
}

func newEnv(t *testing.T, opts simulator.Options, cfg apiclient.Config) *env {
	t.Helper()
	e := &env{sim: simulator.New(opts)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	cfg.BaseURL = srv.URL + "/api"
	if cfg.APIKey == nil {
		cfg.APIKey = func() string { return simulator.DefaultAPIKey }
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

func TestListFlowRunsSendsEveryFilter(t *testing.T) {
	e := newEnv(t, simulator.Options{}, apiclient.Config{})
	p := e.sim.AddProject("P")
	f := e.sim.AddFlow(p, "", "F")
	run := e.sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed, Tags: []string{"a", "b"}})
	after := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{
		ProjectID: p, FlowIDs: []string{f}, Statuses: []apiclient.RunStatus{"FAILED", "TIMEOUT"}, Tags: []string{"a"},
		CreatedAfter: after, CreatedBefore: after.Add(time.Hour), FailedStepName: "step_2", FailedStepMessage: "401",
		FlowRunIDs: []string{run}, IncludeArchived: true, Limit: 7, Cursor: "a+b/c==",
	})
	if err != nil {
		t.Fatal(err)
	}
	q := e.sim.Requests()[0].Query
	want := map[string][]string{
		"projectId": {p}, "flowId": {f}, "status": {"FAILED", "TIMEOUT"}, "tags": {"a"},
		"createdAfter": {"2026-01-02T03:04:05.006Z"}, "createdBefore": {"2026-01-02T04:04:05.006Z"},
		"failedStepName": {"step_2"}, "failedStepMessage": {"401"}, "flowRunIds": {run}, "includeArchived": {"true"},
		"limit": {"7"}, "cursor": {"a+b/c=="},
	}
	for k, v := range want {
		if strings.Join(q[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s = %v, want %v", k, q[k], v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("query has %d keys, want %d: %v", len(q), len(want), q)
	}
}

func TestTypedErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		key     string
		project string
		kind    error
		code    string
	}{
		"wrong api key":     {key: "sk-wrong000000000000000000000000000000000000000000000000000000", kind: apiclient.ErrAuthentication, code: "AUTHENTICATION"},
		"bad bearer":        {key: "eyJhbGciOi.jwt", kind: apiclient.ErrAuthentication, code: "INVALID_BEARER_TOKEN"},
		"no key":            {key: "", kind: apiclient.ErrAuthorization, code: "AUTHORIZATION"},
		"unknown project":   {key: simulator.DefaultAPIKey, project: "AAAAAAAAAAAAAAAAAAAAA", kind: apiclient.ErrNotFound, code: "ENTITY_NOT_FOUND"},
		"invalid projectId": {key: simulator.DefaultAPIKey, project: "nope", kind: apiclient.ErrValidation, code: "FST_ERR_VALIDATION"},
	} {
		t.Run(name, func(t *testing.T) {
			key := tc.key
			e := newEnv(t, simulator.Options{}, apiclient.Config{APIKey: func() string { return key }, Retries: 3})
			project := tc.project
			if project == "" {
				project = e.sim.AddProject("P")
			}
			_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: project})
			var apiErr *apiclient.APIError
			if !errors.As(err, &apiErr) || !errors.Is(err, tc.kind) || apiErr.Code != tc.code {
				t.Fatalf("err = %#v, want %v with code %s", err, tc.kind, tc.code)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Errorf("message %q does not name the server's code", err)
			}
			if key != "" && strings.Contains(err.Error(), key) {
				t.Error("the key is in the error")
			}
			if e.calls.Load() != 1 {
				t.Errorf("%d requests: a %d must not be retried", e.calls.Load(), apiErr.StatusCode)
			}
		})
	}
}

// waitClock is a Clock whose waits return at once and are recorded.
type waitClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (c *waitClock) Now() time.Time { return time.Now() }
func (c *waitClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func TestRetriesHonourRetryAfterAndGiveUp(t *testing.T) {
	clock := &waitClock{}
	e := newEnv(t, simulator.Options{}, apiclient.Config{Retries: 3, Clock: clock})
	p := e.sim.AddProject("P")
	e.sim.InjectFault(simulator.Fault{Status: 429, Body: `{"statusCode":429,"error":"Too Many Requests","message":"Rate limit exceeded, retry in 1 minute"}`,
		Header: http.Header{"Retry-After": {"1"}}})
	e.sim.InjectFault(simulator.Fault{Status: 503, Body: "<html>bad gateway</html>"})
	e.sim.InjectFault(simulator.Fault{Reset: true})
	if _, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p}); err != nil {
		t.Fatalf("want success after 3 retries, got %v", err)
	}
	if len(clock.waits) < 2 || clock.waits[0] != time.Second || clock.waits[1] > 5*time.Millisecond {
		t.Errorf("waits %v: want Retry-After's 1 s, then the jittered backoff (at most 5 ms here)", clock.waits)
	}
	if e.calls.Load() != 4 {
		t.Errorf("%d requests, want 4", e.calls.Load())
	}
	e.sim.InjectFault(simulator.Fault{Status: 502, Times: 10})
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if !errors.Is(err, apiclient.ErrServer) || e.calls.Load() != 8 {
		t.Errorf("err = %v after %d requests; want a server error after 1+3 attempts", err, e.calls.Load()-4)
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	e := newEnv(t, simulator.Options{}, apiclient.Config{Timeout: 50 * time.Millisecond, Retries: 1})
	p := e.sim.AddProject("P")
	e.sim.InjectFault(simulator.Fault{Delay: time.Second, Times: 2})
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
}

func TestMalformedAndTruncatedBodies(t *testing.T) {
	e := newEnv(t, simulator.Options{}, apiclient.Config{Retries: 2})
	p := e.sim.AddProject("P")
	e.sim.InjectFault(simulator.Fault{Status: 200, Body: `{"data":[{"id":`, Times: -1})
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if !errors.Is(err, apiclient.ErrBadResponse) || e.calls.Load() != 1 {
		t.Errorf("err = %v after %d calls; want a malformed-response error, not retried", err, e.calls.Load())
	}
	e.sim.ClearFaults()
	e.sim.AddFlow(p, "", "F")
	e.sim.InjectFault(simulator.Fault{Truncate: true, Times: -1})
	_, err = e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if err == nil {
		t.Error("a truncated body decoded")
	}
}

func TestResponseSizeCap(t *testing.T) {
	e := newEnv(t, simulator.Options{}, apiclient.Config{MaxResponseBytes: 1000})
	p := e.sim.AddProject("P")
	f := e.sim.AddFlow(p, "", "F")
	for i := 0; i < 20; i++ {
		e.sim.AddRun(simulator.RunSpec{FlowID: f})
	}
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p, Limit: -1})
	if !errors.Is(err, apiclient.ErrResponseTooLarge) {
		t.Errorf("err = %v", err)
	}
}

func TestPaginateStopsOnCursorLoopAndAtTheCap(t *testing.T) {
	e := newEnv(t, simulator.Options{}, apiclient.Config{})
	p := e.sim.AddProject("P")
	f := e.sim.AddFlow(p, "", "F")
	for i := 0; i < 30; i++ {
		e.sim.AddRun(simulator.RunSpec{FlowID: f})
	}
	fetch := func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.FlowRun], error) {
		return e.client.ListFlowRuns(ctx, apiclient.ListFlowRunsParams{ProjectID: p, Limit: 10, Cursor: cursor})
	}
	seen := map[string]int{}
	w, err := apiclient.Paginate(context.Background(), "", 0, fetch, func(pg *apiclient.Page[apiclient.FlowRun]) (bool, error) {
		for _, r := range pg.Data {
			seen[r.ID]++
		}
		return true, nil
	})
	if err != nil || w.Pages != 3 || len(seen) != 30 {
		t.Fatalf("walk = %+v, %v, %d runs", w, err, len(seen))
	}
	e.sim.InjectFault(simulator.Fault{LoopCursor: true, Times: -1})
	_, err = apiclient.Paginate(context.Background(), "", 0, fetch, func(*apiclient.Page[apiclient.FlowRun]) (bool, error) { return true, nil })
	if !errors.Is(err, apiclient.ErrCursorLoop) {
		t.Errorf("loop: err = %v", err)
	}
	e.sim.ClearFaults()
	e.sim.InjectFault(simulator.Fault{EndlessNext: true, Times: -1})
	w, err = apiclient.Paginate(context.Background(), "", 5, fetch, func(*apiclient.Page[apiclient.FlowRun]) (bool, error) { return true, nil })
	if err != nil || !w.Capped || w.Pages != 5 {
		t.Errorf("endless next: walk = %+v, %v; want capped at 5", w, err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]struct {
		d  time.Duration
		ok bool
	}{
		"120":                           {2 * time.Minute, true},
		"0":                             {0, true},
		" 7 ":                           {7 * time.Second, true},
		"Fri, 27 Nov 2026 12:00:30 GMT": {30 * time.Second, true},
		"Fri, 27 Nov 2026 11:00:00 GMT": {0, true},
		"-1":                            {0, false},
		"soon":                          {0, false},
		"":                              {0, false},
		"99999999999999":                {365 * 24 * time.Hour, true},
	} {
		d, ok := apiclient.ParseRetryAfter(in, now)
		if d != want.d || ok != want.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", in, d, ok, want.d, want.ok)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	key := func() string { return "k" }
	for _, tc := range []struct {
		cfg  apiclient.Config
		want string
	}{
		{apiclient.Config{BaseURL: "http://x/api"}, "apiclient: no credentials: set Config.APIKey or Config.Auth"},
		{apiclient.Config{BaseURL: "ftp://x", APIKey: key}, `apiclient: base URL "ftp://x": want http(s)://host[/path]`},
		{apiclient.Config{BaseURL: "https://u:p@x/api", APIKey: key}, "apiclient: base URL must not carry credentials"},
	} {
		_, err := apiclient.New(tc.cfg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("New(%q) = %v, want %q", tc.cfg.BaseURL, err, tc.want)
		}
	}
}

func TestEveryEndpointRoundTrips(t *testing.T) {
	e := newEnv(t, simulator.Options{Raw: true}, apiclient.Config{})
	ctx := context.Background()
	p := e.sim.AddProject("Sales Ops")
	folder := e.sim.AddFolder(p, "Production")
	f := e.sim.AddFlow(p, folder, "Sync CRM leads")
	r := e.sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed, Steps: 4})
	e.sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusSucceeded})

	run, err := e.client.GetFlowRun(ctx, r)
	if err != nil || run.ID != r || run.Status != apiclient.StatusFailed || run.FailedStepLabel() != "step_2" {
		t.Errorf("GetFlowRun = %+v, %v", run, err)
	}
	if _, err := e.client.GetFlowRun(ctx, "AAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("GetFlowRun(unknown) = %v", err)
	}
	counts, err := e.client.CountByStatus(ctx, p, time.Time{}, time.Time{})
	if err != nil || len(counts) != 2 {
		t.Errorf("CountByStatus = %+v, %v", counts, err)
	}
	flows, err := apiclient.ListAll(ctx, 10, func(ctx context.Context, cursor string) (*apiclient.Page[apiclient.Flow], error) {
		return e.client.ListFlows(ctx, apiclient.ListFlowsParams{ProjectID: p, Cursor: cursor})
	})
	if err != nil || len(flows) != 1 || flows[0].DisplayName() != "Sync CRM leads" || flows[0].FolderID != folder || flows[0].Status != "ENABLED" {
		t.Errorf("ListFlows = %+v, %v", flows, err)
	}
	folders, err := e.client.ListFolders(ctx, p, 0, "")
	if err != nil || len(folders.Data) != 1 || folders.Data[0].DisplayName != "Production" {
		t.Errorf("ListFolders = %+v, %v", folders, err)
	}
	projects, err := e.client.ListProjects(ctx, 0, "")
	if err != nil || len(projects.Data) != 1 || projects.Data[0].DisplayName != "Sales Ops" {
		t.Errorf("ListProjects = %+v, %v", projects, err)
	}
	if e.client.BaseURL() != e.url+"/api" {
		t.Errorf("BaseURL = %s", e.client.BaseURL())
	}
}

func TestServerMessagesEchoingTheKeyAreRedacted(t *testing.T) {
	const key = "sk-echoedBack000000000000000000000000000000000000000000000000000"
	e := newEnv(t, simulator.Options{APIKey: key}, apiclient.Config{APIKey: func() string { return key }})
	p := e.sim.AddProject("P")
	e.sim.InjectFault(simulator.Fault{Status: 400, Body: `{"code":"` + key + `","params":{"message":"bad token ` + key + `"}}`})
	_, err := e.client.ListFlowRuns(context.Background(), apiclient.ListFlowRunsParams{ProjectID: p})
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("err = %v", err)
	}
}
