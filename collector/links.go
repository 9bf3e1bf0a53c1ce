package collector

import "net/url"

// Links into the Activepieces web app (API.md §9), all built here: "" when Config.UIURL is not
// known. Always with the project in the path (without it the app redirects to the signed-in
// user's current project).

// projectLink is the project's page below it: "runs", "flows/<id>", "runs/<id>".
func (e *env) projectLink(projectID string, below ...string) string {
	if e.cfg.UIURL == "" {
		return ""
	}
	s := e.cfg.UIURL + "/projects/" + url.PathEscape(projectID)
	for _, b := range below {
		s += "/" + url.PathEscape(b)
	}
	return s
}

// runsURL is the project's runs tab.
func (e *env) runsURL(projectID string) string { return e.projectLink(projectID, "runs") }

// flowURL is the flow's builder page.
func (e *env) flowURL(projectID, flowID string) string {
	return e.projectLink(projectID, "flows", flowID)
}

// runURL is the run's page, bounded like any label value (run_url of last_failure_info).
func (e *env) runURL(projectID, runID string) string {
	return capLabel(e.projectLink(projectID, "runs", runID))
}
