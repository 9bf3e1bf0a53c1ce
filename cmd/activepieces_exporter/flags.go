package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// CLI is the whole command line, one embedded struct per subsystem. Every flag can also be set
// from the environment variable named in its env tag; the API key itself is read only from
// ACTIVEPIECES_API_KEY or a file. Flag names and variables are a public contract (README table,
// TestREADMEDocumentsEveryFlag). Poll and metrics defaults come from collector.DefaultConfig
// through kong.Vars (kongVars), so they are written down once; collectorConfig says which flag
// sets which collector setting.
type CLI struct {
	Activepieces ActivepiecesFlags `embed:"" prefix:"activepieces." group:"activepieces"`
	Poll         PollFlags         `embed:"" prefix:"poll." group:"poll"`
	API          APIFlags          `embed:"" prefix:"api." group:"api"`
	Metrics      MetricsFlags      `embed:"" prefix:"metrics." group:"metrics"`
	Shard        ShardFlags        `embed:"" prefix:"shard." group:"shard"`
	State        StateFlags        `embed:"" prefix:"state." group:"state"`
	Web          WebFlags          `embed:"" prefix:"web." group:"web"`
	Log          LogFlags          `embed:"" prefix:"log." group:"log"`
	Demo         DemoFlags         `embed:"" group:"demo"`

	Serve   ServeCmd   `cmd:"" default:"withargs" help:"Poll the API and serve metrics (default)."`
	Check   CheckCmd   `cmd:"" help:"Reach the API with the key, list what one poll finds and what it costs, then exit."`
	Version VersionCmd `cmd:"" help:"Print the version."`
}

// ActivepiecesFlags say which server and what of it to watch.
type ActivepiecesFlags struct {
	URL          string   `name:"url" env:"ACTIVEPIECES_URL" default:"https://cloud.activepieces.com/api" help:"Activepieces API root, including /api."`
	APIKeyFile   string   `name:"api-key-file" env:"ACTIVEPIECES_API_KEY_FILE" type:"path" help:"File holding the API key (re-read on SIGHUP and when it changes). Without it the key comes from ACTIVEPIECES_API_KEY."`
	Email        string   `name:"email" env:"ACTIVEPIECES_EMAIL" placeholder:"EMAIL" help:"Sign in as this user instead of using an API key (Community Edition has none); the password comes from ACTIVEPIECES_PASSWORD or --activepieces.password-file."`
	PasswordFile string   `name:"password-file" env:"ACTIVEPIECES_PASSWORD_FILE" type:"path" help:"File holding the password of --activepieces.email (re-read at every sign-in). Without it the password comes from ACTIVEPIECES_PASSWORD."`
	Projects     []string `name:"project" env:"ACTIVEPIECES_PROJECTS" help:"Project id to watch (repeatable; none: discover every project the key can read)."`
	Flows        []string `name:"flow" env:"ACTIVEPIECES_FLOWS" help:"Only export flows with this id or display name (repeatable)."`
	UIURL        string   `name:"ui-url" env:"ACTIVEPIECES_UI_URL" placeholder:"URL" help:"The Activepieces web app that run links (run_url) point into (default: --activepieces.url without its trailing /api)."`
}

