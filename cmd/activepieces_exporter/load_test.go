package main

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

var (
	load         = flag.Bool("load", false, "run the load test (make bench)")
	loadRate     = flag.Float64("load.rate", 100, "runs per second the simulator creates")
	loadDuration = flag.Duration("load.duration", 60*time.Second, "how long runs are created")
	loadFlows    = flag.Int("load.flows", 0, "TestTimeToReadyByPlatformSize: only this platform size")
	loadDefaults = flag.Bool("load.defaults", false, "TestThousandIdleProjects: at the true defaults (about 20 minutes) instead of their ratio scaled up 20×")
)

// TestLoad runs the built exporter (polling every 5 s) against the simulator creating runs at
// 100/s for 60 s, then compares what it counted with what was produced, and reports its CPU time
// and resident memory from its own process metrics.
func TestLoad(t *testing.T) {
	if !*load {
		t.Skip("pass -load")
	}
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{Raw: true})
	gen := simulator.NewGenerator(sim, *loadRate, 11)
	// An execution the exporter cannot see before a retry overwrites its row is lost (README):
	// retries here come after the exporter has had its chance, 35 s after a failure shows, beyond
	// the flow refresh (which sees finished runs re-opened) and the overlap sweep (which sees
	// rows that show late) below.
	gen.MinRetryDelay = 35 * time.Second
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t0 := time.Now()
	// The generator retries failed runs on their rows: those second finishes are seen at the next
	// flow refresh (--poll.flows-interval), here every 30 s so that the settle below sees them.
	p := startExporter(t, bin, "--activepieces.url="+srv.URL+"/api", "--poll.interval=5s", "--poll.flows-interval=30s",
		"--poll.overlap-interval=15s", "--api.rate-limit=1000")
	ctx, stop := context.WithTimeout(context.Background(), *loadDuration)
	defer stop()
	gen.Run(ctx, 100*time.Millisecond)
	// Rows that became visible late (the generator makes 3%, 3-15 s late) are caught by the next
	// overlap sweep, at most --poll.overlap-interval (1 min) after they show, and retries by the
	// next flow refresh: wait that long.
	got, want, produced := settle(t, sim, p, t0, 90*time.Second)
	checkNoRace(t, p.logs.String())
	counted := 0
	for _, v := range got {
		counted += v
	}
	mfs := scrapeFamilies(t, p.addr)
	cpu, rss := sumOf(mfs, "process_cpu_seconds_total"), sumOf(mfs, "process_resident_memory_bytes")
	requests := sumOf(mfs, "activepieces_exporter_api_requests_total")
	elapsed := time.Since(t0)
	t.Logf("load: %.0f runs/s for %s, poll every 5 s: produced %d finished runs, counted %d; exporter CPU %.2f s over %s (%.1f%% of a core), RSS %.1f MiB, %d API requests",
		*loadRate, *loadDuration, produced, counted, cpu, elapsed.Round(time.Second), 100*cpu/elapsed.Seconds(), rss/(1<<20), int(requests))
	if !equalCounts(got, want) {
		var diff []string
		for k, v := range want {
			if got[k] != v {
				diff = append(diff, fmt.Sprintf("%s/%s: counted %d of %d", k.FlowID, k.Status, got[k], v))
			}
		}
		sort.Strings(diff)
		t.Fatalf("counted %d of %d produced runs:\n%s", counted, produced, strings.Join(diff, "\n"))
	}
}

// TestBigPlatformTimeToReady (make bench): the built exporter, default rate limit (10/s) and
// --poll.interval=5s, against 20 projects × 500 flows with 100,000 runs created in the last hour
// (5,000 of them RUNNING): how long until /-/ready, and until every flow is exported.
func TestBigPlatformTimeToReady(t *testing.T) {
	if !*load {
		t.Skip("pass -load")
	}
	bin := buildBinary(t)
	sim := platform(20, 500, 10, 2) // 5,000 running: the first run of every second flow
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t0 := time.Now()
	p := startExporterWithin(t, 5*time.Minute, bin, "--activepieces.url="+srv.URL+"/api", "--poll.interval=5s")
	ready := time.Since(t0)
	var flows int
	testkit.WaitFor(t, 5*time.Minute, "every flow exported", func() bool {
		text, _, _ := scrape("http://" + p.addr + "/metrics")
		flows = strings.Count(text, "activepieces_flow_info{")
		return flows == 10000
	})
	all := time.Since(t0)
	requests := int(sumOf(scrapeFamilies(t, p.addr), "activepieces_exporter_api_requests_total"))
	t.Logf("20 projects × 500 flows, 100,000 runs (5,000 running), poll every 5 s at 10 requests/s: ready after %s, all %d flows exported after %s, %d API requests",
		ready.Round(100*time.Millisecond), flows, all.Round(100*time.Millisecond), requests)
	if ready > 30*time.Second || all > 45*time.Second {
		t.Errorf("ready after %s (target 30 s), every flow after %s (target 45 s)", ready, all)
	}
}

