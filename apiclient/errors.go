package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error kinds, for errors.Is on an *APIError or a wrapped one.
var (
	ErrAuthentication = errors.New("authentication failed") // 401
	ErrAuthorization  = errors.New("not authorized")        // 403
	ErrNotFound       = errors.New("entity not found")      // 404, any (route or entity)
	// ErrRouteNotFound is a 404 without a business error code: the server (or a proxy in front
	// of it) has no such route, e.g. GET /v1/projects on servers of mid-2025 or GET /v1/flags
	// behind a proxy. An unknown entity is a 404 with code ENTITY_NOT_FOUND and does not match.
	ErrRouteNotFound = errors.New("route not found")
	ErrValidation    = errors.New("request rejected as invalid") // 400
	ErrRateLimited   = errors.New("rate limited")                // 429
	ErrServer        = errors.New("server error")                // 5xx
	// ErrCursorLoop is returned when a listing hands back a cursor it already handed out.
	ErrCursorLoop = errors.New("pagination loop: the server returned a cursor already followed")
	// ErrResponseTooLarge is returned when a body exceeds what the request can plausibly get back
	// (Config.MaxResponseBytes, Config.MaxItemBytes).
	ErrResponseTooLarge = errors.New("response body too large")
	// ErrBadResponse is returned for a 2xx body that cannot be decoded.
	ErrBadResponse = errors.New("malformed response")
	// ErrRedirect is returned when the server redirects to another origin, or too often.
	ErrRedirect = errors.New("redirect refused")
	// ErrOutOfTime: the rate limit would not allow the request before the caller's deadline, so
	// it was not sent (the caller ran out of time; the API did nothing wrong).
	ErrOutOfTime = errors.New("no time left for the request within the rate limit")
)

// APIError is a non-2xx answer of the API, decoded from any of its error body shapes (docs/activepieces-api.md §6).
// It never carries the API key: the client redacts it from every message.
type APIError struct {
	Endpoint   string // e.g. "GET /v1/flow-runs"
	StatusCode int
	Code       string // the server's code: AUTHENTICATION, FST_ERR_VALIDATION, ENTITY_NOT_FOUND, …
	Message    string
	EntityType string        // for ENTITY_NOT_FOUND: "project", "flow_run", …
	RetryAfter time.Duration // from Retry-After, 0 when absent
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", e.Endpoint, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches the error kinds above by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAuthentication:
		return e.StatusCode == http.StatusUnauthorized
	case ErrAuthorization:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrRouteNotFound:
		return e.StatusCode == http.StatusNotFound && e.Code == ""
	case ErrValidation:
		return e.StatusCode == http.StatusBadRequest
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// Retryable reports whether the request may succeed when sent again.
func (e *APIError) Retryable() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// errorBody covers both shapes: business errors {"code","params":{"message",…}} and fastify errors
// {"statusCode","code","error","message"}.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Error   string `json:"error"`
	Params  *struct {
		Message    string `json:"message"`
		EntityType string `json:"entityType"`
		EntityID   string `json:"entityId"`
	} `json:"params"`
}

func (b *errorBody) message() string {
	switch {
	case b.Message != "":
		return b.Message
	case b.Params != nil && b.Params.Message != "":
		return b.Params.Message
	case b.Params != nil && b.Params.EntityType != "":
		return b.Params.EntityType + " " + b.Params.EntityID + " not found"
	}
	return b.Error
}

// maxRetryAfter bounds what ParseRetryAfter returns; the client caps it further (MaxRetryAfter).
const (
	maxRetryAfter     = 365 * 24 * time.Hour
	maxRetryAfterSecs = int64(maxRetryAfter / time.Second)
)

// ParseRetryAfter parses a Retry-After header value: delay-seconds or an HTTP-date (RFC 9110
// §10.2.3). ok is false for an empty, negative or unparseable value. A date in the past gives 0;
// nothing gives more than a year.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return min(time.Duration(min(secs, maxRetryAfterSecs))*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return min(d, maxRetryAfter), true
	}
	return 0, true
}

// SafeRepeatedValues is how many values of one repeated query key (flowRunIds=a&flowRunIds=b…)
// every server takes: servers whose query parser keeps qs's default arrayLimit refuse more
// (docs/activepieces-api.md §1, "Servers in the field with a limit of 20 repeated values").
const SafeRepeatedValues = 20

// ErrRepeatLimit matches a *RepeatLimitError.
var ErrRepeatLimit = errors.New("the server takes at most 20 values of a repeated query key")

// RepeatLimitError is the 400 a server whose query parser caps repeated keys at
// SafeRepeatedValues answers to a request with more values of Key than that:
// "querystring/flowRunIds/0 Invalid input: expected string, received object". Sending the values
// in batches of SafeRepeatedValues (see Batches) works on such a server. It unwraps to the
// *APIError (a 400, ErrValidation) and matches ErrRepeatLimit.
type RepeatLimitError struct {
	Key string    // the query key, e.g. "flowRunIds"
	Err *APIError // the server's answer
}

func (e *RepeatLimitError) Error() string {
	msg := "HTTP 400"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s (the server takes at most %d values of %q per request)", msg, SafeRepeatedValues, e.Key)
}

// Unwrap returns the server's answer.
func (e *RepeatLimitError) Unwrap() error { return e.Err }

// Is matches ErrRepeatLimit.
func (e *RepeatLimitError) Is(target error) bool { return target == ErrRepeatLimit }

// repeatLimitKey reports whether e is a server's repeat-limit answer, and for which key; msg is
// the server's full message. It looks for a validation issue on a query value that the parser
// turned into an object: "querystring/<key>/<n> … received object" (or "querystring/<key> …"
// when the schema checks the array itself).
func repeatLimitKey(e *APIError, msg string) (string, bool) {
	if e.StatusCode != http.StatusBadRequest || e.Code != "FST_ERR_VALIDATION" {
		return "", false
	}
	const prefix = "querystring/"
	for {
		i := strings.Index(msg, prefix)
		if i < 0 {
			return "", false
		}
		msg = msg[i+len(prefix):]
		issue := msg
		if j := strings.Index(issue, prefix); j >= 0 {
			issue = issue[:j]
		}
		key, rest, ok := strings.Cut(issue, " ")
		key, _, _ = strings.Cut(key, "/")
		if ok && key != "" && strings.Contains(rest, "received object") {
			return key, true
		}
	}
}

// Batches splits s into consecutive batches of at most n items (n < 1: SafeRepeatedValues);
// the batches share s's backing array.
func Batches[T any](s []T, n int) [][]T {
	if n < 1 {
		n = SafeRepeatedValues
	}
	out := make([][]T, 0, (len(s)+n-1)/n)
	for len(s) > n {
		out = append(out, s[:n:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
