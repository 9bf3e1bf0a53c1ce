package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

var apIDPattern = regexp.MustCompile(`^[0-9a-zA-Z]{21}$`)

// newStatuses is the FlowRunStatus enum of current servers, in the schema's order.
var newStatuses = []string{"FAILED", "QUOTA_EXCEEDED", "INTERNAL_ERROR", "PAUSED", "QUEUED", "RUNNING",
	"SUCCEEDED", "MEMORY_LIMIT_EXCEEDED", "TIMEOUT", "CANCELED", "LOG_SIZE_EXCEEDED"}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The Date header tells the server's clock, as a real server's does.
	w.Header().Set("Date", s.now().Add(s.opts.DateSkew).Format(http.TimeFormat))
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	defer func() {
		s.mu.Lock()
		if len(s.requests) < s.maxLog {
			s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Status: rec.status, At: s.now()})
		}
		s.mu.Unlock()
	}()
	if f := s.takeFault(r.URL.Path); f != nil {
		if f.apply(rec, r, s) {
			return
		}
	}
	s.route(rec, r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if parts := strings.Split(r.URL.Path, "/"); r.Method == http.MethodGet && len(parts) == 5 && parts[1] == "projects" && parts[3] == "runs" {
		s.runPage(w, parts[2], parts[4])
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api")
	switch {
	case !ok:
		notFound(w)
	case r.Method == http.MethodPost:
		s.routePost(w, r, path)
	case r.Method != http.MethodGet && path != "/v1/health":
		notFound(w)
	case s.repeatedTooOften(w, r, path):
	default:
		s.routeGet(w, r, path)
	}
}

func (s *Server) routeGet(w http.ResponseWriter, r *http.Request, path string) {
	q := normalizeQuery(r)
	switch {
	case path == "/v1/health":
		writeJSON(w, 200, map[string]string{"status": "Healthy"})
	case path == "/v1/flags" && !s.opts.NoFlags:
		writeJSON(w, 200, s.flags())
	case path == "/v1/flow-runs":
		s.listRuns(w, r, q)
	case path == "/v1/flow-runs/count-by-status":
		s.countByStatus(w, r, q)
	case strings.HasPrefix(path, "/v1/flow-runs/") && strings.Count(path, "/") == 3:
		s.getRun(w, r, strings.TrimPrefix(path, "/v1/flow-runs/"))
	case path == "/v1/flows":
		s.listFlows(w, r, q)
	case path == "/v1/folders":
		s.listFolders(w, r, q)
	case path == "/v1/projects" && (s.opts.ProjectsRoute == "projects" || s.opts.Edition != EditionCommunity):
		s.listProjects(w, r, q)
	case path == "/v1/users/projects" && s.opts.ProjectsRoute == "users":
		s.listUserProjects(w, r)
	default:
		notFound(w)
	}
}

func (s *Server) routePost(w http.ResponseWriter, r *http.Request, path string) {
	switch path {
	case "/v1/authentication/sign-in":
		s.signIn(w, r)
	case "/v1/authentication/switch-platform":
		s.switchPlatform(w, r)
	default:
		notFound(w)
	}
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, 404, map[string]any{"statusCode": 404, "error": "Not Found", "message": "Route not found"})
}

