package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

func get(t *testing.T, s *Server, path string, q url.Values, key string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: body %q: %v", path, body, err)
	}
	return rec.Code, m
}

func TestErrorBodiesFollowAPIMD(t *testing.T) {
	s := New(Options{})
	p := s.AddProject("P")
	for name, tc := range map[string]struct {
		path string
		q    url.Values
		key  string
		code int
		body string
	}{
		"missing projectId (validation before auth)": {"/api/v1/flow-runs", url.Values{}, "", 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/projectId Invalid input: expected string, received undefined","statusCode":400}`},
		"bad status": {"/api/v1/flow-runs", url.Values{"projectId": {p}, "status": {"FAILED", "NOPE"}}, DefaultAPIKey, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/status/1 Invalid option: expected one of \"FAILED\"|\"QUOTA_EXCEEDED\"|\"INTERNAL_ERROR\"|\"PAUSED\"|\"QUEUED\"|\"RUNNING\"|\"SUCCEEDED\"|\"MEMORY_LIMIT_EXCEEDED\"|\"TIMEOUT\"|\"CANCELED\"|\"LOG_SIZE_EXCEEDED\"","statusCode":400}`},
		"bad limit": {"/api/v1/flow-runs", url.Values{"projectId": {p}, "limit": {"ten"}}, DefaultAPIKey, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"querystring/limit Invalid input: expected number, received NaN","statusCode":400}`},
		"no auth": {"/api/v1/flow-runs", url.Values{"projectId": {p}}, "", 403,
			`{"code":"AUTHORIZATION","params":{"message":"principal is not allowed for this route"}}`},
		"wrong key": {"/api/v1/flow-runs", url.Values{"projectId": {p}}, "sk-nope", 401,
			`{"code":"AUTHENTICATION","params":{"message":"invalid api key"}}`},
		"unknown project": {"/api/v1/flow-runs", url.Values{"projectId": {"AAAAAAAAAAAAAAAAAAAAA"}}, DefaultAPIKey, 404,
			`{"code":"ENTITY_NOT_FOUND","params":{"entityId":"AAAAAAAAAAAAAAAAAAAAA","entityType":"project"}}`},
		"unknown run": {"/api/v1/flow-runs/AAAAAAAAAAAAAAAAAAAAA", url.Values{}, DefaultAPIKey, 404,
			`{"code":"ENTITY_NOT_FOUND","params":{"entityId":"AAAAAAAAAAAAAAAAAAAAA","entityType":"flow_run"}}`},
		"bad run id": {"/api/v1/flow-runs/x", url.Values{}, DefaultAPIKey, 400,
			`{"code":"FST_ERR_VALIDATION","error":"Bad Request","message":"params/id Invalid string: must match pattern /^[0-9a-zA-Z]{21}$/","statusCode":400}`},
		"unknown route": {"/api/v1/nope", url.Values{}, DefaultAPIKey, 404,
			`{"error":"Not Found","message":"Route not found","statusCode":404}`},
	} {
		code, body := get(t, s, tc.path, tc.q, tc.key)
		b, _ := json.Marshal(body)
		if code != tc.code || string(b) != tc.body {
			t.Errorf("%s: %d %s\nwant %d %s", name, code, b, tc.code, tc.body)
		}
	}
}