// PollFlags shape the background poll.
type PollFlags struct {
	Interval         time.Duration `name:"interval" env:"ACTIVEPIECES_EXPORTER_POLL_INTERVAL" placeholder:"${PollInterval}" help:"How often each project's runs are listed (default ${PollInterval}; ${demo_poll_interval} with --demo)."`
	Timeout          time.Duration `name:"timeout" env:"ACTIVEPIECES_EXPORTER_POLL_TIMEOUT" placeholder:"DURATION" help:"How long one poll of every project may take (default 5 times --poll.interval, at least 1m); the projects it did not reach go first in the next, and a read it cut short continues there."`
	Lookback         time.Duration `name:"lookback" env:"ACTIVEPIECES_EXPORTER_POLL_LOOKBACK" default:"${Lookback}" help:"History read for the last-run gauges (not counted): the newest 1,000 runs by a project's first poll, the rest in the background at --poll.history-rate."`
	Overlap          time.Duration `name:"overlap" env:"ACTIVEPIECES_EXPORTER_POLL_OVERLAP" default:"${Overlap}" help:"Window re-read to catch runs committed late."`
	OverlapInterval  time.Duration `name:"overlap-interval" env:"ACTIVEPIECES_EXPORTER_POLL_OVERLAP_INTERVAL" default:"${OverlapInterval}" help:"How often the overlap window is re-read."`
	FlowsInterval    time.Duration `name:"flows-interval" env:"ACTIVEPIECES_EXPORTER_POLL_FLOWS_INTERVAL" placeholder:"${FlowsInterval}" help:"How often flows are listed, and on an active project retried runs looked for and the late window checked (default ${FlowsInterval}; ${demo_flows_interval} with --demo)."`
	ProjectsInterval time.Duration `name:"projects-interval" env:"ACTIVEPIECES_EXPORTER_POLL_PROJECTS_INTERVAL" default:"${ProjectsInterval}" help:"How often projects are discovered."`
	MaxPages         int           `name:"max-pages" env:"ACTIVEPIECES_EXPORTER_POLL_MAX_PAGES" default:"${MaxPages}" help:"Pages of new runs read per project per poll; the rest waits for the next poll."`
	PageSize         int           `name:"page-size" env:"ACTIVEPIECES_EXPORTER_POLL_PAGE_SIZE" default:"${PageSize}" help:"Runs per page."`
	Concurrency      int           `name:"concurrency" env:"ACTIVEPIECES_EXPORTER_POLL_CONCURRENCY" default:"${Concurrency}" help:"Projects polled at once."`
	RetryWindow      time.Duration `name:"retry-window" env:"ACTIVEPIECES_EXPORTER_POLL_RETRY_WINDOW" default:"${RetryWindow}" help:"How long a run that ended FAILED, TIMEOUT or another retryable status is watched for a retry that re-opens it (0: off)."`
	LateWindow       time.Duration `name:"late-window" env:"ACTIVEPIECES_EXPORTER_POLL_LATE_WINDOW" default:"${LateWindow}" help:"How late a run may become visible and still be counted; checked by every census (0: off)."`
	HistoryRate      float64       `name:"history-rate" env:"ACTIVEPIECES_EXPORTER_POLL_HISTORY_RATE" default:"${HistoryRate}" help:"Requests per second at most (within --api.rate-limit) of the background read of the --poll.lookback history, which only feeds the last-run gauges."`
	MaxTrackedRuns   int           `name:"max-tracked-runs" env:"ACTIVEPIECES_EXPORTER_POLL_MAX_TRACKED_RUNS" default:"${MaxTrackedRuns}" help:"In-flight runs tracked per project at most."`
}

// APIFlags shape the API client.
type APIFlags struct {
	Timeout   time.Duration `name:"timeout" env:"ACTIVEPIECES_EXPORTER_API_TIMEOUT" default:"${api_timeout}" help:"Timeout of one API request."`
	RateLimit float64       `name:"rate-limit" env:"ACTIVEPIECES_EXPORTER_API_RATE_LIMIT" default:"${RateLimit}" help:"API requests per second at most, shared by all projects."`
	Retries   int           `name:"retries" env:"ACTIVEPIECES_EXPORTER_API_RETRIES" default:"3" help:"Retries of a request failing with 429, 502, 503, 504 or a network error."`
	MaxItem   int64         `name:"max-item-bytes" env:"ACTIVEPIECES_EXPORTER_API_MAX_ITEM_BYTES" default:"${api_max_item_bytes}" help:"Bytes one run, project or folder of a page may have; a page of N items may have N times that."`
	MaxFlow   int64         `name:"max-flow-bytes" env:"ACTIVEPIECES_EXPORTER_API_MAX_FLOW_BYTES" default:"${api_max_flow_bytes}" help:"Bytes one flow (with its whole definition) of a page may have."`
}

// MetricsFlags shape what is exported.
type MetricsFlags struct {
	MaxFlows        int       `name:"max-flows" env:"ACTIVEPIECES_EXPORTER_METRICS_MAX_FLOWS" default:"${MaxFlows}" help:"Flows exported at most; the rest are counted in activepieces_exporter_flows_dropped."`
	MaxFailedSteps  int       `name:"max-failed-steps-per-flow" env:"ACTIVEPIECES_EXPORTER_METRICS_MAX_FAILED_STEPS_PER_FLOW" default:"${MaxFailedStepsPerFlow}" help:"Steps a flow's failures are broken down by at most (activepieces_flow_run_failures_by_step_total); failures of further steps count under step \"other\"."`
	Compact         bool      `name:"compact" env:"ACTIVEPIECES_EXPORTER_METRICS_COMPACT" help:"Halve the series per flow (big platforms): the run duration histogram per project, and the last-run status only at its current value."`
	DurationBuckets []float64 `name:"duration-buckets" env:"ACTIVEPIECES_EXPORTER_METRICS_DURATION_BUCKETS" default:"${DurationBuckets}" help:"Run duration histogram buckets, seconds."`
}

