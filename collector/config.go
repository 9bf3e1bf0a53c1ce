// Package collector polls the Activepieces API in the background, keeps an exact ledger of flow
// runs (each run counted once, when first seen finished) and exposes it as Prometheus metrics. It
// knows nothing of HTTP serving: the command registers an *Exporter and serves the registry.
package collector

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config tunes polling and exposition. A zero field takes its default: DefaultConfig's, or the
// one its comment names. A negative duration, count or rate is an error (Validate), never
// replaced by the default.
type Config struct {
	// Projects to watch; empty means discover every project the key can read.
	Projects []string
	// Flows, if set, limits the exporter to flows whose id or display name is listed.
	Flows []string

	PollInterval time.Duration // how often each project's runs are listed
	// PollTimeout bounds one poll of every project (default max(5 × PollInterval, 1m)): no
	// request starts after it. The projects it does not reach are polled first by the next one,
	// and a project's read it cut short is continued there (replay.go).
	PollTimeout      time.Duration
	Lookback         time.Duration // history read at start-up for the "last run" gauges
	Overlap          time.Duration // window re-read to catch late commits
	OverlapInterval  time.Duration // how often that window is re-read
	FlowsInterval    time.Duration // how often flows and folders are listed
	ProjectsInterval time.Duration // how often projects are discovered
	MaxPages         int           // pages of new runs read per project per poll
	PageSize         int           // runs per page
	Concurrency      int           // projects polled at once
	MaxFlows         int           // flows exported at most (cardinality cap)
	DurationBuckets  []float64     // run duration histogram buckets, seconds
	// CompactSeries halves the series per flow for big platforms: the duration histogram per
	// project instead of per flow, and the last-run status only at its current value.
	CompactSeries bool
	// PauseLimit drops a PAUSED run from tracking once it is older than this (the platform's
	// pause timeout, 30 days by default).
	PauseLimit time.Duration
	// MaxTrackedRuns caps the in-flight runs tracked per project; it also caps the finished runs
	// watched for retries.
	MaxTrackedRuns int
	// RetryWindow is how long a run that ended in a status the UI offers to retry is watched for
	// a retry that re-opens its row (default 24h). RetryWatchOff watches none: RetryWindow is then
	// ignored, though a negative one is still refused.
	RetryWindow   time.Duration
	RetryWatchOff bool
	// RateLimit is the API client's requests per second (default 10): the exporter warns when it
	// cannot sustain PollInterval for the projects it polls. The command paces its API client at
	// the same rate, as WithDefaults gives it.
	RateLimit float64
	// HistoryRate is the requests per second the background reader of the look-back history may
	// send at most (default 2), within RateLimit: the history only feeds the last-run gauges, so
	// it never delays a project's first poll, counting or readiness.
	HistoryRate float64
	// LateWindow is how far below the poll position a run may become visible late and still be
	// counted: checked once per FlowsInterval (default 1h). LateCheckOff leaves late runs to the
	// overlap sweep alone: LateWindow is then ignored, though a negative one is still refused.
	LateWindow   time.Duration
	LateCheckOff bool
	// StateFile, if set, is where the ledger and counters are saved after every poll and restored
	// from at start; StateReset ignores (and later overwrites) an existing one.
	StateFile  string
	StateReset bool
	// ServerURL is the API root of the Activepieces server watched (--activepieces.url, with its
	// /api). The collector sends no request with it (the API client has its own): it is recorded in
	// the state file, whose counts belong to that server, so that a state file written for another
	// server is refused (its JSON key is "source"); and UIURL defaults to it.
	ServerURL string
	// ShardCount and ShardIndex split the projects between replicas: this one polls the projects
	// for which ShardOf(id, ShardCount) == ShardIndex. ShardCount 0 or 1 means all projects.
	ShardCount, ShardIndex int

	// UIURL is the Activepieces web app the run links point into, an http(s) URL (default:
	// ServerURL without its trailing /api, docs/activepieces-api.md §9, or no links when that is
	// not an http(s) URL).
	UIURL string
	// MaxFailedStepsPerFlow caps the steps a flow's failures are broken down by; failures of
	// further steps count under step "other" (default 20).
	MaxFailedStepsPerFlow int
}

// DefaultQueueWaitBuckets span 100 ms to an hour of waiting between a run's creation and its
// start.
var DefaultQueueWaitBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// DefaultDurationBuckets span half a second to an hour.
var DefaultDurationBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		PollInterval:     30 * time.Second,
		Lookback:         time.Hour,
		Overlap:          time.Minute,
		OverlapInterval:  time.Minute,
		FlowsInterval:    5 * time.Minute,
		ProjectsInterval: 10 * time.Minute,
		MaxPages:         50,
		PageSize:         100,
		Concurrency:      4,
		MaxFlows:         10000,
		DurationBuckets:  DefaultDurationBuckets,
		PauseLimit:       30 * 24 * time.Hour,
		MaxTrackedRuns:   100000,
		RetryWindow:      24 * time.Hour,
		RateLimit:        10,
		HistoryRate:      2,
		LateWindow:       time.Hour,

		MaxFailedStepsPerFlow: 20,
	}
}

