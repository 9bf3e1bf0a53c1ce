// Package simulator is an in-memory simulator of the Activepieces REST API, faithful to docs/activepieces-api.md: the
// same routes under /api, query validation (400 bodies), auth (401/403), created DESC, id DESC
// order, opaque cursors, PRODUCTION-only listing and the error bodies of §6. It has a "raw" mode
// (explicit nulls and extra keys, as real servers usually send) and an "old server" mode
// (duration/tasks/failedStepName and second-granularity cursors). Tests drive it through its
// methods; the demo drives it with a Generator.
package simulator

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// Options shape the simulated server.
type Options struct {
	// APIKey is the platform key the server accepts (default DefaultAPIKey).
	APIKey string
	// Raw sends list items as real servers usually do: explicit nulls and extra keys.
	Raw bool
	// OldServer behaves like servers before mid-2026: runs carry duration (ms), tasks and
	// failedStepName instead of stepsCount/failedStep, and cursors are "created:<ms>" compared at
	// second granularity, so rows sharing the boundary second are skipped by plain paging.
	OldServer bool
	// IgnoreFlowRunIDs makes the server ignore the flowRunIds filter (as an old server might).
	IgnoreFlowRunIDs bool
	// NoQueued is a server from before QUEUED existed (shared <= 0.10): the status enum has
	// STOPPED and neither QUEUED nor CANCELED and LOG_SIZE_EXCEEDED, so filtering by those is a 400.
	NoQueued bool
	// Now is the server clock (default time.Now).
	Now func() time.Time
	// ClockSkew is added to Now: a server whose clock is ahead (or, negative, behind).
	ClockSkew time.Duration
	// DateSkew is added to the Date header only, not to run times: one backend or a proxy in
	// front of the server with a wrong clock.
	DateSkew time.Duration
	// Seed makes generated ids reproducible (default 1).
	Seed uint64

	// Edition is the server's edition: "" or "ee" (Enterprise, the default: platform API keys
	// work), "cloud" (like ee) or "community" (no API keys: a `Bearer sk-…` token is looked up and
	// not found, only user JWTs work; docs/activepieces-api.md §10).
	Edition string
	// ProjectsRoute is how projects are listed: "" or "projects" (newer servers: GET
	// /v1/projects, a SeekPage) or "users" (mid-2025 servers: GET /v1/users/projects, all in one
	// page, for USER principals; on community /v1/projects is then an unknown route, on ee and
	// cloud it stays for API keys).
	ProjectsRoute string
	// TokenLifetime is how long a user's session token is valid (default 7 days), on the
	// simulator's clock (Now + ClockSkew).
	TokenLifetime time.Duration
	// SignInRateLimit is how many auth requests (sign-in, switch-platform) one client IP may make
	// a minute (default 50; negative: no limit), on the simulator's clock.
	SignInRateLimit int
	// RepeatLimit, when positive, is the most values one query key may have (20 on servers that
	// parse with qs's defaults): more are a 400 (docs/activepieces-api.md §1). 0: no limit.
	RepeatLimit int

	// Version is CURRENT_VERSION in /v1/flags (default DefaultVersion); LatestVersion is
	// LATEST_VERSION (default Version).
	Version, LatestVersion string
	// FlowRunTimeSeconds is FLOW_RUN_TIME_SECONDS in /v1/flags (default 600).
	FlowRunTimeSeconds int
	// NoFlags makes /v1/flags an unknown route (a server too old to have it).
	NoFlags bool
	// OmitFlags are flags /v1/flags leaves out; Flags adds flags or replaces the simulator's.
	OmitFlags []string
	Flags     map[string]any
}

// Editions, as Options.Edition takes them.
const (
	EditionEnterprise = "ee"
	EditionCloud      = "cloud"
	EditionCommunity  = "community"
)

// DefaultVersion is the server version /v1/flags reports by default.
const DefaultVersion = "0.85.4"

// PlatformID is the id of the simulator's one platform.
const PlatformID = "p1atformSimu1ator0001"

// DefaultAPIKey is a syntactically valid platform key for tests and the demo.
const DefaultAPIKey = "sk-simulator0000000000000000000000000000000000000000000000000000"