// ShardFlags split the projects between replicas.
type ShardFlags struct {
	Count int `name:"count" env:"ACTIVEPIECES_EXPORTER_SHARD_COUNT" default:"1" help:"Replicas sharing the projects; each polls those whose id hashes to its --shard.index."`
	Index int `name:"index" env:"ACTIVEPIECES_EXPORTER_SHARD_INDEX" default:"0" help:"This replica's shard, 0 to --shard.count - 1."`
}

// StateFlags keep the ledger across restarts.
type StateFlags struct {
	File  string `name:"file" env:"ACTIVEPIECES_EXPORTER_STATE_FILE" type:"path" help:"Save the ledger and counters here after every poll and continue from it on start (default: off)."`
	Reset bool   `name:"reset" env:"ACTIVEPIECES_EXPORTER_STATE_RESET" help:"Ignore an existing --state.file (corrupt, or from another version or API) and start fresh; it is overwritten after the first poll."`
}

// WebFlags shape the HTTP server.
type WebFlags struct {
	ListenAddress string `name:"listen-address" env:"ACTIVEPIECES_EXPORTER_WEB_LISTEN_ADDRESS" default:":9942" help:"Address to serve metrics on."`
	TelemetryPath string `name:"telemetry-path" env:"ACTIVEPIECES_EXPORTER_WEB_TELEMETRY_PATH" default:"/metrics" help:"Path of the metrics."`
	ConfigFile    string `name:"config.file" env:"ACTIVEPIECES_EXPORTER_WEB_CONFIG_FILE" type:"path" help:"exporter-toolkit web config: TLS and basic auth."`
	MaxRequests   int    `name:"max-requests" env:"ACTIVEPIECES_EXPORTER_WEB_MAX_REQUESTS" default:"40" help:"Scrapes served at once at most (0: no limit)."`
	StatusPage    bool   `name:"status-page" env:"ACTIVEPIECES_EXPORTER_WEB_STATUS_PAGE" default:"true" negatable:"" help:"Serve /status, an HTML page of every flow's health (--web.status-page=false or --no-web.status-page: off)."`
}

// LogFlags shape the logger.
type LogFlags struct {
	Level  string `name:"level" env:"ACTIVEPIECES_EXPORTER_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn, error."`
	Format string `name:"format" env:"ACTIVEPIECES_EXPORTER_LOG_FORMAT" default:"text" enum:"text,json" help:"Log format: text or json."`
}

// DemoFlags run the embedded simulator.
type DemoFlags struct {
	Enabled bool    `name:"demo" env:"ACTIVEPIECES_EXPORTER_DEMO" help:"Serve an embedded Activepieces simulator on loopback and watch it (no API key needed)."`
	Rate    float64 `name:"demo.rate" env:"ACTIVEPIECES_EXPORTER_DEMO_RATE" default:"2" help:"Runs per second the demo simulator creates."`
	Edition string  `name:"demo.edition" env:"ACTIVEPIECES_EXPORTER_DEMO_EDITION" default:"enterprise" enum:"enterprise,community" help:"The demo server's edition: enterprise (an API key) or community (no API keys: the exporter signs in as the demo user)."`
}

// The demo's poll and flow-refresh intervals, unless flags say otherwise: the demo is for
// watching numbers move (a retry shows within demoFlowsInterval).
const (
	demoPollInterval  = 5 * time.Second
	demoFlowsInterval = 15 * time.Second
)

// shortDuration writes 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// kongVars are the flag defaults written down elsewhere: the collector's, taken from
// collector.DefaultConfig and named after the Config field (${PollInterval} in a tag), the API
// client's and the demo's.
func kongVars() kong.Vars {
	d := collector.DefaultConfig()
	return kong.Vars{
		"PollInterval":          shortDuration(d.PollInterval),
		"Lookback":              shortDuration(d.Lookback),
		"Overlap":               shortDuration(d.Overlap),
		"OverlapInterval":       shortDuration(d.OverlapInterval),
		"FlowsInterval":         shortDuration(d.FlowsInterval),
		"ProjectsInterval":      shortDuration(d.ProjectsInterval),
		"MaxPages":              strconv.Itoa(d.MaxPages),
		"PageSize":              strconv.Itoa(d.PageSize),
		"Concurrency":           strconv.Itoa(d.Concurrency),
		"RetryWindow":           shortDuration(d.RetryWindow),
		"LateWindow":            shortDuration(d.LateWindow),
		"HistoryRate":           formatFloat(d.HistoryRate),
		"MaxTrackedRuns":        strconv.Itoa(d.MaxTrackedRuns),
		"RateLimit":             formatFloat(d.RateLimit),
		"MaxFlows":              strconv.Itoa(d.MaxFlows),
		"MaxFailedStepsPerFlow": strconv.Itoa(d.MaxFailedStepsPerFlow),
		"DurationBuckets":       formatFloats(d.DurationBuckets),

		"api_timeout":        shortDuration(apiclient.DefaultTimeout),
		"api_max_item_bytes": strconv.Itoa(apiclient.DefaultMaxItemBytes),
		"api_max_flow_bytes": strconv.Itoa(apiclient.DefaultMaxFlowBytes),

		"demo_poll_interval":  shortDuration(demoPollInterval),
		"demo_flows_interval": shortDuration(demoFlowsInterval),
	}
}