// normalizeQuery folds qs's "key[]" form into "key".
func normalizeQuery(r *http.Request) map[string][]string {
	out := map[string][]string{}
	for k, v := range r.URL.Query() {
		k = strings.TrimSuffix(k, "[]")
		out[k] = append(out[k], v...)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // as JSON.stringify: "body/password Too big: expected string to have <=64 characters"
	_ = enc.Encode(v)
}

func validationError(w http.ResponseWriter, msg string) {
	writeJSON(w, 400, map[string]any{"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request", "message": msg})
}

func businessError(w http.ResponseWriter, status int, code string, params map[string]any) {
	writeJSON(w, status, map[string]any{"code": code, "params": params})
}

// validator collects the first validation failure, as fastify reports one message.
type validator struct {
	q   map[string][]string
	msg string
}

func (v *validator) fail(format string, a ...any) {
	if v.msg == "" {
		v.msg = fmt.Sprintf(format, a...)
	}
}

func (v *validator) apID(name string, required bool) string {
	vals := v.q[name]
	if len(vals) == 0 {
		if required {
			v.fail("querystring/%s Invalid input: expected string, received undefined", name)
		}
		return ""
	}
	if !apIDPattern.MatchString(vals[0]) {
		v.fail("querystring/%s Invalid string: must match pattern /^[0-9a-zA-Z]{21}$/", name)
	}
	return vals[0]
}

func (v *validator) apIDs(name string) []string {
	for i, id := range v.q[name] {
		if !apIDPattern.MatchString(id) {
			v.fail("querystring/%s/%d Invalid string: must match pattern /^[0-9a-zA-Z]{21}$/", name, i)
		}
	}
	return v.q[name]
}

func (v *validator) enum(name string, allowed []string) []string {
	for i, val := range v.q[name] {
		if !contains(allowed, val) {
			quoted := make([]string, len(allowed))
			for j, a := range allowed {
				quoted[j] = strconv.Quote(a)
			}
			v.fail("querystring/%s/%d Invalid option: expected one of %s", name, i, strings.Join(quoted, "|"))
		}
	}
	return v.q[name]
}

func (v *validator) limit(def int) int {
	vals := v.q["limit"]
	if len(vals) == 0 {
		return def
	}
	n, err := strconv.ParseFloat(vals[0], 64)
	if err != nil {
		v.fail("querystring/limit Invalid input: expected number, received NaN")
		return def
	}
	switch {
	case n == 0:
		return 100 // falsy → paginator default
	case n < 0:
		return -1
	}
	return int(n)
}

func (v *validator) time(name string) (time.Time, bool) {
	vals := v.q[name]
	if len(vals) == 0 {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, vals[0])
	return t, err == nil
}

func (v *validator) str(name string) string {
	if vals := v.q[name]; len(vals) > 0 {
		return vals[0]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// admit answers a request whose query failed validation with the 400 (validation runs before
// authentication, as in fastify), then authorizes it; false means an error was written.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, v *validator, projectID string) (*principal, bool) {
	if v.msg != "" {
		validationError(w, v.msg)
		return nil, false
	}
	return s.authorize(w, r, projectID)
}

func serverError(w http.ResponseWriter, msg string) {
	writeJSON(w, 500, map[string]any{"statusCode": 500, "code": "ERR_INTERNAL", "error": "Internal Server Error", "message": msg})
}

func (s *Server) statuses() []string {
	var out []string
	if s.opts.OldServer || s.opts.NoQueued {
		out = append(out, "STOPPED")
	}
	for _, st := range newStatuses {
		// Shared <= 0.10 had neither QUEUED nor the later CANCELED (0.26) and LOG_SIZE_EXCEEDED (0.43).
		if !s.opts.NoQueued || st != "QUEUED" && st != "CANCELED" && st != "LOG_SIZE_EXCEEDED" {
			out = append(out, st)
		}
	}
	return out
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, q map[string][]string) {
	v := &validator{q: q}
	projectID := v.apID("projectId", true)
	flowIDs := v.apIDs("flowId")
	statuses := v.enum("status", s.statuses())
	runIDs := v.apIDs("flowRunIds")
	limit := v.limit(10)
	if _, ok := s.admit(w, r, v, projectID); !ok {
		return
	}
	after, ok1 := v.time("createdAfter")
	before, ok2 := v.time("createdBefore")
	if !ok1 || !ok2 {
		serverError(w, "invalid input syntax for type timestamp with time zone")
		return
	}
	tags := q["tags"]
	failedStepName, failedStepMessage := v.str("failedStepName"), strings.ToLower(v.str("failedStepMessage"))
	includeArchived := v.str("includeArchived") == "true"
	cursor := v.str("cursor")

	s.mu.Lock()
	defer s.mu.Unlock()
	match := func(run *Run) bool {
		switch {
		case !s.visibleLocked(run), run.Environment != "PRODUCTION", run.Archived && !includeArchived:
			return false
		case len(flowIDs) > 0 && !contains(flowIDs, run.FlowID):
			return false
		case len(statuses) > 0 && !contains(statuses, string(run.Status)):
			return false
		case len(runIDs) > 0 && !s.opts.IgnoreFlowRunIDs && !contains(runIDs, run.ID):
			return false
		case !after.IsZero() && run.Created.Before(after), !before.IsZero() && run.Created.After(before):
			return false
		case failedStepName != "" && run.FailedStepName != failedStepName:
			return false
		case failedStepMessage != "" && !strings.Contains(strings.ToLower(run.FailedStepMessage), failedStepMessage):
			return false
		}
		for _, t := range tags {
			if !contains(run.Tags, t) {
				return false
			}
		}
		return true
	}
	pos := s.decodeRunCursor(cursor)
	var page []*Run
	more := false
	// Runs are kept created DESC, id DESC, and the cursor and createdBefore bounds are monotone in
	// that order: start at the first run past both, stop at the first one before createdAfter.
	list := s.byProject[projectID]
	first := sort.Search(len(list), func(i int) bool {
		return (pos == nil || pos(list[i])) && (before.IsZero() || !list[i].Created.After(before))
	})
	for _, run := range list[first:] {
		if !after.IsZero() && run.Created.Before(after) {
			break
		}
		if !match(run) {
			continue
		}
		if limit >= 0 && len(page) == limit {
			more = true
			break
		}
		page = append(page, run)
	}
	s.writeRunPage(w, page, more, cursor != "" && pos != nil)
}

// writeRunPage writes a page of runs with its cursors: next when more rows exist, previous on a
// page reached with a cursor.
func (s *Server) writeRunPage(w http.ResponseWriter, page []*Run, more, paged bool) {
	data := make([]any, len(page))
	for i, run := range page {
		data[i] = s.runJSON(run, false)
	}
	resp := map[string]any{"data": data, "next": nil, "previous": nil}
	if more && len(page) > 0 {
		resp["next"] = s.encodeRunCursor("next_", page[len(page)-1])
	}
	if paged && len(page) > 0 {
		resp["previous"] = s.encodeRunCursor("prev_", page[0])
	}
	writeJSON(w, 200, resp)
}

// encodeRunCursor follows docs/activepieces-api.md §2: base64("next_" + inner).
func (s *Server) encodeRunCursor(prefix string, run *Run) string {
	var inner string
	if s.opts.OldServer {
		inner = base64.StdEncoding.EncodeToString([]byte("created:" + strconv.FormatInt(run.Created.UnixMilli(), 10)))
	} else {
		b, _ := json.Marshal(map[string]string{"created": apiclient.FormatTime(run.Created), "id": run.ID})
		inner = base64.StdEncoding.EncodeToString(b)
	}
	return base64.StdEncoding.EncodeToString([]byte(prefix + inner))
}

// decodeRunCursor returns a filter for the rows after a next_ cursor, or nil (first page) for
// none or a malformed one, which the real server ignores. prev_ cursors are not needed by the
// exporter and are served as a first page too.
func (s *Server) decodeRunCursor(cursor string) func(*Run) bool {
	if cursor == "" {
		return nil
	}
	outer, err := base64.StdEncoding.DecodeString(cursor)
	if err != nil {
		return nil
	}
	rest, ok := strings.CutPrefix(string(outer), "next_")
	if !ok {
		return nil
	}
	inner, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil
	}
	if ms, ok := strings.CutPrefix(string(inner), "created:"); ok {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return nil
		}
		// DATE_TRUNC('second', created) < DATE_TRUNC('second', cursor): the rest of the
		// boundary second is skipped, as on old servers.
		bound := time.UnixMilli(n).UTC().Truncate(time.Second)
		return func(r *Run) bool { return r.Created.Truncate(time.Second).Before(bound) }
	}
	var k struct{ Created, ID string }
	if json.Unmarshal(inner, &k) != nil {
		return nil
	}
	created, err := time.Parse(time.RFC3339Nano, k.Created)
	if err != nil {
		return nil
	}
	return func(r *Run) bool {
		return r.Created.Before(created) || r.Created.Equal(created) && r.ID < k.ID
	}
}

