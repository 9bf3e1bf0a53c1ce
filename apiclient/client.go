package apiclient

import (
	"bytes"
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
	EndpointUserProjects  = "user-projects" // GET /v1/users/projects
	EndpointFlags         = "flags"         // GET /v1/flags (public)
	EndpointSignIn        = "sign-in"       // POST /v1/authentication/sign-in (public)
)

// RequestObserver is told about every HTTP attempt: the endpoint name, the status code as text
// ("200", "429", …) or "error" when no response arrived, and how long the attempt took.
type RequestObserver func(endpoint, code string, d time.Duration)

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// BaseURL is the API root including /api, e.g. https://cloud.activepieces.com/api.
	BaseURL string
	// APIKey returns the key to send as a bearer token. Called for every attempt, so a rotated
	// key is picked up without a new client. Exactly one of APIKey and Auth must be set.
	APIKey func() string
	// Auth supplies the bearer token when the client signs in instead of using a static key
	// (Community Edition, docs/activepieces-api.md §10), e.g. a *SignIn from NewSignIn. Exactly
	// one of APIKey and Auth must be set.
	Auth TokenSource
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
	switch {
	case cfg.APIKey == nil && cfg.Auth == nil:
		return nil, errors.New("apiclient: no credentials: set Config.APIKey or Config.Auth")
	case cfg.APIKey != nil && cfg.Auth != nil:
		return nil, errors.New("apiclient: both Config.APIKey and Config.Auth set: want one")
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
	c := &Client{cfg: cfg, base: u}
	if b, ok := cfg.Auth.(clientBinder); ok {
		if err := b.bindClient(c); err != nil {
			return nil, err
		}
	}
	return c, nil
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

// request is one API call: what to send, how to authenticate it and how to read the answer.
type request struct {
	endpoint     string // the RequestObserver's name
	method, path string // path below the base URL, e.g. /v1/flow-runs
	query        url.Values
	body         []byte        // a JSON body (nil: none)
	public       bool          // send no Authorization header (and so never sign in)
	once         bool          // no retries
	timeout      time.Duration // one attempt (0: Config.Timeout)
	secrets      []string      // redacted from every error, besides the bearer token
	lim          bodyLimits
	decode       decoder
}

func (r *request) name() string { return r.method + " " + r.path }

// get sends GET path?query with retries and decodes a 2xx body with decode, within lim.
func (c *Client) get(ctx context.Context, endpoint, path string, q url.Values, lim bodyLimits, decode decoder) error {
	return c.do(ctx, &request{endpoint: endpoint, method: http.MethodGet, path: path, query: q, lim: lim, decode: decode})
}

// do sends r with retries. A token the server rejects (INVALID_BEARER_TOKEN, SESSION_EXPIRED)
// is reported to Config.Auth and the request sent once more with a new token; that retry does
// not count against Config.Retries.
func (c *Client) do(ctx context.Context, r *request) error {
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawQuery = r.query.Encode()
	target := u.String()
	reauthed := false
	for attempt := 0; ; attempt++ {
		if c.cfg.Limiter != nil {
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				if ctx.Err() == nil { // the wait would outlast the deadline: not sent
					err = ErrOutOfTime
				}
				return fmt.Errorf("%s: rate limiter: %w", r.name(), err)
			}
		}
		bearer, err := c.bearer(ctx, r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name(), err)
		}
		err = c.attempt(ctx, r, target, bearer)
		if err == nil {
			return nil
		}
		if code, ok := rejectedToken(err); ok && c.cfg.Auth != nil && bearer != "" {
			c.cfg.Auth.Rejected(bearer, code)
			if !reauthed {
				reauthed = true
				attempt--
				continue
			}
			return err
		}
		wait, retry := c.retryDelay(err, attempt)
		if r.once || !retry || attempt >= c.cfg.Retries {
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

// bearer is the token to send with r ("" for none).
func (c *Client) bearer(ctx context.Context, r *request) (string, error) {
	switch {
	case r.public:
		return "", nil
	case c.cfg.Auth != nil:
		return c.cfg.Auth.Token(ctx)
	}
	return c.cfg.APIKey(), nil
}

// Server codes of a bearer token that stopped working (docs/activepieces-api.md §10).
const (
	codeInvalidBearerToken = "INVALID_BEARER_TOKEN"
	codeSessionExpired     = "SESSION_EXPIRED"
)

// rejectedToken reports whether err is the server refusing the token itself (not the principal's
// rights), with the server's code.
func rejectedToken(err error) (string, bool) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return "", false
	}
	switch {
	case apiErr.StatusCode == http.StatusUnauthorized && apiErr.Code == codeInvalidBearerToken,
		apiErr.StatusCode == http.StatusForbidden && apiErr.Code == codeSessionExpired:
		return apiErr.Code, true
	}
	return "", false
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

func (c *Client) attempt(ctx context.Context, r *request, target, bearer string) (err error) {
	timeout := r.timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := r.name()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	secrets := append([]string{bearer}, r.secrets...)
	start := time.Now()
	code := CodeNoResponse
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer(r.endpoint, code, time.Since(start))
		}
	}()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			code = CodeRedirectError
		}
		// *url.Error names the URL; it holds query parameters but never the key (a header).
		return fmt.Errorf("%s: %w", name, redact(err, secrets...))
	}
	defer resp.Body.Close()
	code = strconv.Itoa(resp.StatusCode)
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		c.serverDate.Store(d.Unix())
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.errorAnswer(resp, r, secrets)
	}
	lim := r.lim
	cr := &capReader{r: resp.Body, totalMax: lim.total, itemMax: min(lim.total, lim.item), maxItems: lim.items}
	if err := r.decode(cr); err != nil {
		switch {
		case cr.tooLarge != nil:
			code = CodeTooLarge
			return fmt.Errorf("%s: %w", name, cr.tooLarge)
		case cr.readErr != nil:
			code = CodeReadError
			return fmt.Errorf("%s: reading body: %w", name, redact(cr.readErr, secrets...))
		}
		code = CodeInvalidBody
		return fmt.Errorf("%s: %w: %w", name, ErrBadResponse, redact(err, secrets...))
	}
	return nil
}

