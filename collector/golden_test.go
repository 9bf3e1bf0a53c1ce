package collector

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenFamilies are the families whose values a fixed scenario fixes exactly: all but the
// volatile ones (durations of the exporter's own polls vary).
var goldenFamilies = func() []string {
	var names []string
	for _, f := range Families() {
		if !f.Volatile {
			names = append(names, f.Name)
		}
	}
	return names
}()

// goldenScenario: two flows, history, failures in a row, a success, a running and a queued run,
// a run without startTime, an unknown status.
func goldenScenario(t *testing.T) *harness {
	var fx fixture
	h := newHarness(t, simulator.Options{Seed: 7}, Config{ServerURL: "https://ap.example.com/api"}, func(h *harness) {
		fx = seedFixture(h)
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: epoch.Add(-30 * time.Minute), Steps: 4})
	})
	h.mustPoll()
	h.mustPoll()
	at := func(s int) time.Time { return h.clock.Now().Add(time.Duration(s) * time.Second) }
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: at(1), Duration: 2 * time.Second, Steps: 2})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusTimeout, Created: at(2), Duration: 600 * time.Second, Steps: 9,
		QueueWait: 45 * time.Second, FailedStep: "step_5", FailedStepDisplay: `Wait for "approval"`})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded, Created: at(3), Duration: 700 * time.Millisecond, Steps: 3})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: "STOPPED", Created: at(4), NoStartTime: true})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusRunning, Created: at(5)})
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusQueued, Created: at(6)})
	h.clock.Advance(10 * time.Second)
	h.mustPoll()
	return h
}

func TestGoldenMetrics(t *testing.T) {
	h := goldenScenario(t)
	path := filepath.Join("testdata", "golden.prom")
	if *update {
		b, err := testutil.CollectAndFormat(h.exp, expfmt.TypeTextPlain, goldenFamilies...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(h.exp, f, goldenFamilies...); err != nil {
		t.Error(err)
	}
	h.lint()
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	h := goldenScenario(t)
	b, err := testutil.GatherAndFormat(h.reg, expfmt.TypeTextPlain)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The metrics table (docs/metrics.md, linked from the README) lists every family the exporter
// serves.
func TestREADMEDocumentsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"activepieces_exporter_api_requests_total", "activepieces_exporter_api_request_duration_seconds", "activepieces_exporter_build_info"}
	for _, f := range Families() {
		names = append(names, f.Name)
	}
	for _, n := range names {
		if !strings.Contains(string(readme), "| `"+n+"` |") {
			t.Errorf("docs/metrics.md's metrics table lacks %s", n)
		}
	}
}

// familyTable is sorted by name: the order Gather gives families, so the text rendering and
// Collect agree.
func TestFamilyTableSorted(t *testing.T) {
	names := make([]string, 0, len(familyTable))
	for _, f := range familyTable {
		names = append(names, f.name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("familyTable is not sorted by name: %v", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("familyTable has a name twice: %v", names)
	}
}

// seriesPerFlow counts the series of /metrics that carry the flow's id.
func seriesPerFlow(t *testing.T, h *harness, flowID string) int {
	t.Helper()
	var b bytes.Buffer
	if err := h.exp.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Count(b.String(), `flow_id="`+flowID+`"`)
}

// --metrics.compact halves the series per flow (README, Scaling out); the default is unchanged.
func TestCompactSeriesHalvesTheSeriesPerFlow(t *testing.T) {
	counts := map[bool]int{}
	for _, compact := range []bool{false, true} {
		var fx fixture
		h := newHarness(t, simulator.Options{}, Config{CompactSeries: compact}, func(h *harness) { fx = seedFixture(h) })
		h.mustPoll()
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Steps: 2})
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
		h.mustPoll()
		h.mustPoll()
		counts[compact] = seriesPerFlow(t, h, fx.flowA)
		h.lint()
		if compact {
			if v, ok := h.value("activepieces_project_run_duration_seconds", map[string]string{"project_id": fx.project}); !ok || v != 1 {
				t.Errorf("compact: the project's duration histogram has %v observations, want 1", v)
			}
			if v, _ := h.value("activepieces_flow_last_run_status", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 1 {
				t.Errorf("compact: last_run_status{FAILED} = %v", v)
			}
		}
	}
	t.Logf("series per flow: %d by default, %d with --metrics.compact", counts[false], counts[true])
	// A flow that has run, failed once (in one step) and has a run in flight: 42 series, plus the
	// last failure's info and timestamp and its step's failure count.
	if counts[false] != 45 || counts[true] > counts[false]/2 {
		t.Errorf("series per flow: %d by default (want 45), %d compact (want at most half)", counts[false], counts[true])
	}
}