// runJSON serializes a run as the server would: strict (schema-stripped) or raw (explicit nulls,
// extra join columns), new or old schema.
func (s *Server) runJSON(run *Run, full bool) map[string]any {
	m := map[string]any{
		"id": run.ID, "created": apiclient.FormatTime(run.Created), "updated": apiclient.FormatTime(run.Updated),
		"projectId": run.ProjectID, "flowId": run.FlowID, "flowVersionId": run.FlowVersionID,
		"flowVersion": map[string]any{"displayName": run.FlowName}, "failParentOnFailure": true,
		"logsFileId": nil, "status": string(run.Status), "environment": run.Environment, "archivedAt": nil,
		"tags": emptyIfNil(run.Tags),
	}
	if run.Archived {
		m["archivedAt"] = apiclient.FormatTime(run.Updated)
	}
	if !run.StartTime.IsZero() {
		m["startTime"] = apiclient.FormatTime(run.StartTime)
	} else if s.opts.Raw {
		m["startTime"] = nil
	}
	if !run.FinishTime.IsZero() {
		m["finishTime"] = apiclient.FormatTime(run.FinishTime)
	} else if s.opts.Raw {
		m["finishTime"] = nil
	}
	if s.opts.OldServer {
		if run.FailedStepName != "" {
			m["failedStepName"] = run.FailedStepName
		}
		if !run.StartTime.IsZero() && !run.FinishTime.IsZero() {
			m["duration"] = run.FinishTime.Sub(run.StartTime).Milliseconds()
		}
		m["tasks"] = run.Steps
	} else {
		if run.FailedStepName != "" {
			m["failedStep"] = map[string]any{"name": run.FailedStepName, "displayName": run.FailedStepDisplayName, "message": run.FailedStepMessage}
		} else if s.opts.Raw {
			m["failedStep"] = nil
		}
		m["stepsCount"] = run.Steps
	}
	if s.opts.Raw {
		// What a page sent unvalidated carries (docs/activepieces-api.md §6, serialization quirk).
		m["parentRunId"] = nil
		m["triggeredBy"] = nil
		m["stepNameToTest"] = nil
		m["pauseMetadata"] = nil
		m["flowVersion"] = map[string]any{"displayName": run.FlowName, "id": run.FlowVersionID, "flowId": run.FlowID, "state": "LOCKED"}
		m["flowVersion_displayName"] = run.FlowName
		m["displayName"] = run.FlowName
	}
	if full {
		m["steps"] = map[string]any{}
	}
	return m
}

func emptyIfNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, id string) {
	if !apIDPattern.MatchString(id) {
		validationError(w, "params/id Invalid string: must match pattern /^[0-9a-zA-Z]{21}$/")
		return
	}
	p, ok := s.authorize(w, r, "")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	run, ok := s.runs[id]
	if !ok || !s.visibleLocked(run) {
		businessError(w, 404, "ENTITY_NOT_FOUND", map[string]any{"entityId": id, "entityType": "flow_run"})
		return
	}
	if !p.canRead(run.ProjectID) {
		noRole(w, p, run.ProjectID)
		return
	}
	writeJSON(w, 200, s.runJSON(run, true))
}

func (s *Server) countByStatus(w http.ResponseWriter, r *http.Request, q map[string][]string) {
	v := &validator{q: q}
	projectID := v.apID("projectId", true)
	if _, ok := s.admit(w, r, v, projectID); !ok {
		return
	}
	after, _ := v.time("createdAfter")
	before, _ := v.time("createdBefore")
	s.mu.Lock()
	counts := map[string]int{}
	for _, run := range s.byProject[projectID] {
		if !s.visibleLocked(run) || run.Archived || run.Environment != "PRODUCTION" ||
			!after.IsZero() && run.Created.Before(after) || !before.IsZero() && run.Created.After(before) {
			continue
		}
		counts[string(run.Status)]++
	}
	s.mu.Unlock()
	data := []map[string]any{}
	for _, st := range s.statuses() {
		if counts[st] > 0 {
			data = append(data, map[string]any{"status": st, "count": counts[st]})
		}
	}
	writeJSON(w, 200, map[string]any{"data": data})
}

