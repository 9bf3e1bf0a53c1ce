package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Endpoint names, as passed to RequestObserver (bounded: safe as metric label values).
const (
	EndpointFlowRuns      = "flow-runs"
	EndpointFlowRun       = "flow-run"
	EndpointCountByStatus = "count-by-status"
	EndpointFlows         = "flows"
	EndpointFolders       = "folders"
	EndpointProjects      = "projects"
)

// RequestObserver is told about every HTTP attempt: the endpoint name, the status code as text
// ("200", "429", …) or "error" when no response arrived, and how long the attempt took.
type RequestObserver func(endpoint, code string, d time.Duration)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// BaseURL is the API root including /api, e.g. https://cloud.activepieces.com/api.
	BaseURL string
	// APIKey returns the key to send as a bearer token. Called for every attempt, so a rotated
	// key is picked up without a new client. Required.
	APIKey func() string
	// HTTPClient defaults to a client with no overall timeout (Timeout bounds each attempt).
	HTTPClient *http.Client
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Limiter is shared by every request of this client (nil: no limit).
	Limiter *rate.Limiter
	// Retries is how many times a retryable failure is retried (429, 502, 503, 504, network
	// errors). Negative means 0.
	Retries int
	// BackoffBase and BackoffMax shape the exponential backoff with full jitter
	// (defaults 250ms and 30s). A Retry-After header overrides it, up to MaxRetryAfter.
	BackoffBase, BackoffMax time.Duration
	// MaxRetryAfter caps a server-requested wait (default 2m).
	MaxRetryAfter time.Duration
	// MaxResponseBytes caps any response body (default 64 MiB).
	MaxResponseBytes int64
	// MaxItemBytes is how big one run, project or folder of a page can plausibly be (default
	// 64 KiB; a run is about 1 KiB, its failure message at most 700 characters); MaxFlowBytes the
	// same for a flow, which carries its whole definition (default 8 MiB). A page of limit items
	// is capped at limit × that (plus 64 KiB, and at most MaxResponseBytes), no single item may be
	// larger, and a page may hold at most 2 × limit + 10 items: a hostile or broken upstream cannot
	// make the client read or hold more than what a page of the size asked for can be.
	MaxItemBytes, MaxFlowBytes int64
	// Observer, if set, is told about every attempt.
	Observer RequestObserver
	// UserAgent defaults to "activepieces_exporter".
	UserAgent string
	// Clock is the client's time, for waits between retries and Retry-After dates (default the
	// real one); tests pass a clock that does not sleep.
	Clock Clock
}

// Defaults of Config, also the defaults of the exporter's flags.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxItemBytes = 64 << 10
	DefaultMaxFlowBytes = 8 << 20
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// After sends on the returned channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Client talks to one Activepieces server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	// serverDate is the Date header of the latest response, Unix seconds (0: none yet).
	serverDate atomic.Int64
}

// ServerDate returns the server's clock as its latest response's Date header gave it (whole
// seconds), and whether any response carried one.
func (c *Client) ServerDate() (time.Time, bool) {
	s := c.serverDate.Load()
	return time.Unix(s, 0).UTC(), s != 0
}

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == nil {
		return nil, errors.New("apiclient: no API key source")
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("apiclient: base URL %q: want http(s)://host[/path]", cfg.BaseURL)
	}
	if u.User != nil {
		return nil, errors.New("apiclient: base URL must not carry credentials")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 250 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 2 * time.Minute
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 20
	}
	if cfg.MaxItemBytes <= 0 {
		cfg.MaxItemBytes = DefaultMaxItemBytes
	}
	if cfg.MaxFlowBytes <= 0 {
		cfg.MaxFlowBytes = DefaultMaxFlowBytes
	}
	// Redirects stay on the API's origin: the key must never reach another one, and another
	// origin's answers are not the API's.
	hc := *cfg.HTTPClient
	hc.CheckRedirect = checkRedirect
	cfg.HTTPClient = &hc
	if cfg.UserAgent == "" {
		cfg.UserAgent = "activepieces_exporter"
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	return &Client{cfg: cfg, base: u}, nil
}

