package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// answering is a loopback server answering every request with the current status and body,
// recording the Authorization header and the query of each.
type answering struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	body   string
	auth   []string
	query  []string
	hits   atomic.Int64
}

func newAnswering(t *testing.T) *answering {
	a := &answering{status: 200}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		a.mu.Lock()
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.query = append(a.query, r.URL.RawQuery)
		status, body := a.status, a.body
		a.mu.Unlock()
		reply(w, status, body)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *answering) answer(status int, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.body = status, body
}

func (a *answering) client(t *testing.T, cfg apiclient.Config) *apiclient.Client {
	t.Helper()
	cfg.BaseURL = a.srv.URL + "/api"
	if cfg.APIKey == nil && cfg.Auth == nil {
		cfg.APIKey = func() string { return hostileKey }
	}
	cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Flags decode whatever the server sends: unknown flags are ignored, and a flag missing, null
// or of another type than expected reads as its zero value, not as an error.
func TestFlagsTolerantDecoding(t *testing.T) {
	a := newAnswering(t)
	c := a.client(t, apiclient.Config{})
	for name, tc := range map[string]struct {
		body string
		want apiclient.Flags
	}{
		"current": {`{"EDITION":"ce","CURRENT_VERSION":"0.85.4","LATEST_VERSION":"0.86.0","FLOW_RUN_TIME_SECONDS":600,` +
			`"EXECUTION_DATA_RETENTION_DAYS":30,"THEME":{"colors":{"primary":"#6e41e2"}},"SUPPORTED_APP_WEBHOOKS":[],"PAUSED_FLOW_TIMEOUT_DAYS":30}`,
			apiclient.Flags{Edition: "ce", Version: "0.85.4", LatestVersion: "0.86.0", FlowRunTimeSeconds: 600, ExecutionDataRetentionDays: 30}},
		"numeric strings, upper case": {`{"EDITION":" Cloud ","FLOW_RUN_TIME_SECONDS":"600","EXECUTION_DATA_RETENTION_DAYS":"7"}`,
			apiclient.Flags{Edition: "cloud", FlowRunTimeSeconds: 600, ExecutionDataRetentionDays: 7}},
		"nulls": {`{"EDITION":null,"CURRENT_VERSION":null,"FLOW_RUN_TIME_SECONDS":null,"EXECUTION_DATA_RETENTION_DAYS":null}`, apiclient.Flags{}},
		"odd types": {`{"EDITION":5,"CURRENT_VERSION":{"v":1},"FLOW_RUN_TIME_SECONDS":"soon","EXECUTION_DATA_RETENTION_DAYS":true,"LATEST_VERSION":["x"]}`,
			apiclient.Flags{}},
		"out of range": {`{"EDITION":"ee","FLOW_RUN_TIME_SECONDS":-1,"EXECUTION_DATA_RETENTION_DAYS":1.5}`, apiclient.Flags{Edition: "ee"}},
		"huge":         {`{"FLOW_RUN_TIME_SECONDS":1e400,"EXECUTION_DATA_RETENTION_DAYS":"NaN"}`, apiclient.Flags{}},
		"empty":        {`{}`, apiclient.Flags{}},
		"null":         {`null`, apiclient.Flags{}},
	} {
		a.answer(200, tc.body)
		got, err := c.GetFlags(ctxT(t))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
	for name, body := range map[string]string{"array": `[1,2]`, "html": `<html>flags</html>`, "two values": `{} {}`} {
		a.answer(200, body)
		if _, err := c.GetFlags(ctxT(t)); !errors.Is(err, apiclient.ErrBadResponse) {
			t.Errorf("%s: err = %v, want a malformed response", name, err)
		}
	}
	a.answer(200, `{"THEME":"`+strings.Repeat("x", 2<<20)+`"}`)
	if _, err := c.GetFlags(ctxT(t)); !errors.Is(err, apiclient.ErrResponseTooLarge) {
		t.Errorf("2 MiB of flags: err = %v", err)
	}
	a.answer(404, `{"statusCode":404,"error":"Not Found","message":"Route not found"}`)
	if _, err := c.GetFlags(ctxT(t)); !errors.Is(err, apiclient.ErrNotFound) || !errors.Is(err, apiclient.ErrRouteNotFound) {
		t.Errorf("no flags route: err = %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := slices.IndexFunc(a.auth, func(h string) bool { return h != "" }); i >= 0 {
		t.Errorf("request %d of GET /v1/flags carried Authorization %q", i, a.auth[i])
	}
}

// GetFlags is public: with a sign-in as credentials it neither signs in nor sends a token.
func TestFlagsDoNotSignIn(t *testing.T) {
	e := newSignInEnv(t, apiclient.SignInConfig{}, apiclient.Config{})
	f, err := e.client.GetFlags(ctxT(t))
	if err != nil || f.Edition != apiclient.EditionCommunity || f.Version != "0.85.4" {
		t.Fatalf("flags %+v, %v", f, err)
	}
	if n := e.ap.hit(signInPath); n != 0 {
		t.Errorf("GetFlags signed in %d times", n)
	}
	e.ap.set(func(f *fakeAP) {
		if len(f.auth) != 1 || f.auth[0] != "" {
			t.Errorf("Authorization %q", f.auth)
		}
	})
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("run%018d", i)
	}
	return out
}

// The 400 of a server whose query parser caps repeated keys at 20 is a *RepeatLimitError naming
// the key, matching ErrRepeatLimit and still the server's validation error; not retried. The
// same answer to a request within the cap, or another validation error, is not.
func TestRepeatLimitDetection(t *testing.T) {
	const body = `{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/flowRunIds/0 Invalid input: expected string, received object"}`
	a := newAnswering(t)
	c := a.client(t, apiclient.Config{Retries: 3})
	a.answer(400, body)
	_, err := c.ListFlowRuns(ctxT(t), apiclient.ListFlowRunsParams{ProjectID: "w0UMzSmue5InrQO2LTBRI", FlowRunIDs: ids(21)})
	var rl *apiclient.RepeatLimitError
	var apiErr *apiclient.APIError
	if !errors.As(err, &rl) || rl.Key != "flowRunIds" || !errors.Is(err, apiclient.ErrRepeatLimit) ||
		!errors.Is(err, apiclient.ErrValidation) || !errors.As(err, &apiErr) || apiErr.Code != "FST_ERR_VALIDATION" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), `at most 20 values of "flowRunIds"`) || !strings.Contains(err.Error(), "received object") {
		t.Errorf("message %q", err)
	}
	if n := a.hits.Load(); n != 1 {
		t.Errorf("%d requests: a repeat-limit 400 is not retried", n)
	}
	_, err = c.ListFlowRuns(ctxT(t), apiclient.ListFlowRunsParams{ProjectID: "w0UMzSmue5InrQO2LTBRI", FlowRunIDs: ids(apiclient.SafeRepeatedValues)})
	if errors.Is(err, apiclient.ErrRepeatLimit) || !errors.Is(err, apiclient.ErrValidation) {
		t.Errorf("20 ids: err = %v; batching cannot help, so it is a plain validation error", err)
	}
	for _, other := range []string{
		`{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/status/1 Invalid option: expected one of \"FAILED\"|\"SUCCEEDED\""}`,
		`{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/projectId Invalid input: expected string, received undefined"}`,
		`{"code":"VALIDATION","params":{"message":"querystring/flowRunIds/0 received object"}}`,
	} {
		a.answer(400, other)
		_, err := c.ListFlowRuns(ctxT(t), apiclient.ListFlowRunsParams{ProjectID: "w0UMzSmue5InrQO2LTBRI", FlowRunIDs: ids(30)})
		if errors.Is(err, apiclient.ErrRepeatLimit) || !errors.Is(err, apiclient.ErrValidation) {
			t.Errorf("%s: err = %v", other, err)
		}
	}
	// Several issues in one message, the key without an index, another key.
	a.answer(400, `{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/limit Invalid input: expected number, received NaN, querystring/status Invalid input: expected array, received object"}`)
	_, err = c.ListFlowRuns(ctxT(t), apiclient.ListFlowRunsParams{ProjectID: "w0UMzSmue5InrQO2LTBRI", Statuses: slices.Repeat([]apiclient.RunStatus{"FAILED"}, 25)})
	if !errors.As(err, &rl) || rl.Key != "status" {
		t.Errorf("err = %v, want the repeat limit on status", err)
	}
}

