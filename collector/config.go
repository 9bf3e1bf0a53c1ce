// Package collector polls the Activepieces API in the background, keeps an exact ledger of flow
// runs (each run counted once, when first seen finished) and exposes it as Prometheus metrics. It
// knows nothing of HTTP serving: the command registers an *Exporter and serves the registry.
package collector

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"time"
)

// Config tunes polling and exposition. Zero values take the defaults of DefaultConfig.
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
	// a retry that re-opens its row (default 24h; negative: not watched).
	RetryWindow time.Duration
	// RateLimit is the API client's requests per second (default 10): the exporter warns when it
	// cannot sustain PollInterval for the projects it polls.
	RateLimit float64
	// HistoryRate is the requests per second the background reader of the look-back history may
	// send at most (default 2), within RateLimit: the history only feeds the last-run gauges, so
	// it never delays a project's first poll, counting or readiness.
	HistoryRate float64
	// LateWindow is how far below the poll position a run may become visible late and still be
	// counted: checked once per FlowsInterval (default 1h; negative: only the overlap sweep).
	LateWindow time.Duration
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

	// UIURL is the Activepieces web app the run links point into (default: ServerURL without
	// its trailing /api, docs/activepieces-api.md §9).
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

// Validate checks the configuration (zero fields take their defaults) and names every problem.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
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
	setDur(&c.RetryWindow, d.RetryWindow) // negative: off
	setDur(&c.LateWindow, d.LateWindow)   // negative: off
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
	if c.UIURL == "" {
		c.UIURL = strings.TrimSuffix(strings.TrimRight(c.ServerURL, "/"), "/api")
		if u, err := url.Parse(c.UIURL); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			c.UIURL = "" // no links rather than broken ones
		}
	}
	c.UIURL = strings.TrimRight(c.UIURL, "/")
	if c.RateLimit <= 0 {
		c.RateLimit = d.RateLimit
	}
	if c.HistoryRate <= 0 {
		c.HistoryRate = d.HistoryRate
	}
	if c.DurationBuckets == nil {
		c.DurationBuckets = d.DurationBuckets
	}
	var errs []error
	for _, p := range []struct {
		name string
		v    time.Duration
	}{{"poll interval", c.PollInterval}, {"poll timeout", c.PollTimeout}, {"lookback", c.Lookback}, {"overlap", c.Overlap},
		{"overlap interval", c.OverlapInterval}, {"flows interval", c.FlowsInterval},
		{"projects interval", c.ProjectsInterval}, {"pause limit", c.PauseLimit}} {
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
	return c, errors.Join(errs...)
}

// ShardOf is the shard a project belongs to among count shards: FNV-1a (64-bit) of the project id,
// modulo count. It depends on nothing but the id and count, so every replica agrees, and across
// replicas 0…count-1 every project is polled exactly once.
func ShardOf(projectID string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(projectID))
	return int(h.Sum64() % uint64(count))
}

func (c Config) ownsProject(id string) bool { return ShardOf(id, c.ShardCount) == c.ShardIndex }