// errorAnswer reads a non-2xx answer into an *APIError (a *RepeatLimitError wrapping one when
// the server's query parser capped a repeated key), with every secret redacted.
func (c *Client) errorAnswer(resp *http.Response, r *request, secrets []string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // an error body is small; more is not read
	apiErr := &APIError{Endpoint: r.name(), StatusCode: resp.StatusCode}
	var eb errorBody
	full := ""
	if json.Unmarshal(body, &eb) == nil {
		apiErr.Code = eb.Code
		full = eb.message()
		apiErr.Message = truncate(full, 300)
		if eb.Params != nil {
			apiErr.EntityType = eb.Params.EntityType
		}
	} else {
		apiErr.Message = http.StatusText(resp.StatusCode)
	}
	apiErr.Message = redactString(apiErr.Message, secrets...)
	apiErr.Code = redactString(apiErr.Code, secrets...)
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Clock.Now()); ok {
		apiErr.RetryAfter = d
	}
	if key, ok := repeatLimitKey(apiErr, full); ok && len(r.query[key]) > SafeRepeatedValues {
		return &RepeatLimitError{Key: key, Err: apiErr}
	}
	return apiErr
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

func redact(err error, secrets ...string) error {
	msg := err.Error()
	if red := redactString(msg, secrets...); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// redactString replaces every non-empty secret in s.
func redactString(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
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

// ListUserProjects fetches one page of the projects the signed-in user is a member of
// (GET /v1/users/projects, servers of mid-2025 whose /v1/projects answers ErrRouteNotFound).
// Such servers may send every project in one page whatever the limit, so the page is only
// bounded by Config.MaxResponseBytes and MaxItemBytes per project.
func (c *Client) ListUserProjects(ctx context.Context, limit int, cursor string) (*Page[Project], error) {
	q := url.Values{}
	setPaging(q, limit, cursor)
	var page Page[Project]
	if err := c.get(ctx, EndpointUserProjects, "/v1/users/projects", q, c.pageLimits(-1, c.cfg.MaxItemBytes),
		func(cr *capReader) error { return decodePage(cr, &page) }); err != nil {
		return nil, err
	}
	return &page, nil
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

// SignsIn reports whether the client authenticates by signing in as a user (Config.Auth) rather
// than with a platform API key.
func (c *Client) SignsIn() bool { return c.cfg.Auth != nil }