// Run is the simulator's record of a flow run.
type Run struct {
	ID, ProjectID, FlowID, FlowVersionID string
	FlowName                             string
	Status                               apiclient.RunStatus
	Created, Updated                     time.Time
	StartTime, FinishTime                time.Time
	Environment                          string
	Steps                                int
	FailedStepName, FailedStepMessage    string
	FailedStepDisplayName                string
	// NoFailedStep: a failed run whose server did not say which step failed.
	NoFailedStep bool
	Tags         []string
	Archived     bool
	// Hidden runs exist but are not yet visible to listings (a transaction not yet committed).
	Hidden bool
	// VisibleAt, when set, is when the row reaches the table listings read: production runs go
	// through a queue first (docs/activepieces-api.md §4, "Rows can become visible late").
	VisibleAt time.Time
	// Executions are the terminal statuses the run reached, in order: more than one when it was
	// retried on the same row.
	Executions []apiclient.RunStatus
}

type project struct {
	apiclient.Project
	created time.Time
}

type flow struct {
	id, projectID, folderID, status, name, versionID string
	created, updated                                 time.Time
}

type folder struct {
	id, projectID, name string
	created             time.Time
}

// Server is the simulator. Its zero value is not usable; call New.
type Server struct {
	mu       sync.Mutex
	opts     Options
	rng      *rand.Rand
	projects map[string]*project
	flows    map[string]*flow
	folders  map[string]*folder
	runs     map[string]*Run
	// byProject keeps each project's runs sorted created DESC, id DESC.
	byProject map[string][]*Run
	faults    []*Fault
	requests  []Request
	maxLog    int
	auth      authState
}

// Request is one request the simulator received, for tests that assert what was asked.
type Request struct {
	Method, Path string
	Query        url.Values
	Status       int
	At           time.Time // when it was answered, by the server's clock
}

// New returns an empty simulator.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	opts = withAuthDefaults(opts)
	return &Server{
		auth:      newAuthState(),
		opts:      opts,
		rng:       rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		projects:  map[string]*project{},
		flows:     map[string]*flow{},
		folders:   map[string]*folder{},
		runs:      map[string]*Run{},
		byProject: map[string][]*Run{},
		maxLog:    100000,
	}
}

const idChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func (s *Server) newID() string {
	b := make([]byte, 21)
	for i := range b {
		b[i] = idChars[s.rng.IntN(len(idChars))]
	}
	return string(b)
}

func (s *Server) now() time.Time {
	return s.opts.Now().Add(s.opts.ClockSkew).UTC().Truncate(time.Millisecond)
}

// SetAPIKey replaces the accepted key (a key rotation).
func (s *Server) SetAPIKey(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.APIKey = k
}

// AddProject creates a project and returns its id.
func (s *Server) AddProject(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.projects[id] = &project{Project: apiclient.Project{ID: id, DisplayName: name, PlatformID: PlatformID, Type: "TEAM"}, created: s.now()}
	return id
}

// DeleteProject removes a project with its flows, folders and runs.
func (s *Server) DeleteProject(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.projects, id)
	for fid, f := range s.flows {
		if f.projectID == id {
			delete(s.flows, fid)
		}
	}
	for fid, f := range s.folders {
		if f.projectID == id {
			delete(s.folders, fid)
		}
	}
	for _, r := range s.byProject[id] {
		delete(s.runs, r.ID)
	}
	delete(s.byProject, id)
}

// AddFolder creates a folder in a project and returns its id.
func (s *Server) AddFolder(projectID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.folders[id] = &folder{id: id, projectID: projectID, name: name, created: s.now()}
	return id
}

// AddFlow creates an ENABLED flow in a project (folderID may be "") and returns its id.
func (s *Server) AddFlow(projectID, folderID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[projectID]; !ok {
		panic(fmt.Sprintf("simulator: AddFlow: no project %q", projectID))
	}
	id := s.newID()
	now := s.now()
	s.flows[id] = &flow{id: id, projectID: projectID, folderID: folderID, status: "ENABLED", name: name,
		versionID: s.newID(), created: now, updated: now}
	return id
}

// RenameFlow changes a flow's display name.
func (s *Server) RenameFlow(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.mustFlow(id)
	f.name, f.updated = name, s.now()
}

// SetFlowStatus sets ENABLED or DISABLED.
func (s *Server) SetFlowStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.mustFlow(id)
	f.status, f.updated = status, s.now()
}

// DeleteFlow removes a flow (its runs stay, as on the real server until retention purges them).
func (s *Server) DeleteFlow(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flows, id)
}

func (s *Server) mustFlow(id string) *flow {
	f, ok := s.flows[id]
	if !ok {
		panic(fmt.Sprintf("simulator: no flow %q", id))
	}
	return f
}