// writePage writes one page of items (already in the endpoint's order) with an opaque id cursor;
// the real server's composite cursors are as opaque to clients.
func writePage[T any](w http.ResponseWriter, items []T, id func(T) string, cursor string, limit int, render func(i int, item T) any) {
	start := 0
	var next, prev any
	if raw, err := base64.StdEncoding.DecodeString(cursor); err == nil && cursor != "" {
		if after, ok := strings.CutPrefix(string(raw), "next_"); ok {
			for i, it := range items {
				if id(it) == after {
					start = i + 1
					prev = base64.StdEncoding.EncodeToString([]byte("prev_" + after))
				}
			}
		}
	}
	end := len(items)
	if limit >= 0 && start+limit < end {
		end = start + limit
		next = base64.StdEncoding.EncodeToString([]byte("next_" + id(items[end-1])))
	}
	start = min(start, end)
	data := make([]any, 0, end-start)
	for i, it := range items[start:end] {
		data = append(data, render(start+i, it))
	}
	writeJSON(w, 200, map[string]any{"data": data, "next": next, "previous": prev})
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request, q map[string][]string) {
	v := &validator{q: q}
	projectID := v.apID("projectId", true)
	statuses := v.enum("status", []string{"ENABLED", "DISABLED"})
	limit := v.limit(10)
	if _, ok := s.admit(w, r, v, projectID); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var flows []*flow
	for _, f := range s.flows {
		if f.projectID == projectID && (len(statuses) == 0 || contains(statuses, f.status)) {
			flows = append(flows, f)
		}
	}
	sort.Slice(flows, func(i, j int) bool { // status DESC, updated DESC
		a, b := flows[i], flows[j]
		if a.status != b.status {
			return a.status > b.status
		}
		if !a.updated.Equal(b.updated) {
			return a.updated.After(b.updated)
		}
		return a.id > b.id
	})
	writePage(w, flows, func(f *flow) string { return f.id }, v.str("cursor"), limit, func(_ int, f *flow) any {
		var folderID any
		if f.folderID != "" {
			folderID = f.folderID
		}
		return map[string]any{
			"id": f.id, "created": apiclient.FormatTime(f.created), "updated": apiclient.FormatTime(f.updated),
			"projectId": f.projectID, "externalId": f.id, "ownerId": nil, "folderId": folderID, "status": f.status,
			"publishedVersionId": f.versionID, "metadata": nil, "operationStatus": "NONE", "timeSavedPerRun": nil,
			"templateId": nil, "createdBy": nil,
			"version": map[string]any{
				"id": f.versionID, "created": apiclient.FormatTime(f.created), "updated": apiclient.FormatTime(f.updated),
				"flowId": f.id, "displayName": f.name, "trigger": map[string]any{"name": "trigger", "type": "PIECE_TRIGGER", "valid": true},
				"updatedBy": nil, "valid": true, "schemaVersion": "22", "agentIds": []string{}, "state": "LOCKED",
				"connectionIds": []string{}, "backupFiles": nil, "notes": []string{},
			},
		}
	})
}

func (s *Server) listFolders(w http.ResponseWriter, r *http.Request, q map[string][]string) {
	v := &validator{q: q}
	projectID := v.apID("projectId", true)
	limit := v.limit(10)
	if _, ok := s.admit(w, r, v, projectID); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var folders []*folder
	for _, f := range s.folders {
		if f.projectID == projectID {
			folders = append(folders, f)
		}
	}
	sort.Slice(folders, func(i, j int) bool { // created ASC
		if !folders[i].created.Equal(folders[j].created) {
			return folders[i].created.Before(folders[j].created)
		}
		return folders[i].id < folders[j].id
	})
	writePage(w, folders, func(f *folder) string { return f.id }, v.str("cursor"), limit, func(i int, f *folder) any {
		return map[string]any{"id": f.id, "created": apiclient.FormatTime(f.created), "updated": apiclient.FormatTime(f.created),
			"projectId": f.projectID, "displayName": f.name, "displayOrder": i, "externalId": nil, "numberOfFlows": 0, "numberOfTables": 0}
	})
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, q map[string][]string) {
	v := &validator{q: q}
	limit := v.limit(50)
	p, ok := s.admit(w, r, v, "")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writePage(w, s.readableProjectsLocked(p), func(p *project) string { return p.ID }, v.str("cursor"), limit, projectJSON)
}

