// Package apiclient is a typed client for the parts of the Activepieces REST API that a run-health
// exporter needs. It knows nothing of Prometheus: callers observe requests through RequestObserver.
package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// RunStatus is a flow run status as sent by the server. Servers add statuses over time, so any
// string is kept as is; use IsTerminal and friends to classify.
type RunStatus string

// Statuses known at the time of writing (docs/activepieces-api.md §4).
const (
	StatusQueued              RunStatus = "QUEUED"
	StatusRunning             RunStatus = "RUNNING"
	StatusPaused              RunStatus = "PAUSED"
	StatusSucceeded           RunStatus = "SUCCEEDED"
	StatusFailed              RunStatus = "FAILED"
	StatusTimeout             RunStatus = "TIMEOUT"
	StatusInternalError       RunStatus = "INTERNAL_ERROR"
	StatusQuotaExceeded       RunStatus = "QUOTA_EXCEEDED"
	StatusMemoryLimitExceeded RunStatus = "MEMORY_LIMIT_EXCEEDED"
	StatusLogSizeExceeded     RunStatus = "LOG_SIZE_EXCEEDED"
	StatusCanceled            RunStatus = "CANCELED"
)

// TerminalStatuses are the eight terminal statuses of current servers, in a fixed order.
var TerminalStatuses = []RunStatus{
	StatusSucceeded, StatusFailed, StatusTimeout, StatusInternalError,
	StatusQuotaExceeded, StatusMemoryLimitExceeded, StatusLogSizeExceeded, StatusCanceled,
}

// RetryableStatuses are the statuses the runs table offers "Retry from failed step" for
// (docs/activepieces-api.md §4): a run that ended in one of them may be re-opened on the same row.
var RetryableStatuses = []RunStatus{
	StatusFailed, StatusInternalError, StatusQuotaExceeded, StatusTimeout, StatusMemoryLimitExceeded, StatusLogSizeExceeded,
}

// IsRetryable reports whether the UI offers to retry a run in this status from the failed step.
func (s RunStatus) IsRetryable() bool { return s.IsFailure() || s == StatusLogSizeExceeded }

// MaxFlowRunIDs is how many ids one flowRunIds filter carries at most here: the server's query
// parser takes up to 1,000 array items, but a request line of 1,000 ids would pass the 16 KiB
// header limit of Node's HTTP server.
const MaxFlowRunIDs = 100

// InFlightStatuses are the non-terminal statuses, in a fixed order (an array: its length is a
// constant that counts of runs by in-flight status are sized by).
var InFlightStatuses = [...]RunStatus{StatusQueued, StatusRunning, StatusPaused}

// IsInFlight reports whether a run in this status may still change.
func (s RunStatus) IsInFlight() bool {
	return s == StatusQueued || s == StatusRunning || s == StatusPaused
}

// IsTerminal reports whether a run in this status has finished. Unknown statuses (old STOPPED,
// future ones) are terminal: only the three in-flight statuses are not.
func (s RunStatus) IsTerminal() bool { return s != "" && !s.IsInFlight() }

// IsFailure reports whether the status is in the server's FAILED_STATES set, the one its own
// alerts use: FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT, MEMORY_LIMIT_EXCEEDED.
func (s RunStatus) IsFailure() bool {
	switch s {
	case StatusFailed, StatusInternalError, StatusQuotaExceeded, StatusTimeout, StatusMemoryLimitExceeded:
		return true
	}
	return false
}

// Time is an API timestamp. JSON null, an absent field and "" all decode to the zero Time; a
// string that is not RFC 3339 is an error.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", truncate(s, 40), err)
	}
	t.Time = v.UTC()
	return nil
}

// MarshalJSON implements json.Marshaler in the server's format (milliseconds, UTC, Z).
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + FormatTime(t.Time) + `"`), nil
}

// FormatTime formats a time as the server does (Date.toISOString()).
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// FlowVersionRef is the part of the flow version joined into a run.
type FlowVersionRef struct {
	DisplayName string `json:"displayName"`
}

// FailedStep names the step a run failed in (new servers).
type FailedStep struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	Message     string `json:"message"`
}