// BaseURL is the API root the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// decoder decodes a 2xx body read through a capReader.
type decoder func(cr *capReader) error

// bodyLimits are what one answer may be: bytes in all, bytes per item, items per page.
type bodyLimits struct {
	total, item int64
	items       int
}

// pageLimits are the limits of a page of limit items of itemBytes each at most (limit < 0: no
// limit was asked, the server sends everything).
func (c *Client) pageLimits(limit int, itemBytes int64) bodyLimits {
	if limit < 0 {
		return bodyLimits{total: c.cfg.MaxResponseBytes, item: itemBytes}
	}
	return bodyLimits{total: min(c.cfg.MaxResponseBytes, 64<<10+int64(limit)*itemBytes), item: itemBytes, items: 2*limit + 10}
}

// valueLimits are the limits of an answer that is one value, not a page.
func (c *Client) valueLimits(bytes int64) bodyLimits {
	b := min(c.cfg.MaxResponseBytes, bytes)
	return bodyLimits{total: b, item: b}
}

// get sends GET path?query with retries and decodes a 2xx body with decode, within lim.
func (c *Client) get(ctx context.Context, endpoint, path string, q url.Values, lim bodyLimits, decode decoder) error {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = q.Encode()
	target := u.String()
	for attempt := 0; ; attempt++ {
		if c.cfg.Limiter != nil {
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				if ctx.Err() == nil { // the wait would outlast the deadline: not sent
					err = ErrOutOfTime
				}
				return fmt.Errorf("GET %s: rate limiter: %w", path, err)
			}
		}
		err := c.attempt(ctx, endpoint, path, target, lim, decode)
		if err == nil {
			return nil
		}
		wait, retry := c.retryDelay(err, attempt)
		if !retry || attempt >= c.cfg.Retries {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(c.cfg.Clock.Now()) < wait {
			return fmt.Errorf("%w (no time left to retry before the deadline)", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
		case <-c.cfg.Clock.After(wait):
		}
	}
}

func (c *Client) retryDelay(err error, attempt int) (time.Duration, bool) {
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr):
		if !apiErr.Retryable() {
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			return min(apiErr.RetryAfter, c.cfg.MaxRetryAfter), true
		}
	case errors.Is(err, ErrBadResponse), errors.Is(err, ErrResponseTooLarge), errors.Is(err, ErrRedirect):
		return 0, false
	case errors.Is(err, context.Canceled):
		return 0, false
	}
	// Exponential backoff with full jitter.
	ceil := c.cfg.BackoffBase << min(attempt, 20)
	if ceil > c.cfg.BackoffMax || ceil <= 0 {
		ceil = c.cfg.BackoffMax
	}
	return time.Duration(rand.Int64N(int64(ceil)) + 1), true
}

// Codes passed to the RequestObserver for attempts without a usable HTTP answer; they all end
// in "error" so that one regular expression (".*error") selects them.
const (
	CodeNoResponse    = "error"          // no response (connection refused or reset, timeout)
	CodeReadError     = "read_error"     // the body could not be read (timed out, cut)
	CodeTooLarge      = "size_error"     // the body was larger than a page can plausibly be
	CodeInvalidBody   = "decode_error"   // a 2xx body that is not the JSON expected
	CodeRedirectError = "redirect_error" // a redirect to another origin (or too many) refused
)