// TestThousandIdleProjects (make bench): 1,000 projects of 2 flows, idle, with the default
// ratio of rate limit to poll interval scaled up 20× to keep the test short (200 requests/s,
// polls every 1.5 s, flows every 15 s; the defaults are 10/s, 30 s and 5 min, which
// -load.defaults uses): every project is polled, no poll fails for
// lack of time, the effective period is within 20% of what the exporter predicts (projects ×
// requests per poll / rate limit) and RSS stays under 100 MB.
func TestThousandIdleProjects(t *testing.T) {
	if !*load {
		t.Skip("pass -load")
	}
	interval, flowsInterval, rateLimit := 1.5, 15.0, 200.0
	if *loadDefaults {
		interval, flowsInterval, rateLimit = 30, 300, 10
	}
	// What the exporter predicts (and check prints): the period P with P = 1000 × (1 + 1 ×
	// min(1, P/flowsInterval)) / rateLimit, a flow refresh costing 1 request: the flows (these
	// are in no folder, so folders are not listed; and a project without runs has no window to
	// count).
	predicted := interval
	for range 50 {
		predicted = max(interval, 1000*(1+min(1, predicted/flowsInterval))/rateLimit)
	}
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{Raw: true})
	for p := range 1000 {
		pid := sim.AddProject(fmt.Sprintf("Customer %04d", p))
		sim.AddFlow(pid, "", "Welcome email")
		sim.AddFlow(pid, "", "Weekly digest")
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t0 := time.Now()
	p := startExporterWithin(t, 20*time.Minute, bin, "--activepieces.url="+srv.URL+"/api",
		fmt.Sprintf("--poll.interval=%gs", interval), fmt.Sprintf("--poll.flows-interval=%gs", flowsInterval),
		fmt.Sprintf("--api.rate-limit=%g", rateLimit))
	ready := time.Since(t0)
	time.Sleep(time.Duration(3*predicted) * time.Second) // steady state
	mfs := scrapeFamilies(t, p.addr)
	var periods []float64
	for _, m := range mfs["activepieces_exporter_poll_period_seconds"].GetMetric() {
		periods = append(periods, m.GetGauge().GetValue())
	}
	sort.Float64s(periods)
	failures := sumOf(mfs, "activepieces_exporter_poll_failures_total")
	rss := sumOf(mfs, "process_resident_memory_bytes") / (1 << 20)
	median := periods[len(periods)/2]
	t.Logf("1,000 idle projects at %g requests/s, %g s interval, %g s flow refresh: ready after %s; poll period median %.1f s (predicted %.1f s), min %.1f, max %.1f; %d projects with a period; %.0f poll failures; RSS %.1f MiB",
		rateLimit, interval, flowsInterval, ready.Round(time.Second), median, predicted, periods[0], periods[len(periods)-1], len(periods), failures, rss)
	if len(periods) != 1000 || failures != 0 || rss > 100 || median < 0.8*predicted || median > 1.2*predicted {
		t.Errorf("want every project polled (%d), no failures (%.0f), RSS under 100 MiB (%.1f), median period within 20%% of %.1f s (%.1f)",
			len(periods), failures, rss, predicted, median)
	}
}

// TestTimeToReadyByPlatformSize (make bench): time to /-/ready and to every flow exported for
// 1k, 10k and 50k flows over 20 projects, 2 runs a flow in the last hour (a tenth running),
// default rate limit and poll interval (--metrics.max-flows raised to the platform's size).
func TestTimeToReadyByPlatformSize(t *testing.T) {
	if !*load {
		t.Skip("pass -load")
	}
	bin := buildBinary(t)
	sizes := []int{1000, 10000, 50000}
	if *loadFlows > 0 {
		sizes = []int{*loadFlows}
	}
	for _, flows := range sizes {
		sim := platform(20, flows/20, 2, 10) // a tenth of the flows have a run in flight
		srv := httptest.NewServer(sim)
		t0 := time.Now()
		p := startExporterWithin(t, 10*time.Minute, bin, "--activepieces.url="+srv.URL+"/api", "--metrics.max-flows="+strconv.Itoa(flows))
		ready := time.Since(t0)
		for { // /metrics is large here (about 150 bytes a series): look every 2 s, not continuously
			text, _, _ := scrape("http://" + p.addr + "/metrics")
			if strings.Count(text, "activepieces_flow_info{") == flows {
				break
			}
			if time.Since(t0) > 10*time.Minute {
				t.Fatalf("%d flows: not all exported after 10 minutes", flows)
			}
			time.Sleep(2 * time.Second)
		}
		t.Logf("%d flows over 20 projects, %d runs (%d running), defaults (30 s, 10 requests/s): ready after %s, every flow exported after %s",
			flows, flows*2, flows/10, ready.Round(100*time.Millisecond), time.Since(t0).Round(100*time.Millisecond))
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		srv.Close()
	}
}

// platform is a simulated platform of projects × flows, each flow with runs created within the
// last hour; the first run of every runningEvery-th flow is RUNNING, the others SUCCEEDED.
func platform(projects, flowsPerProject, runsPerFlow, runningEvery int) *simulator.Server {
	sim := simulator.New(simulator.Options{Raw: true})
	now := time.Now()
	for p := range projects {
		pid := sim.AddProject("Project " + strconv.Itoa(p))
		for f := range flowsPerProject {
			fid := sim.AddFlow(pid, "", "Flow "+strconv.Itoa(f))
			for r := range runsPerFlow {
				st := apiclient.StatusSucceeded
				if r == 0 && f%runningEvery == 0 {
					st = apiclient.StatusRunning
				}
				ago := time.Duration(1+(p*flowsPerProject*runsPerFlow+f*runsPerFlow+r)%3500) * time.Second
				sim.AddRun(simulator.RunSpec{FlowID: fid, Status: st, Created: now.Add(-ago)})
			}
		}
	}
	return sim
}

// scrapeFamilies scrapes an exporter's /metrics and parses it.
func scrapeFamilies(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	text, _, err := scrape("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sumOf adds up the values of a counter or gauge family's series.
func sumOf(mfs map[string]*dto.MetricFamily, name string) float64 {
	total := 0.0
	for _, m := range mfs[name].GetMetric() {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}