// FlowRun is a run as listed by GET /v1/flow-runs. It accepts both the old schema (duration and
// tasks in milliseconds/counts, failedStepName) and the new one (failedStep, stepsCount), explicit
// nulls for every optional field and unknown keys.
type FlowRun struct {
	ID             string          `json:"id"`
	Created        Time            `json:"created"`
	Updated        Time            `json:"updated"`
	ProjectID      string          `json:"projectId"`
	FlowID         string          `json:"flowId"`
	FlowVersionID  string          `json:"flowVersionId"`
	FlowVersion    *FlowVersionRef `json:"flowVersion"`
	Status         RunStatus       `json:"status"`
	StartTime      Time            `json:"startTime"`
	FinishTime     Time            `json:"finishTime"`
	Environment    string          `json:"environment"`
	FailedStep     *FailedStep     `json:"failedStep"`
	FailedStepName string          `json:"failedStepName"`
	StepsCount     *float64        `json:"stepsCount"`
	ParentRunID    string          `json:"parentRunId"`
	Tags           []string        `json:"tags"`
	ArchivedAt     Time            `json:"archivedAt"`
	// Old servers only (removed upstream in late 2025).
	Duration *float64 `json:"duration"` // milliseconds
	Tasks    *float64 `json:"tasks"`

	// Invalid says why the run cannot be accounted for (its id, created time or status could
	// not be decoded); Dropped names optional fields that could not be decoded and were left
	// out. Set by UnmarshalJSON, never sent.
	Invalid string   `json:"-"`
	Dropped []string `json:"-"`
}

// MaxPlausibleDuration bounds run durations: longer values (clock jumps, corrupt rows) are treated
// as unknown rather than observed. Activepieces pauses runs for at most 30 days by default.
const MaxPlausibleDuration = 366 * 24 * time.Hour

// DurationSeconds is the run's duration: `duration` when the server sends it, else
// finishTime − startTime. ok is false when it cannot be known (missing times, clock skew that makes
// it negative, or an implausible value).
func (r *FlowRun) DurationSeconds() (seconds float64, ok bool) {
	var d time.Duration
	switch {
	case r.Duration != nil:
		d = time.Duration(*r.Duration * float64(time.Millisecond))
	case !r.StartTime.IsZero() && !r.FinishTime.IsZero():
		d = r.FinishTime.Sub(r.StartTime.Time)
	default:
		return 0, false
	}
	if d < 0 || d > MaxPlausibleDuration {
		return 0, false
	}
	return d.Seconds(), true
}

// TaskCount is the run's task count: `tasks` when sent (old servers), else `stepsCount`.
// Negative or implausible counts (over MaxPlausibleTasks) are unknown.
func (r *FlowRun) TaskCount() (n float64, ok bool) {
	plausible := func(v *float64) bool { return v != nil && *v >= 0 && *v <= MaxPlausibleTasks }
	switch {
	case plausible(r.Tasks):
		return *r.Tasks, true
	case plausible(r.StepsCount):
		return *r.StepsCount, true
	}
	return 0, false
}

// FailedStepLabel is the failed step's name in either schema.
func (r *FlowRun) FailedStepLabel() string {
	if r.FailedStep != nil && r.FailedStep.Name != "" {
		return r.FailedStep.Name
	}
	return r.FailedStepName
}

// Page is a SeekPage of the API: one page of a cursor-paginated listing.
type Page[T any] struct {
	Data     []T     `json:"data"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
}

// NextCursor is the cursor of the next page, "" when this is the last one.
func (p *Page[T]) NextCursor() string {
	if p.Next == nil {
		return ""
	}
	return *p.Next
}

// FlowVersion is the version of a flow listed with it; its DisplayName is the flow's name.
type FlowVersion struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`
}

// Flow is a PopulatedFlow of GET /v1/flows.
type Flow struct {
	ID                 string       `json:"id"`
	Created            Time         `json:"created"`
	Updated            Time         `json:"updated"`
	ProjectID          string       `json:"projectId"`
	FolderID           string       `json:"folderId"`
	Status             string       `json:"status"`
	PublishedVersionID string       `json:"publishedVersionId"`
	OperationStatus    string       `json:"operationStatus"`
	Version            *FlowVersion `json:"version"`
}

// DisplayName is the flow's name (its version's display name), or its id when none is sent.
func (f *Flow) DisplayName() string {
	if f.Version != nil && f.Version.DisplayName != "" {
		return f.Version.DisplayName
	}
	return f.ID
}

// Folder is an item of GET /v1/folders.
type Folder struct {
	ID          string `json:"id"`
	ProjectID   string `json:"projectId"`
	DisplayName string `json:"displayName"`
}

// Project is an item of GET /v1/projects.
type Project struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	PlatformID  string `json:"platformId"`
	Type        string `json:"type"`
}

// StatusCount is one row of GET /v1/flow-runs/count-by-status.
type StatusCount struct {
	Status RunStatus `json:"status"`
	Count  int64     `json:"count"`
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