// listUserProjects answers GET /v1/users/projects (mid-2025 servers): a user's projects, all in
// one page.
func (s *Server) listUserProjects(w http.ResponseWriter, r *http.Request) {
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if p.userID == "" {
		notAllowed(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writePage(w, s.readableProjectsLocked(p), func(p *project) string { return p.ID }, "", -1, projectJSON)
}

// sortedProjectsLocked lists the projects in /v1/projects order: type ASC, displayName ASC, id ASC.
func (s *Server) sortedProjectsLocked() []*project {
	projects := make([]*project, 0, len(s.projects))
	for _, p := range s.projects {
		projects = append(projects, p)
	}
	sort.Slice(projects, func(i, j int) bool {
		a, b := projects[i], projects[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.DisplayName != b.DisplayName {
			return a.DisplayName < b.DisplayName
		}
		return a.ID < b.ID
	})
	return projects
}

// readableProjectsLocked lists the projects p may read: all of them for the API key and
// platform admins, its own for a member.
func (s *Server) readableProjectsLocked(p *principal) []*project {
	all := s.sortedProjectsLocked()
	out := all[:0]
	for _, pr := range all {
		if p.canRead(pr.ID) {
			out = append(out, pr)
		}
	}
	return out
}

func projectJSON(_ int, p *project) any {
	return map[string]any{"id": p.ID, "created": apiclient.FormatTime(p.created), "updated": apiclient.FormatTime(p.created),
		"ownerId": "0wnerSimu1ator0000001", "displayName": p.DisplayName, "platformId": p.PlatformID,
		"maxConcurrentJobs": nil, "type": p.Type, "icon": map[string]string{"color": "#8f2cb0"}, "externalId": nil,
		"releasesEnabled": false, "metadata": nil, "poolId": nil, "plan": map[string]any{},
		"analytics": map[string]any{"totalUsers": 1, "activeUsers": 1, "totalFlows": 0, "activeFlows": 0}}
}

// runPageTemplate stands in for the Activepieces UI's run page (/projects/<id>/runs/<id>), so
// that the demo's run links lead somewhere.
var runPageTemplate = htmltemplate.Must(htmltemplate.New("run").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Run {{ .ID }} · simulator</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<p><em>The activepieces_exporter simulator stands in for the Activepieces UI: in a real
installation this link opens the run in the builder, with its steps and logs.</em></p>
<h1>{{ .FlowName }}</h1>
<dl>
<dt>Run</dt><dd>{{ .ID }}</dd>
<dt>Status</dt><dd>{{ .Status }}</dd>
{{ with .FailedStepDisplayName }}<dt>Failed step</dt><dd>{{ . }} ({{ $.FailedStepName }})</dd>{{ end }}
{{ with .FailedStepMessage }}<dt>Error</dt><dd>{{ . }}</dd>{{ end }}
<dt>Created</dt><dd>{{ .Created.Format "2006-01-02 15:04:05 MST" }}</dd>
{{ if not .FinishTime.IsZero }}<dt>Finished</dt><dd>{{ .FinishTime.Format "2006-01-02 15:04:05 MST" }}</dd>{{ end }}
</dl></body></html>
`))

func (s *Server) runPage(w http.ResponseWriter, projectID, runID string) {
	s.mu.Lock()
	r, ok := s.runs[runID]
	var run Run
	if ok {
		run = *r
	}
	s.mu.Unlock()
	if !ok || run.ProjectID != projectID {
		http.NotFound(w, nil)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = runPageTemplate.Execute(w, run)
}