// formatFloat writes 2 rather than 2.000000.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// formatFloats writes a list the way kong parses it: comma-separated.
func formatFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = formatFloat(f)
	}
	return strings.Join(s, ",")
}

// kongOptions are the parser options main and the tests share.
func kongOptions() []kong.Option {
	return []kong.Option{
		kong.Name("activepieces_exporter"),
		kong.Description("Prometheus exporter for Activepieces flow runs."),
		kong.UsageOnError(),
		kongVars(),
	}
}

// collectorConfig is the collector's configuration as the flags give it, one field per line
// (TestEveryConfigFieldHasAFlag: every field is set here). PauseLimit has no flag: it is the
// platform's. In demo mode the poll and flow-refresh intervals default to demoPollInterval and
// demoFlowsInterval.
func (c *CLI) collectorConfig() collector.Config {
	cfg := collector.Config{
		ServerURL: c.Activepieces.URL,
		Projects:  c.Activepieces.Projects,
		Flows:     c.Activepieces.Flows,
		UIURL:     c.Activepieces.UIURL,

		PollInterval:     c.Poll.Interval,
		PollTimeout:      c.Poll.Timeout,
		Lookback:         c.Poll.Lookback,
		Overlap:          c.Poll.Overlap,
		OverlapInterval:  c.Poll.OverlapInterval,
		FlowsInterval:    c.Poll.FlowsInterval,
		ProjectsInterval: c.Poll.ProjectsInterval,
		MaxPages:         c.Poll.MaxPages,
		PageSize:         c.Poll.PageSize,
		Concurrency:      c.Poll.Concurrency,
		RetryWindow:      c.Poll.RetryWindow,
		RetryWatchOff:    c.Poll.RetryWindow == 0, // the flag's 0 is off (the collector's 0 is its default)
		LateWindow:       c.Poll.LateWindow,
		LateCheckOff:     c.Poll.LateWindow == 0, // the same
		HistoryRate:      c.Poll.HistoryRate,
		MaxTrackedRuns:   c.Poll.MaxTrackedRuns,

		RateLimit: c.API.RateLimit,

		MaxFlows:              c.Metrics.MaxFlows,
		MaxFailedStepsPerFlow: c.Metrics.MaxFailedSteps,
		CompactSeries:         c.Metrics.Compact,
		DurationBuckets:       c.Metrics.DurationBuckets,

		ShardCount: c.Shard.Count,
		ShardIndex: c.Shard.Index,

		StateFile:  c.State.File,
		StateReset: c.State.Reset,
	}
	if c.Demo.Enabled && cfg.PollInterval == 0 {
		cfg.PollInterval = demoPollInterval
	}
	if c.Demo.Enabled && cfg.FlowsInterval == 0 {
		cfg.FlowsInterval = demoFlowsInterval
	}
	return cfg
}

// Validate checks the whole command line at once (kong calls it after parsing): the collector's
// settings by collector.Config.Validate alone, then the flags only the command uses (the API
// client's, the web server's and the demo's).
func (c *CLI) Validate() error {
	var errs []error
	if err := c.collectorConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.API.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--api.timeout must be positive, got %s", c.API.Timeout))
	}
	if c.API.MaxItem < 1024 || c.API.MaxFlow < 1024 {
		errs = append(errs, fmt.Errorf("--api.max-item-bytes and --api.max-flow-bytes must be at least 1024, got %d and %d", c.API.MaxItem, c.API.MaxFlow))
	}
	if c.API.Retries < 0 {
		errs = append(errs, fmt.Errorf("--api.retries must not be negative, got %d", c.API.Retries))
	}
	if c.Web.MaxRequests < 0 {
		errs = append(errs, fmt.Errorf("--web.max-requests must not be negative, got %d", c.Web.MaxRequests))
	}
	if !strings.HasPrefix(c.Web.TelemetryPath, "/") {
		errs = append(errs, fmt.Errorf("--web.telemetry-path must start with /, got %q", c.Web.TelemetryPath))
	}
	if c.Demo.Enabled && c.Demo.Rate <= 0 {
		errs = append(errs, fmt.Errorf("--demo.rate must be positive, got %g", c.Demo.Rate))
	}
	return errors.Join(errs...)
}