func (c *Client) attempt(ctx context.Context, endpoint, path, target string, lim bodyLimits, decode decoder) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	name := "GET " + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	key := c.cfg.APIKey()
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	start := time.Now()
	code := CodeNoResponse
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer(endpoint, code, time.Since(start))
		}
	}()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			code = CodeRedirectError
		}
		// *url.Error names the URL; it holds query parameters but never the key (a header).
		return fmt.Errorf("%s: %w", name, redact(err, key))
	}
	defer resp.Body.Close()
	code = strconv.Itoa(resp.StatusCode)
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		c.serverDate.Store(d.Unix())
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // an error body is small; more is not read
		apiErr := &APIError{Endpoint: name, StatusCode: resp.StatusCode}
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil {
			apiErr.Code = eb.Code
			apiErr.Message = truncate(eb.message(), 300)
			if eb.Params != nil {
				apiErr.EntityType = eb.Params.EntityType
			}
		} else {
			apiErr.Message = http.StatusText(resp.StatusCode)
		}
		if key != "" {
			apiErr.Message = strings.ReplaceAll(apiErr.Message, key, "[REDACTED]")
			apiErr.Code = strings.ReplaceAll(apiErr.Code, key, "[REDACTED]")
		}
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Clock.Now()); ok {
			apiErr.RetryAfter = d
		}
		return apiErr
	}
	cr := &capReader{r: resp.Body, totalMax: lim.total, itemMax: min(lim.total, lim.item), maxItems: lim.items}
	if err := decode(cr); err != nil {
		switch {
		case cr.tooLarge != nil:
			code = CodeTooLarge
			return fmt.Errorf("%s: %w", name, cr.tooLarge)
		case cr.readErr != nil:
			code = CodeReadError
			return fmt.Errorf("%s: reading body: %w", name, redact(cr.readErr, key))
		}
		code = CodeInvalidBody
		return fmt.Errorf("%s: %w: %w", name, ErrBadResponse, redact(err, key))
	}
	return nil
}

// maxRedirects is how many same-origin redirects a request follows.
const maxRedirects = 3

// checkRedirect refuses a redirect to another origin (scheme, host or port): Go's client would
// send the key to another port of the same host, and take another host's answers as the API's.
func checkRedirect(req *http.Request, via []*http.Request) error {
	from := via[len(via)-1].URL
	if origin(req.URL) != origin(via[0].URL) {
		return fmt.Errorf("%w: %s redirected to %s, another origin", ErrRedirect, stripQuery(from), stripQuery(req.URL))
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects, the last from %s to %s", ErrRedirect, maxRedirects, stripQuery(from), stripQuery(req.URL))
	}
	return nil
}

func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func stripQuery(u *url.URL) string {
	v := *u
	v.RawQuery, v.User = "", nil
	return v.String()
}

// redactedError keeps the chain of err (errors.Is still works) but prints without the key.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, key string) error {
	if key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), key, "[REDACTED]"), err: err}
}

// ListFlowRunsParams are the filters of GET /v1/flow-runs (docs/activepieces-api.md §3).
type ListFlowRunsParams struct {
	ProjectID         string
	FlowIDs           []string
	Statuses          []RunStatus
	Tags              []string
	CreatedAfter      time.Time // inclusive
	CreatedBefore     time.Time // inclusive
	FailedStepName    string
	FailedStepMessage string
	FlowRunIDs        []string
	IncludeArchived   bool
	Limit             int // 0: server default (10); -1: no limit
	Cursor            string
}

func (p ListFlowRunsParams) values() url.Values {
	q := url.Values{}
	q.Set("projectId", p.ProjectID)
	for _, v := range p.FlowIDs {
		q.Add("flowId", v)
	}
	for _, v := range p.Statuses {
		q.Add("status", string(v))
	}
	for _, v := range p.Tags {
		q.Add("tags", v)
	}
	if !p.CreatedAfter.IsZero() {
		q.Set("createdAfter", FormatTime(p.CreatedAfter))
	}
	if !p.CreatedBefore.IsZero() {
		q.Set("createdBefore", FormatTime(p.CreatedBefore))
	}
	if p.FailedStepName != "" {
		q.Set("failedStepName", p.FailedStepName)
	}
	if p.FailedStepMessage != "" {
		q.Set("failedStepMessage", p.FailedStepMessage)
	}
	for _, v := range p.FlowRunIDs {
		q.Add("flowRunIds", v)
	}
	if p.IncludeArchived {
		q.Set("includeArchived", "true")
	}
	setPaging(q, p.Limit, p.Cursor)
	return q
}

