package simulator

import (
	"net/http"
	"sort"
	"strings"
)

// flags is the body of GET /v1/flags (docs/activepieces-api.md §11): the facts an exporter reads
// and a few it does not, less Options.OmitFlags, plus Options.Flags.
func (s *Server) flags() map[string]any {
	s.mu.Lock()
	users := len(s.auth.users)
	version, latest, timeout := s.opts.Version, s.opts.LatestVersion, s.opts.FlowRunTimeSeconds
	s.mu.Unlock()
	edition := map[string]string{EditionEnterprise: "ee", EditionCloud: "cloud", EditionCommunity: "ce"}[s.opts.Edition]
	f := map[string]any{
		"EDITION":                       edition,
		"CURRENT_VERSION":               version,
		"LATEST_VERSION":                latest,
		"FLOW_RUN_TIME_SECONDS":         timeout,
		"PAUSED_FLOW_TIMEOUT_DAYS":      30,
		"EXECUTION_DATA_RETENTION_DAYS": 30,
		"FLOW_RUN_MEMORY_LIMIT_KB":      1048576,
		"FLOW_RUN_LOG_SIZE_LIMIT_MB":    25,
		"ENVIRONMENT":                   "prod",
		"IS_CLOUD_PLATFORM":             s.opts.Edition == EditionCloud,
		"SHOW_POWERED_BY_IN_FORM":       true,
		"USER_CREATED":                  users > 0,
		"PUBLIC_URL":                    "http://localhost:8080/",
		"WEBHOOK_URL_PREFIX":            "http://localhost:8080/api/v1/webhooks",
		"SUPPORTED_APP_WEBHOOKS":        []string{},
		"THEME":                         map[string]any{"websiteName": "Activepieces", "colors": map[string]any{"primary": map[string]string{"default": "#6e41e2"}}},
	}
	for _, k := range s.opts.OmitFlags {
		delete(f, k)
	}
	for k, v := range s.opts.Flags {
		f[k] = v
	}
	return f
}

// Upgrade is what an operator's upgrade (a new version) or a changed AP_FLOW_TIMEOUT_SECONDS does
// to /v1/flags: CURRENT_VERSION (and LATEST_VERSION, when it was behind) and
// FLOW_RUN_TIME_SECONDS change; the runs stay.
func (s *Server) Upgrade(version string, flowRunTimeSeconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.LatestVersion == s.opts.Version {
		s.opts.LatestVersion = version
	}
	s.opts.Version = version
	s.opts.FlowRunTimeSeconds = flowRunTimeSeconds
}

// hasQuerySchema reports whether a GET route validates its querystring (and so is subject to the
// repeated-key cap).
func hasQuerySchema(path string) bool {
	switch path {
	case "/v1/flow-runs", "/v1/flow-runs/count-by-status", "/v1/flows", "/v1/folders", "/v1/projects", "/v1/users/projects":
		return true
	}
	return false
}

// repeatedTooOften answers the 400 of a server whose qs parser has the default arrayLimit
// (Options.RepeatLimit) when a query key has more values than that: qs then yields an object,
// which the schema rejects (docs/activepieces-api.md §1). Validation runs before auth.
func (s *Server) repeatedTooOften(w http.ResponseWriter, r *http.Request, path string) bool {
	if s.opts.RepeatLimit <= 0 || !hasQuerySchema(path) {
		return false
	}
	counts := map[string]int{}
	for k, v := range r.URL.Query() {
		counts[strings.TrimSuffix(k, "[]")] += len(v)
	}
	var over []string
	for k, n := range counts {
		if n > s.opts.RepeatLimit {
			over = append(over, k)
		}
	}
	if len(over) == 0 {
		return false
	}
	sort.Strings(over)
	validationError(w, "querystring/"+over[0]+"/0 Invalid input: expected string, received object")
	return true
}