func ids(body map[string]any) []string {
	var out []string
	for _, d := range body["data"].([]any) {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

func TestListingOrderLimitsAndPaging(t *testing.T) {
	base := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return base }})
	p := s.AddProject("P")
	f := s.AddFlow(p, "", "F")
	var want []string
	for i := 0; i < 25; i++ {
		want = append([]string{s.AddRun(RunSpec{FlowID: f, Created: base.Add(time.Duration(i/2) * time.Millisecond)})}, want...)
	}
	s.AddRun(RunSpec{FlowID: f, Environment: "TESTING"})
	_, first := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}}, DefaultAPIKey)
	if n := len(ids(first)); n != 10 || first["next"] == nil || first["previous"] != nil {
		t.Fatalf("default page: %d items, next %v, previous %v", n, first["next"], first["previous"])
	}
	var got []string
	cursor := ""
	for {
		q := url.Values{"projectId": {p}, "limit": {"4"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		_, page := get(t, s, "/api/v1/flow-runs", q, DefaultAPIKey)
		got = append(got, ids(page)...)
		if page["next"] == nil {
			break
		}
		cursor = page["next"].(string)
		if page == nil || cursor == "" {
			t.Fatal("empty cursor")
		}
	}
	// Runs sharing a millisecond are ordered by id DESC; want was built in creation order only.
	if len(got) != 25 {
		t.Fatalf("paged %d runs, want 25 (TESTING excluded)", len(got))
	}
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("run %s missing from the paged listing", id)
		}
	}
	_, all := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}, "limit": {"-1"}}, DefaultAPIKey)
	if len(ids(all)) != 25 || all["next"] != nil {
		t.Errorf("limit=-1: %d items, next %v", len(ids(all)), all["next"])
	}
	_, zero := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}, "limit": {"0"}}, DefaultAPIKey)
	if len(ids(zero)) != 25 {
		t.Errorf("limit=0 behaves like 100: got %d", len(ids(zero)))
	}
	if strings.Join(ids(all), ",") != strings.Join(got, ",") {
		t.Error("paged order differs from the one-page order")
	}
}

func TestOldServerSkipsTheBoundarySecond(t *testing.T) {
	base := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	s := New(Options{OldServer: true, Now: func() time.Time { return base }})
	p := s.AddProject("P")
	f := s.AddFlow(p, "", "F")
	for i := 0; i < 6; i++ { // three runs in each of two seconds
		s.AddRun(RunSpec{FlowID: f, Created: base.Add(time.Duration(i/3)*time.Second + time.Duration(i)*time.Millisecond)})
	}
	_, first := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}, "limit": {"2"}}, DefaultAPIKey)
	next := first["next"].(string)
	if apiclient.ClassifyCursor(next) != apiclient.CursorSecond {
		t.Fatalf("old server cursor %q is not a created:<ms> cursor", next)
	}
	_, second := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}, "limit": {"2"}, "cursor": {next}}, DefaultAPIKey)
	if n := len(ids(first)) + len(ids(second)); n != 4 {
		t.Errorf("two pages held %d runs; the third run of the first second must be skipped, as on old servers", n)
	}
	if _, ok := first["data"].([]any)[0].(map[string]any)["duration"]; !ok {
		t.Error("old server runs carry duration")
	}
}

func TestRawModeSendsNullsAndExtraKeys(t *testing.T) {
	s := New(Options{Raw: true})
	p := s.AddProject("P")
	f := s.AddFlow(p, "", "F")
	s.AddRun(RunSpec{FlowID: f, Status: apiclient.StatusQueued})
	_, page := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}}, DefaultAPIKey)
	run := page["data"].([]any)[0].(map[string]any)
	for _, k := range []string{"parentRunId", "triggeredBy", "failedStep", "startTime", "finishTime", "pauseMetadata"} {
		if v, ok := run[k]; !ok || v != nil {
			t.Errorf("%s = %v, %v; want an explicit null", k, v, ok)
		}
	}
	if run["flowVersion_displayName"] != "F" {
		t.Error("no raw join column")
	}
}

func TestFlowsFoldersAndProjectsPage(t *testing.T) {
	s := New(Options{})
	p := s.AddProject("P")
	for i := 0; i < 25; i++ {
		s.AddFlow(p, "", "F")
		s.AddFolder(p, "D")
		s.AddProject("Q")
	}
	for path, want := range map[string]int{"/api/v1/flows": 25, "/api/v1/folders": 25, "/api/v1/projects": 26} {
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			q := url.Values{"limit": {"10"}}
			if path != "/api/v1/projects" {
				q.Set("projectId", p)
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			_, page := get(t, s, path, q, DefaultAPIKey)
			pages++
			for _, id := range ids(page) {
				if seen[id] {
					t.Fatalf("%s: %s on two pages", path, id)
				}
				seen[id] = true
			}
			if page["next"] == nil {
				break
			}
			cursor = page["next"].(string)
		}
		if len(seen) != want || pages != (want+9)/10 {
			t.Errorf("%s: %d items in %d pages, want %d", path, len(seen), pages, want)
		}
	}
}