func setPaging(q url.Values, limit int, cursor string) {
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

// ListFlowRuns fetches one page of runs, newest first (created DESC, id DESC).
func (c *Client) ListFlowRuns(ctx context.Context, p ListFlowRunsParams) (*Page[FlowRun], error) {
	return getPage[FlowRun](ctx, c, EndpointFlowRuns, "/v1/flow-runs", p.values(), p.Limit, c.cfg.MaxItemBytes)
}

// GetFlowRun fetches one run by id.
func (c *Client) GetFlowRun(ctx context.Context, id string) (*FlowRun, error) {
	var run FlowRun
	// The full run carries its steps' inputs and outputs.
	if err := c.get(ctx, EndpointFlowRun, "/v1/flow-runs/"+url.PathEscape(id), nil, c.valueLimits(c.cfg.MaxResponseBytes),
		func(cr *capReader) error { return decodeValue(cr, &run) }); err != nil {
		return nil, err
	}
	return &run, nil
}

// CountByStatus counts the PRODUCTION runs of a project by status, with inclusive optional bounds.
func (c *Client) CountByStatus(ctx context.Context, projectID string, after, before time.Time) ([]StatusCount, error) {
	q := url.Values{}
	q.Set("projectId", projectID)
	if !after.IsZero() {
		q.Set("createdAfter", FormatTime(after))
	}
	if !before.IsZero() {
		q.Set("createdBefore", FormatTime(before))
	}
	var out struct {
		Data []StatusCount `json:"data"`
	}
	if err := c.get(ctx, EndpointCountByStatus, "/v1/flow-runs/count-by-status", q, c.valueLimits(64<<10),
		func(cr *capReader) error { return decodeValue(cr, &out) }); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// ListFlowsParams are the filters of GET /v1/flows used here.
type ListFlowsParams struct {
	ProjectID string
	FolderID  string
	Statuses  []string
	Name      string
	Limit     int
	Cursor    string
}

// ListFlows fetches one page of flows.
func (c *Client) ListFlows(ctx context.Context, p ListFlowsParams) (*Page[Flow], error) {
	q := url.Values{}
	q.Set("projectId", p.ProjectID)
	if p.FolderID != "" {
		q.Set("folderId", p.FolderID)
	}
	for _, s := range p.Statuses {
		q.Add("status", s)
	}
	if p.Name != "" {
		q.Set("name", p.Name)
	}
	setPaging(q, p.Limit, p.Cursor)
	return getPage[Flow](ctx, c, EndpointFlows, "/v1/flows", q, p.Limit, c.cfg.MaxFlowBytes)
}

// ListFolders fetches one page of a project's folders.
func (c *Client) ListFolders(ctx context.Context, projectID string, limit int, cursor string) (*Page[Folder], error) {
	q := url.Values{}
	q.Set("projectId", projectID)
	setPaging(q, limit, cursor)
	return getPage[Folder](ctx, c, EndpointFolders, "/v1/folders", q, limit, c.cfg.MaxItemBytes)
}

// ListProjects fetches one page of the projects the key can read.
func (c *Client) ListProjects(ctx context.Context, limit int, cursor string) (*Page[Project], error) {
	q := url.Values{}
	setPaging(q, limit, cursor)
	return getPage[Project](ctx, c, EndpointProjects, "/v1/projects", q, limit, c.cfg.MaxItemBytes)
}

// getPage fetches one page of a listing, decoding it item by item.
func getPage[T any](ctx context.Context, c *Client, endpoint, path string, q url.Values, limit int, itemBytes int64) (*Page[T], error) {
	var page Page[T]
	if limit == 0 {
		limit = 10 // the server's default page size
	}
	if err := c.get(ctx, endpoint, path, q, c.pageLimits(limit, itemBytes), func(cr *capReader) error { return decodePage(cr, &page) }); err != nil {
		return nil, err
	}
	return &page, nil
}
