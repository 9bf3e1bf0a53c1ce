package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

func parse(t *testing.T, env map[string]string, args ...string) (*CLI, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cli CLI
	p, err := kong.New(&cli, append(kongOptions(), kong.Exit(func(int) {}))...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return &cli, err
}

func TestDefaultsAndEnvironment(t *testing.T) {
	cli, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := collector.DefaultConfig()
	want.PollInterval = 0  // unset: the collector's default, or the demo's
	want.FlowsInterval = 0 // the same
	want.ServerURL = "https://cloud.activepieces.com/api"
	want.PauseLimit = 0 // no flag: the platform's pause limit
	want.ShardCount = 1 // the same as 0: one shard
	if got := cli.collectorConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("flag defaults differ from collector.DefaultConfig:\n got %+v\nwant %+v", got, want)
	}
	if cli.API.Timeout != 10*time.Second || cli.API.RateLimit != 10 || cli.API.Retries != 3 || cli.Web.TelemetryPath != "/metrics" ||
		cli.Web.ListenAddress != ":9942" || cli.Web.MaxRequests != 40 || cli.Demo.Rate != 2 {
		t.Errorf("defaults: %+v", cli)
	}
	if d := collector.DefaultConfig(); d.PollInterval != 30*time.Second || d.Overlap != time.Minute || d.MaxPages != 50 {
		t.Errorf("collector defaults: %+v", d)
	}
	cli, err = parse(t, nil, "--poll.retry-window=0", "--poll.late-window=0")
	if err != nil || !cli.collectorConfig().RetryWatchOff || !cli.collectorConfig().LateCheckOff {
		t.Errorf("0 does not turn the retry watch and the late check off: %+v, %v", cli.collectorConfig(), err)
	}
	cli, err = parse(t, nil, "--demo")
	if err != nil || cli.collectorConfig().PollInterval != demoPollInterval || cli.collectorConfig().FlowsInterval != demoFlowsInterval {
		t.Errorf("demo intervals: %+v, %v", cli.collectorConfig(), err)
	}
	cli, err = parse(t, map[string]string{
		"ACTIVEPIECES_EXPORTER_POLL_INTERVAL": "5s", "ACTIVEPIECES_PROJECTS": "aaaaaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbbb",
		"ACTIVEPIECES_URL": "http://127.0.0.1:1/api",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cli.Poll.Interval != 5*time.Second || len(cli.Activepieces.Projects) != 2 || cli.Activepieces.URL != "http://127.0.0.1:1/api" {
		t.Errorf("environment not applied: %+v", cli)
	}
}

// Every invalid setting is refused at parse time with a message naming it; several at once are
// all named.
func TestValidateRefusesBadConfigurations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--poll.interval=-1s"}, "poll interval must not be negative, got -1s"},
		{[]string{"--poll.overlap=-1m"}, "overlap must not be negative, got -1m0s"},
		{[]string{"--poll.lookback=-1h"}, "lookback must not be negative, got -1h0m0s"},
		{[]string{"--poll.flows-interval=-1s"}, "flows interval must not be negative, got -1s"},
		{[]string{"--poll.max-pages=-1"}, "max pages must be at least 1, got -1"},
		{[]string{"--poll.page-size=1001"}, "page size must be at most 1000, got 1001"},
		{[]string{"--poll.page-size=-5"}, "page size must be at least 1, got -5"},
		{[]string{"--poll.concurrency=-2"}, "concurrency must be at least 1, got -2"},
		{[]string{"--poll.max-tracked-runs=-1"}, "max tracked runs must be at least 1, got -1"},
		{[]string{"--metrics.max-flows=-1"}, "max flows must be at least 1, got -1"},
		{[]string{"--metrics.duration-buckets=1,1"}, "duration buckets must increase, got [1 1]"},
		{[]string{"--shard.count=2", "--shard.index=2"}, "shard index must be in [0, shard count), got index 2 of 2"},
		{[]string{"--shard.index=1"}, "shard index must be in [0, shard count), got index 1 of 1"},
		{[]string{"--poll.timeout=-1s"}, "poll timeout must not be negative, got -1s"},
		{[]string{"--poll.overlap-interval=-1s"}, "overlap interval must not be negative, got -1s"},
		{[]string{"--poll.projects-interval=-1s"}, "projects interval must not be negative, got -1s"},
		{[]string{"--poll.retry-window=-1h"}, "retry window must not be negative, got -1h0m0s"},
		{[]string{"--poll.late-window=-1s"}, "late window must not be negative, got -1s"},
		{[]string{"--api.rate-limit=-1"}, "rate limit must be positive, got -1"},
		{[]string{"--api.rate-limit=NaN"}, "rate limit must be positive, got NaN"},
		{[]string{"--poll.history-rate=-2"}, "history rate must be positive, got -2"},
		{[]string{"--shard.count=-1"}, "shard index must be in [0, shard count), got index 0 of -1"},
		{[]string{"--activepieces.ui-url=ap.example.com"}, `UI URL must be an http(s) URL, got "ap.example.com"`},
		{[]string{"--metrics.max-failed-steps-per-flow=-1"}, "max failed steps per flow must be at least 1, got -1"},
		{[]string{"--api.timeout=0s"}, "--api.timeout must be positive, got 0s"},
		{[]string{"--api.retries=-1"}, "--api.retries must not be negative, got -1"},
		{[]string{"--api.max-item-bytes=10"}, "--api.max-item-bytes and --api.max-flow-bytes must be at least 1024, got 10 and 8388608"},
		{[]string{"--web.max-requests=-1"}, "--web.max-requests must not be negative, got -1"},
		{[]string{"--web.telemetry-path=metrics"}, `--web.telemetry-path must start with /, got "metrics"`},
		{[]string{"--demo", "--demo.rate=0"}, "--demo.rate must be positive, got 0"},
		{[]string{"--poll.max-pages=-1", "--api.rate-limit=-1"}, "max pages must be at least 1, got -1\nrate limit must be positive, got -1"},
		{[]string{"--poll.max-pages=-1", "--api.retries=-1"}, "max pages must be at least 1, got -1\n--api.retries must not be negative, got -1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parse(t, nil, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := parse(t, nil, "--shard.count=3", "--shard.index=2", "--poll.page-size=1000"); err != nil {
		t.Errorf("a valid configuration was refused: %v", err)
	}
}

// A collector setting's 0 is its default (collector.Config), on the command line too, except
// where the flag's help gives 0 a meaning: the retry watch and the late check are then off.
func TestZeroFlagsTakeTheCollectorsDefaults(t *testing.T) {
	cli, err := parse(t, nil, "--api.rate-limit=0", "--poll.history-rate=0", "--poll.max-pages=0", "--poll.lookback=0",
		"--poll.retry-window=0", "--poll.late-window=0")
	if err != nil {
		t.Fatal(err)
	}
	got, err := cli.collectorConfig().WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d := collector.DefaultConfig()
	if got.RateLimit != d.RateLimit || got.HistoryRate != d.HistoryRate || got.MaxPages != d.MaxPages || got.Lookback != d.Lookback {
		t.Errorf("zero flags: rate limit %g, history rate %g, max pages %d, lookback %s; want the defaults",
			got.RateLimit, got.HistoryRate, got.MaxPages, got.Lookback)
	}
	if got.RetryWindow != 0 || got.LateWindow != 0 {
		t.Errorf("--poll.retry-window=0 and --poll.late-window=0 in effect: %s and %s, want 0 (off)", got.RetryWindow, got.LateWindow)
	}
}

func TestTheKeyIsNeverAFlag(t *testing.T) {
	for _, flag := range []string{"--activepieces.api-key=sk-x", "--api-key=sk-x", "--activepieces.key=sk-x"} {
		if _, err := parse(t, nil, flag); err == nil {
			t.Errorf("%s was accepted", flag)
		}
	}
}

func TestKeySource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	for _, tc := range []struct {
		name, file, env, want, err string
	}{
		{name: "env", env: " sk-env\n", want: "sk-env"},
		{name: "none", err: "no API key: set ACTIVEPIECES_API_KEY or --activepieces.api-key-file (or use --demo)"},
		{name: "file", file: "sk-file\n", env: "sk-env", want: "sk-file"},
		{name: "empty file", file: "  \n", err: "API key file " + path + " is empty"},
		{name: "byte order mark", file: "\uFEFFsk-bom\r\n", want: "sk-bom"},
		{name: "two lines", file: "sk-one\nsk-two\n", err: "API key file " + path + " holds more than one line: put only the key in it"},
		{name: "space inside", file: "sk-one two", err: "API key file " + path + " holds a character an HTTP header cannot carry (U+0020): the key is printable ASCII without spaces"},
		{name: "env with a control character", env: "sk-\x01", err: "ACTIVEPIECES_API_KEY holds a character an HTTP header cannot carry (U+0001): the key is printable ASCII without spaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.file != "" {
				p = path
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			k, err := newKeySource(p, func(string) string { return tc.env })
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || k.Get() != tc.want {
				t.Fatalf("key = %q, %v", k.Get(), err)
			}
		})
	}
	_, err := newKeySource(filepath.Join(dir, "missing"), func(string) string { return "" })
	if err == nil || !strings.HasSuffix(err.Error(), "no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
	// Rotation: the file changes, reload picks it up.
	if err := os.WriteFile(path, []byte("sk-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := newKeySource(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("sk-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := k.reload(); err != nil || !changed || k.Get() != "sk-two" {
		t.Errorf("reload: %v %v %q", changed, err, k.Get())
	}
}

// The configuration table (docs/configuration.md, linked from the README) documents every flag
// with its environment variable.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var cli CLI
	p, err := kong.New(&cli, kongOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Model.Flags {
		if f.Name == "help" {
			continue
		}
		row := "| `--" + f.Name + "` | `" + f.Envs[0] + "`"
		if !strings.Contains(string(readme), row) {
			t.Errorf("docs/configuration.md lacks the row %q", row)
		}
	}
}

// A key file that cannot be read is logged when the failure starts or changes, and when it
// ends, not on every check.
func TestKeyFileFailureIsLoggedOncePerChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("sk-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := newKeySource(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.LockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.watch(ctx, nil, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil))); close(done) }()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the failure logged", func() bool {
		return strings.Count(logs.String(), "keeping the previous API key") == 1
	})
	time.Sleep(60 * time.Millisecond) // a dozen more checks fail the same way
	// Back at once, by rename: a truncate-then-write could be read empty, another error.
	if err := os.WriteFile(path+".new", []byte("sk-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the recovery logged", func() bool {
		return strings.Contains(logs.String(), "API key file readable again")
	})
	cancel()
	<-done
	if n := strings.Count(logs.String(), "keeping the previous API key"); n != 1 {
		t.Errorf("a persisting failure was logged %d times:\n%s", n, logs.String())
	}
	if k.Get() != "sk-one" {
		t.Errorf("key = %q", k.Get())
	}
}

// Every setting of collector.Config that an operator may set has a flag, and collectorConfig
// sets each field from its own flag: every flag set to a value of its own gives exactly those
// values, and no field is left at what the flag defaults give in both configurations tried (a
// field added to Config without a line in collectorConfig fails here).
func TestEveryConfigFieldHasAFlag(t *testing.T) {
	cli, err := parse(t, nil,
		"--activepieces.url=https://ap.example.com/api", "--activepieces.project=p1", "--activepieces.project=p2",
		"--activepieces.flow=f1", "--activepieces.ui-url=https://ui.example.com",
		"--poll.interval=11s", "--poll.timeout=12m", "--poll.lookback=13h", "--poll.overlap=14m",
		"--poll.overlap-interval=15m", "--poll.flows-interval=16m", "--poll.projects-interval=17m",
		"--poll.max-pages=18", "--poll.page-size=19", "--poll.concurrency=20", "--poll.retry-window=21h",
		"--poll.late-window=22h", "--poll.history-rate=2.3", "--poll.max-tracked-runs=24", "--api.rate-limit=2.5",
		"--metrics.max-flows=26", "--metrics.max-failed-steps-per-flow=27", "--metrics.compact", "--metrics.duration-buckets=2.8,29",
		"--shard.count=31", "--shard.index=30",
		"--state.file=/tmp/state.json", "--state.reset")
	if err != nil {
		t.Fatal(err)
	}
	want := collector.Config{
		ServerURL: "https://ap.example.com/api", Projects: []string{"p1", "p2"}, Flows: []string{"f1"}, UIURL: "https://ui.example.com",
		PollInterval: 11 * time.Second, PollTimeout: 12 * time.Minute, Lookback: 13 * time.Hour, Overlap: 14 * time.Minute,
		OverlapInterval: 15 * time.Minute, FlowsInterval: 16 * time.Minute, ProjectsInterval: 17 * time.Minute,
		MaxPages: 18, PageSize: 19, Concurrency: 20, RetryWindow: 21 * time.Hour,
		LateWindow: 22 * time.Hour, HistoryRate: 2.3, MaxTrackedRuns: 24, RateLimit: 2.5,
		MaxFlows: 26, MaxFailedStepsPerFlow: 27, CompactSeries: true, DurationBuckets: []float64{2.8, 29},
		ShardCount: 31, ShardIndex: 30,
		StateFile: "/tmp/state.json", StateReset: true,
	}
	got := cli.collectorConfig()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("collectorConfig:\n got %+v\nwant %+v", got, want)
	}
	// The windows' 0 sets the other field each of them sets.
	off, err := parse(t, nil, "--poll.retry-window=0", "--poll.late-window=0")
	if err != nil {
		t.Fatal(err)
	}
	offCfg := off.collectorConfig()
	if !offCfg.RetryWatchOff || !offCfg.LateCheckOff {
		t.Errorf("--poll.retry-window=0 --poll.late-window=0: RetryWatchOff %v, LateCheckOff %v", offCfg.RetryWatchOff, offCfg.LateCheckOff)
	}
	defaults, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	def := reflect.ValueOf(defaults.collectorConfig())
	for i := range def.NumField() {
		name := def.Type().Field(i).Name
		if name == "PauseLimit" { // the platform's, not ours to set
			continue
		}
		if reflect.DeepEqual(reflect.ValueOf(got).Field(i).Interface(), def.Field(i).Interface()) &&
			reflect.DeepEqual(reflect.ValueOf(offCfg).Field(i).Interface(), def.Field(i).Interface()) {
			t.Errorf("collector.Config.%s is not set by any flag (or this test sets none)", name)
		}
	}
}