func TestArchivedRunsDisabledFlowsAndRunRecord(t *testing.T) {
	s := New(Options{})
	p := s.AddProject("P")
	f := s.AddFlow(p, "", "F")
	off := s.AddFlow(p, "", "Off")
	s.SetFlowStatus(off, "DISABLED")
	r := s.AddRun(RunSpec{FlowID: f, Status: apiclient.StatusRunning})
	s.SetRunSteps(r, 4)
	s.ArchiveRun(r)
	if rec := s.Run(r); !rec.Archived || rec.Steps != 4 || rec.Status != apiclient.StatusRunning {
		t.Errorf("record = %+v", rec)
	}
	_, page := get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}}, DefaultAPIKey)
	if len(ids(page)) != 0 {
		t.Error("an archived run is listed without includeArchived")
	}
	_, page = get(t, s, "/api/v1/flow-runs", url.Values{"projectId": {p}, "includeArchived": {"true"}}, DefaultAPIKey)
	if len(ids(page)) != 1 || page["data"].([]any)[0].(map[string]any)["archivedAt"] == nil {
		t.Errorf("includeArchived=true: %v", page["data"])
	}
	_, flows := get(t, s, "/api/v1/flows", url.Values{"projectId": {p}}, DefaultAPIKey)
	if first := flows["data"].([]any)[0].(map[string]any); first["status"] != "ENABLED" {
		t.Errorf("flows are ordered status DESC (ENABLED first): %v", first["status"])
	}
	_, disabled := get(t, s, "/api/v1/flows", url.Values{"projectId": {p}, "status": {"DISABLED"}}, DefaultAPIKey)
	if got := ids(disabled); len(got) != 1 || got[0] != off {
		t.Errorf("status=DISABLED: %v", got)
	}
}

// The demo's failed runs fail in steps with the display names a builder would give them.
func TestDemoFailuresNameTheirStep(t *testing.T) {
	s := New(Options{})
	g := NewGenerator(s, 50, 3)
	for range 20 {
		g.Step(time.Second)
	}
	failed, named := 0, map[string]bool{}
	for _, runs := range s.byProject {
		for _, r := range runs {
			if r.Status.IsFailure() && !r.NoFailedStep {
				failed++
				if r.FailedStepName == "" || r.FailedStepDisplayName == "" {
					t.Errorf("failed run %s has no failed step", r.ID)
				}
				named[r.FailedStepDisplayName] = true
			}
		}
	}
	if failed < 10 || !named["Forward to partner webhook"] || named["Create Contact"] {
		t.Errorf("%d failed runs, steps %v; want the flows' own step names", failed, named)
	}
}

// The demo's run links lead to a page standing in for the UI's run page.
func TestRunPageStandsInForTheUI(t *testing.T) {
	s := New(Options{})
	p := s.AddProject("P")
	f := s.AddFlow(p, "", `Relay <script>`)
	id := s.AddRun(RunSpec{FlowID: f, Status: apiclient.StatusFailed, FailedStep: "step_2", FailedStepDisplay: "Forward to partner"})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/projects/" + p + "/runs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Forward to partner") || strings.Contains(string(body), "<script>") {
		t.Errorf("run page: %d\n%s", resp.StatusCode, body)
	}
	if resp, err := http.Get(srv.URL + "/projects/other/runs/" + id); err != nil || resp.StatusCode != 404 {
		t.Errorf("a run under another project: %v %v", resp, err)
	}
}
