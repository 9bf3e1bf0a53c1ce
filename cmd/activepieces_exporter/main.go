// Command activepieces_exporter serves Prometheus metrics about Activepieces flow runs, read by a
// background poll of the Activepieces REST API.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"
)

// Set at build time: -ldflags "-X main.version=… -X main.revision=…".
var (
	version  = "dev"
	revision = ""
)

// CLI is the whole command line. Every flag can also be set from the environment variable named
// in its env tag; the API key itself is read only from ACTIVEPIECES_API_KEY or a file.
type CLI struct {
	URL        string   `name:"activepieces.url" env:"ACTIVEPIECES_URL" default:"https://cloud.activepieces.com/api" help:"Activepieces API root, including /api."`
	APIKeyFile string   `name:"activepieces.api-key-file" env:"ACTIVEPIECES_API_KEY_FILE" type:"path" help:"File holding the API key (re-read on SIGHUP and when it changes). Without it the key comes from ACTIVEPIECES_API_KEY."`
	Projects   []string `name:"activepieces.project" env:"ACTIVEPIECES_PROJECTS" help:"Project id to watch (repeatable; none: discover every project the key can read)."`
	Flows      []string `name:"activepieces.flow" env:"ACTIVEPIECES_FLOWS" help:"Only export flows with this id or display name (repeatable)."`

	PollInterval         time.Duration `name:"poll.interval" env:"ACTIVEPIECES_EXPORTER_POLL_INTERVAL" placeholder:"30s" help:"How often each project's runs are listed (default 30s; 5s with --demo)."`
	PollLookback         time.Duration `name:"poll.lookback" env:"ACTIVEPIECES_EXPORTER_POLL_LOOKBACK" default:"1h" help:"History read at start-up for the last-run gauges (not counted)."`
	PollOverlap          time.Duration `name:"poll.overlap" env:"ACTIVEPIECES_EXPORTER_POLL_OVERLAP" default:"1m" help:"Window re-read to catch runs committed late."`
	PollOverlapInterval  time.Duration `name:"poll.overlap-interval" env:"ACTIVEPIECES_EXPORTER_POLL_OVERLAP_INTERVAL" default:"1m" help:"How often the overlap window is re-read."`
	PollFlowsInterval    time.Duration `name:"poll.flows-interval" env:"ACTIVEPIECES_EXPORTER_POLL_FLOWS_INTERVAL" default:"5m" help:"How often flows, folders and in-flight runs are listed."`
	PollProjectsInterval time.Duration `name:"poll.projects-interval" env:"ACTIVEPIECES_EXPORTER_POLL_PROJECTS_INTERVAL" default:"10m" help:"How often projects are discovered."`
	PollMaxPages         int           `name:"poll.max-pages" env:"ACTIVEPIECES_EXPORTER_POLL_MAX_PAGES" default:"50" help:"Pages of new runs read per project per poll; the rest waits for the next poll."`
	PollPageSize         int           `name:"poll.page-size" env:"ACTIVEPIECES_EXPORTER_POLL_PAGE_SIZE" default:"100" help:"Runs per page."`
	PollConcurrency      int           `name:"poll.concurrency" env:"ACTIVEPIECES_EXPORTER_POLL_CONCURRENCY" default:"4" help:"Projects polled at once."`
	PollMaxTrackedRuns   int           `name:"poll.max-tracked-runs" env:"ACTIVEPIECES_EXPORTER_POLL_MAX_TRACKED_RUNS" default:"100000" help:"In-flight runs tracked per project at most."`

	APITimeout   time.Duration `name:"api.timeout" env:"ACTIVEPIECES_EXPORTER_API_TIMEOUT" default:"10s" help:"Timeout of one API request."`
	APIRateLimit float64       `name:"api.rate-limit" env:"ACTIVEPIECES_EXPORTER_API_RATE_LIMIT" default:"10" help:"API requests per second at most, shared by all projects."`
	APIRetries   int           `name:"api.retries" env:"ACTIVEPIECES_EXPORTER_API_RETRIES" default:"3" help:"Retries of a request failing with 429, 502, 503, 504 or a network error."`

	MaxFlows        int       `name:"metrics.max-flows" env:"ACTIVEPIECES_EXPORTER_METRICS_MAX_FLOWS" default:"10000" help:"Flows exported at most; the rest are counted in activepieces_exporter_flows_dropped."`
	DurationBuckets []float64 `name:"metrics.duration-buckets" env:"ACTIVEPIECES_EXPORTER_METRICS_DURATION_BUCKETS" default:"0.5,1,2.5,5,10,30,60,120,300,600,1800,3600" help:"Run duration histogram buckets, seconds."`

	ShardCount int `name:"shard.count" env:"ACTIVEPIECES_EXPORTER_SHARD_COUNT" default:"1" help:"Replicas sharing the projects; each polls those whose id hashes to its --shard.index."`
	ShardIndex int `name:"shard.index" env:"ACTIVEPIECES_EXPORTER_SHARD_INDEX" default:"0" help:"This replica's shard, 0 to --shard.count - 1."`

	StateFile  string `name:"state.file" env:"ACTIVEPIECES_EXPORTER_STATE_FILE" type:"path" help:"Save the ledger and counters here after every poll and continue from it on start (default: off)."`
	StateReset bool   `name:"state.reset" env:"ACTIVEPIECES_EXPORTER_STATE_RESET" help:"Ignore an existing --state.file (corrupt, or from another version or API) and start fresh; it is overwritten after the first poll."`

	ListenAddress  string `name:"web.listen-address" env:"ACTIVEPIECES_EXPORTER_WEB_LISTEN_ADDRESS" default:":9942" help:"Address to serve metrics on."`
	TelemetryPath  string `name:"web.telemetry-path" env:"ACTIVEPIECES_EXPORTER_WEB_TELEMETRY_PATH" default:"/metrics" help:"Path of the metrics."`
	WebConfigFile  string `name:"web.config.file" env:"ACTIVEPIECES_EXPORTER_WEB_CONFIG_FILE" type:"path" help:"exporter-toolkit web config: TLS and basic auth."`
	WebMaxRequests int    `name:"web.max-requests" env:"ACTIVEPIECES_EXPORTER_WEB_MAX_REQUESTS" default:"40" help:"Scrapes served at once at most (0: no limit)."`

	LogLevel  string `name:"log.level" env:"ACTIVEPIECES_EXPORTER_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn, error."`
	LogFormat string `name:"log.format" env:"ACTIVEPIECES_EXPORTER_LOG_FORMAT" default:"text" enum:"text,json" help:"Log format: text or json."`

	Demo     bool    `name:"demo" env:"ACTIVEPIECES_EXPORTER_DEMO" help:"Serve an embedded Activepieces simulator on loopback and watch it (no API key needed)."`
	DemoRate float64 `name:"demo.rate" env:"ACTIVEPIECES_EXPORTER_DEMO_RATE" default:"2" help:"Runs per second the demo simulator creates."`

	Serve   ServeCmd   `cmd:"" default:"withargs" help:"Poll the API and serve metrics (default)."`
	Check   CheckCmd   `cmd:"" help:"Reach the API with the key, list what one poll finds and what it costs, then exit."`
	Version VersionCmd `cmd:"" help:"Print the version."`
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run implements the command.
func (VersionCmd) Run(ctx *runContext) error {
	fmt.Fprintf(ctx.stdout, "activepieces_exporter %s (revision %s, %s)\n", version, buildRevision(), runtime.Version())
	return nil
}

type runContext struct {
	ctx    context.Context
	cli    *CLI
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	hup    <-chan os.Signal
}

func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newLogger(w io.Writer, level, format string, colour bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lv, NoColor: !colour, TimeFormat: time.RFC3339}))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func main() {
	var cli CLI
	kctx := kong.Parse(&cli,
		kong.Name("activepieces_exporter"),
		kong.Description("Prometheus exporter for Activepieces flow runs."),
		kong.UsageOnError(),
	)
	logger := newLogger(os.Stderr, cli.LogLevel, cli.LogFormat, isTerminal(os.Stderr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := kctx.Run(&runContext{ctx: ctx, cli: &cli, log: logger, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, hup: hup})
	if err != nil {
		logger.Error("exiting", "err", err)
		stop()
		os.Exit(1)
	}
}