// RunSpec describes a run to add. Zero Created means now; zero Environment means PRODUCTION.
type RunSpec struct {
	FlowID      string
	Status      apiclient.RunStatus
	Created     time.Time
	Duration    time.Duration // for terminal runs: finishTime − startTime (default 1.5s)
	QueueWait   time.Duration // startTime − created (default 100ms; QUEUED runs have no start)
	Steps       int
	Environment string
	Tags        []string
	Hidden      bool
	NoStartTime bool // a terminal run without startTime (duration unknown)
	// FailedStep and FailedStepDisplay name the step a failed run failed in (default step_2,
	// "Create Contact"); NoFailedStep leaves it unsaid, as for a run that timed out as a whole.
	FailedStep, FailedStepDisplay string
	NoFailedStep                  bool
	// VisibleAfter delays the row's visibility past its created time (a lagging runs queue).
	VisibleAfter time.Duration
}

// AddRun adds a run and returns its id.
func (s *Server) AddRun(spec RunSpec) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRunLocked(spec)
}

func (s *Server) addRunLocked(spec RunSpec) string {
	f := s.mustFlow(spec.FlowID)
	if spec.Created.IsZero() {
		spec.Created = s.now()
	}
	if spec.Environment == "" {
		spec.Environment = "PRODUCTION"
	}
	if spec.Status == "" {
		spec.Status = apiclient.StatusSucceeded
	}
	if spec.QueueWait == 0 {
		spec.QueueWait = 100 * time.Millisecond
	}
	if spec.Duration == 0 {
		spec.Duration = 1500 * time.Millisecond
	}
	created := spec.Created.UTC().Truncate(time.Millisecond)
	r := &Run{
		ID: s.newID(), ProjectID: f.projectID, FlowID: f.id, FlowVersionID: f.versionID, FlowName: f.name,
		Status: spec.Status, Created: created, Updated: created, Environment: spec.Environment,
		Steps: spec.Steps, Tags: spec.Tags, Hidden: spec.Hidden,
		FailedStepName: spec.FailedStep, FailedStepDisplayName: spec.FailedStepDisplay, NoFailedStep: spec.NoFailedStep,
	}
	if spec.VisibleAfter > 0 {
		r.VisibleAt = created.Add(spec.VisibleAfter)
	}
	if spec.Status != apiclient.StatusQueued && !spec.NoStartTime {
		r.StartTime = created.Add(spec.QueueWait)
	}
	if spec.Status.IsTerminal() {
		start := created.Add(spec.QueueWait)
		r.FinishTime = start.Add(spec.Duration)
		r.Updated = r.FinishTime
		r.Executions = append(r.Executions, r.Status)
		s.setFailure(r)
	}
	s.runs[r.ID] = r
	s.insertLocked(r)
	return r.ID
}

func (s *Server) setFailure(r *Run) {
	if !r.Status.IsFailure() || r.NoFailedStep {
		return
	}
	if r.FailedStepName == "" {
		r.FailedStepName, r.FailedStepDisplayName = "step_2", "Create Contact"
	}
	if r.FailedStepMessage == "" {
		r.FailedStepMessage = "Request failed with status code 401: invalid_grant"
	}
}

// SetFailedStep sets the step a run failed (or fails next) in.
func (s *Server) SetFailedStep(id, name, displayName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRun(id)
	r.FailedStepName, r.FailedStepDisplayName, r.NoFailedStep = name, displayName, name == ""
}

func runLess(a, b *Run) bool { // created DESC, id DESC
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.ID > b.ID
}

func (s *Server) insertLocked(r *Run) {
	list := s.byProject[r.ProjectID]
	i := sort.Search(len(list), func(i int) bool { return !runLess(list[i], r) })
	list = append(list, nil)
	copy(list[i+1:], list[i:])
	list[i] = r
	s.byProject[r.ProjectID] = list
}

// SetRunStatus moves a run to a new status at the server's now: RUNNING sets startTime, a
// terminal status sets finishTime.
func (s *Server) SetRunStatus(id string, status apiclient.RunStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setRunStatusLocked(s.mustRun(id), status)
}

func (s *Server) setRunStatusLocked(r *Run, status apiclient.RunStatus) {
	now := s.now()
	if r.StartTime.IsZero() && status != apiclient.StatusQueued {
		r.StartTime = now
	}
	if status.IsTerminal() {
		r.FinishTime = now
		if r.FinishTime.Before(r.StartTime) {
			r.FinishTime = r.StartTime
		}
		if !r.Status.IsTerminal() {
			r.Executions = append(r.Executions, status)
		}
	}
	r.Status, r.Updated = status, now
	s.setFailure(r)
}