// Validate names every problem of the configuration at once; zero fields are not problems (they
// take their defaults). The command calls it on the flags' configuration and New calls it too:
// it is the one place a setting is refused.
func (c Config) Validate() error {
	_, err := c.WithDefaults()
	return err
}

// WithDefaults is the configuration as the collector runs it, with Validate's problems: every
// zero field set to its default, UIURL without a trailing /, and a retry or late window that is
// off set to 0. It is idempotent: its result gives itself again.
func (c Config) WithDefaults() (Config, error) {
	c = c.filled()
	err := c.problems()
	c.UIURL = strings.TrimRight(c.UIURL, "/")
	if c.RetryWatchOff {
		c.RetryWindow = 0 // what the poll reads as off
	}
	if c.LateCheckOff {
		c.LateWindow = 0
	}
	return c, err
}

// filled is c with every zero field set to its default.
func (c Config) filled() Config {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.PollInterval, d.PollInterval)
	setDur(&c.PollTimeout, max(5*c.PollInterval, time.Minute))
	setDur(&c.Lookback, d.Lookback)
	setDur(&c.Overlap, d.Overlap)
	setDur(&c.OverlapInterval, d.OverlapInterval)
	setDur(&c.FlowsInterval, d.FlowsInterval)
	setDur(&c.ProjectsInterval, d.ProjectsInterval)
	setDur(&c.PauseLimit, d.PauseLimit)
	setDur(&c.RetryWindow, d.RetryWindow)
	setDur(&c.LateWindow, d.LateWindow)
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxPages, d.MaxPages)
	setInt(&c.PageSize, d.PageSize)
	setInt(&c.Concurrency, d.Concurrency)
	setInt(&c.MaxFlows, d.MaxFlows)
	setInt(&c.MaxTrackedRuns, d.MaxTrackedRuns)
	setInt(&c.MaxFailedStepsPerFlow, d.MaxFailedStepsPerFlow)
	if c.RateLimit == 0 {
		c.RateLimit = d.RateLimit
	}
	if c.HistoryRate == 0 {
		c.HistoryRate = d.HistoryRate
	}
	if c.DurationBuckets == nil {
		c.DurationBuckets = d.DurationBuckets
	}
	if c.UIURL == "" {
		c.UIURL = strings.TrimSuffix(strings.TrimRight(c.ServerURL, "/"), "/api")
		if !isHTTPURL(c.UIURL) {
			c.UIURL = "" // no links rather than broken ones
		}
	}
	return c
}

// problems names every setting of a filled configuration that is out of range.
func (c Config) problems() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    time.Duration
	}{{"poll interval", c.PollInterval}, {"poll timeout", c.PollTimeout}, {"lookback", c.Lookback}, {"overlap", c.Overlap},
		{"overlap interval", c.OverlapInterval}, {"flows interval", c.FlowsInterval},
		{"projects interval", c.ProjectsInterval}, {"pause limit", c.PauseLimit},
		{"retry window", c.RetryWindow}, {"late window", c.LateWindow}} {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", p.name, p.v))
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"max pages", c.MaxPages}, {"page size", c.PageSize}, {"concurrency", c.Concurrency},
		{"max flows", c.MaxFlows}, {"max tracked runs", c.MaxTrackedRuns}, {"max failed steps per flow", c.MaxFailedStepsPerFlow}} {
		if p.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", p.name, p.v))
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"rate limit", c.RateLimit}, {"history rate", c.HistoryRate}} {
		if !(p.v > 0) { // NaN too
			errs = append(errs, fmt.Errorf("%s must be positive, got %g", p.name, p.v))
		}
	}
	if c.ShardCount < 0 || c.ShardIndex < 0 || c.ShardCount > 0 && c.ShardIndex >= c.ShardCount || c.ShardCount == 0 && c.ShardIndex > 0 {
		errs = append(errs, fmt.Errorf("shard index must be in [0, shard count), got index %d of %d", c.ShardIndex, c.ShardCount))
	}
	if c.PageSize > 1000 {
		errs = append(errs, fmt.Errorf("page size must be at most 1000, got %d", c.PageSize))
	}
	for i, b := range c.DurationBuckets {
		if i > 0 && b <= c.DurationBuckets[i-1] {
			errs = append(errs, fmt.Errorf("duration buckets must increase, got %v", c.DurationBuckets))
			break
		}
	}
	if c.UIURL != "" && !isHTTPURL(c.UIURL) {
		errs = append(errs, fmt.Errorf("UI URL must be an http(s) URL, got %q", c.UIURL))
	}
	return errors.Join(errs...)
}

// isHTTPURL says whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https")
}

// ShardOf is the shard a project belongs to among count shards: FNV-1a (64-bit) of the project id,
// modulo count. It depends on nothing but the id and count, so every replica agrees, and across
// replicas 0…count-1 every project is polled exactly once.
func ShardOf(projectID string, count int) int {
	if count <= 1 {
		return 0
	}
	return int(fnv64a(projectID) % uint64(count))
}

func (c Config) ownsProject(id string) bool { return ShardOf(id, c.ShardCount) == c.ShardIndex }