func TestBatches(t *testing.T) {
	in := ids(45)
	b := apiclient.Batches(in, apiclient.SafeRepeatedValues)
	if len(b) != 3 || len(b[0]) != 20 || len(b[1]) != 20 || len(b[2]) != 5 || b[1][0] != in[20] || b[2][4] != in[44] {
		t.Errorf("batches of 45: %d, %v", len(b), b)
	}
	b[0] = append(b[0], "x") // a batch's capacity ends with it: appending never overwrites the next
	if in[20] != "run000000000000000020" {
		t.Error("appending to a batch overwrote the next")
	}
	if got := apiclient.Batches([]string{}, 20); len(got) != 0 {
		t.Errorf("no ids: %v", got)
	}
	if got := apiclient.Batches(ids(20), 20); len(got) != 1 {
		t.Errorf("20 ids: %d batches", len(got))
	}
	if got := apiclient.Batches(ids(21), 0); len(got) != 2 {
		t.Errorf("n=0 means SafeRepeatedValues: %d batches", len(got))
	}
}

// A route the server does not have (a 404 without a business code) is ErrRouteNotFound; an
// unknown entity is ErrNotFound only. Both are ErrNotFound.
func TestRouteNotFoundIsNotAnEntityNotFound(t *testing.T) {
	a := newAnswering(t)
	c := a.client(t, apiclient.Config{})
	a.answer(404, `{"statusCode":404,"error":"Not Found","message":"Route not found"}`)
	_, err := c.ListProjects(ctxT(t), 10, "")
	if !errors.Is(err, apiclient.ErrRouteNotFound) || !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("route: err = %v", err)
	}
	a.answer(404, `<html>404 Not Found</html>`)
	if _, err := c.ListProjects(ctxT(t), 10, ""); !errors.Is(err, apiclient.ErrRouteNotFound) {
		t.Errorf("a proxy's 404: err = %v", err)
	}
	a.answer(404, `{"code":"ENTITY_NOT_FOUND","params":{"entityId":"AAAAAAAAAAAAAAAAAAAAA","entityType":"project"}}`)
	_, err = c.ListFolders(ctxT(t), "AAAAAAAAAAAAAAAAAAAAA", 10, "")
	if errors.Is(err, apiclient.ErrRouteNotFound) || !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("entity: err = %v", err)
	}
}

// GET /v1/users/projects: a SeekPage of projects, which old servers send whole whatever the
// limit.
func TestListUserProjects(t *testing.T) {
	var path atomic.Value
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range 40 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"p%020d","displayName":"Project %d","platformId":"plat","type":"PERSONAL","plan":null,"extra":{"a":1}}`, i, i)
	}
	b.WriteString(`],"next":null,"previous":null}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path + "?" + r.URL.RawQuery)
		_, _ = io.WriteString(w, b.String())
	}))
	defer srv.Close()
	c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/api", APIKey: func() string { return "k" }})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListUserProjects(ctxT(t), 10, "cur")
	if err != nil || len(page.Data) != 40 || page.Data[39].DisplayName != "Project 39" || page.NextCursor() != "" {
		t.Fatalf("page %+v, %v", page, err)
	}
	if got := path.Load(); got != "/api/v1/users/projects?cursor=cur&limit=10" {
		t.Errorf("request %v", got)
	}
}