// UploadStaleStatus changes a run's status and nothing else (not its times, not updated's
// meaning): a late status upload from a worker can move a finished run back to RUNNING and then
// to its terminal status again with the same startTime and finishTime (docs/activepieces-api.md
// §4, "A finished run can finish again").
func (s *Server) UploadStaleStatus(id string, status apiclient.RunStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRun(id)
	r.Status, r.Updated = status, s.now()
}

// RetryMode is how a finished run is re-opened on the same row (docs/activepieces-api.md §4, "A
// finished run can finish again").
type RetryMode int

const (
	// RetryFromFailedStep is the UI's "Retry from failed step" on servers since 2026-04-22: the
	// row goes back to QUEUED with startTime now and finishTime null. On an OldServer simulator it
	// behaves like RetryKeepTimes.
	RetryFromFailedStep RetryMode = iota
	// RetryKeepTimes is the same retry on older servers: QUEUED, with the old startTime and
	// finishTime kept until the retry finishes and finishTime is set anew.
	RetryKeepTimes
	// RetryAutomatic is the job queue's retry after INTERNAL_ERROR (or a worker that lost its
	// lease): the row goes straight back to RUNNING, times kept until the new finish.
	RetryAutomatic
)

// RetryRun re-opens a run on the same row (same id, same created). Finish it again with
// SetRunStatus. "Retry on latest version" is a new row: use AddRun.
func (s *Server) RetryRun(id string, mode RetryMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRun(id)
	now := s.now()
	if mode == RetryFromFailedStep && s.opts.OldServer {
		mode = RetryKeepTimes
	}
	switch mode {
	case RetryFromFailedStep:
		r.Status, r.StartTime, r.FinishTime = apiclient.StatusQueued, now, time.Time{}
	case RetryKeepTimes:
		r.Status = apiclient.StatusQueued
	case RetryAutomatic:
		r.Status = apiclient.StatusRunning
	}
	r.Updated = now // failedStep is kept until overwritten
}

// SetRunSteps sets a run's executed step count.
func (s *Server) SetRunSteps(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRun(id).Steps = n
}

// Reveal makes a hidden run visible (a late commit).
func (s *Server) Reveal(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRun(id)
	r.Hidden, r.VisibleAt = false, time.Time{}
}

// visibleLocked reports whether listings and reads see the run yet.
func (s *Server) visibleLocked(r *Run) bool {
	return !r.Hidden && (r.VisibleAt.IsZero() || !s.now().Before(r.VisibleAt))
}

// ArchiveRun soft-deletes a run: listings hide it unless includeArchived=true.
func (s *Server) ArchiveRun(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRun(id).Archived = true
}

func (s *Server) mustRun(id string) *Run {
	r, ok := s.runs[id]
	if !ok {
		panic(fmt.Sprintf("simulator: no run %q", id))
	}
	return r
}

// Run returns a copy of a run.
func (s *Server) Run(id string) Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.mustRun(id)
}

// Key identifies a counter of the simulator's own record.
type Key struct {
	FlowID string
	Status apiclient.RunStatus
}

// Finished counts the visible PRODUCTION runs in a terminal status created at or after since, by
// flow and status: the record to compare an exporter's totals with.
func (s *Server) Finished(since time.Time) map[Key]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[Key]int{}
	for _, r := range s.runs {
		if !s.visibleLocked(r) || r.Environment != "PRODUCTION" || !r.Status.IsTerminal() || r.Created.Before(since) {
			continue
		}
		out[Key{r.FlowID, r.Status}]++
	}
	return out
}

// Executions counts the finishes of visible PRODUCTION runs created at or after since, by flow
// and status: a run retried on the same row counts once per finish. The record to compare an
// exporter's runs_total with when runs are retried.
func (s *Server) Executions(since time.Time) map[Key]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[Key]int{}
	for _, r := range s.runs {
		if !s.visibleLocked(r) || r.Environment != "PRODUCTION" || r.Created.Before(since) {
			continue
		}
		for _, st := range r.Executions {
			out[Key{r.FlowID, st}]++
		}
	}
	return out
}

// InFlight lists the ids of visible PRODUCTION runs not yet finished.
func (s *Server) InFlight() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range s.runs {
		if s.visibleLocked(r) && r.Environment == "PRODUCTION" && r.Status.IsInFlight() {
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// CountRequests counts received requests whose path is path (e.g. "/api/v1/flow-runs").
func (s *Server) CountRequests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == path {
			n++
		}
	}
	return n
}
