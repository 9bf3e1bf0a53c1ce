package collector

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// durationLeftOut checks that flow A's last run was counted but its unknowable duration not
// observed: the histogram count stays one below the run count.
func durationLeftOut(t *testing.T, h *harness, fx fixture) {
	var runs float64
	for _, m := range h.family("activepieces_flow_runs_total") {
		if label(m, "flow_id") == fx.flowA {
			runs += m.GetCounter().GetValue()
		}
	}
	if n, _ := h.value("activepieces_flow_run_duration_seconds", map[string]string{"flow_id": fx.flowA}); n != runs-1 {
		t.Errorf("duration observations = %v, runs = %v: want the bad duration left out", n, runs)
	}
}

// TestFaultSuite injects one fault per case while runs keep coming. In each: the exporter keeps
// serving, the fault is visible in a metric, a persisting failure is logged once, and after the
// API recovers the totals equal the simulator's own record (every run counted exactly once).
func TestFaultSuite(t *testing.T) {
	for _, tc := range faultCases {
		t.Run(tc.name, func(t *testing.T) { runFaultCase(t, tc) })
	}
}

const faultRunsPath = "/api/v1/flow-runs"

// serverErrorFault answers every run listing with code and an Activepieces-shaped error body.
func serverErrorFault(code int) simulator.Fault {
	return simulator.Fault{Path: faultRunsPath, Status: code, Times: -1,
		Body: `{"statusCode":` + strconv.Itoa(code) + `,"code":"ERR_X","error":"` + http.StatusText(code) + `","message":"boom"}`}
}

// faultCheck is a metric that shows the fault: the sum of the series of metric with labels is at
// least min.
type faultCheck struct {
	metric string
	labels map[string]string
	min    float64
}

// faultCase is one case of TestFaultSuite.
type faultCase struct {
	name   string
	opts   simulator.Options
	fault  func(h *harness, fx fixture) // injected before the failing polls
	polls  int                          // polls while the fault is active
	failed bool                         // the polls fail (poll_failures_total grows, up is 0)
	check  faultCheck                   // a metric that shows the fault
	logOne string                       // a log message that must appear exactly once
	extra  func(t *testing.T, h *harness, fx fixture)
}

var faultCases = []faultCase{
	{name: "429 with Retry-After seconds, then recovery within the retries", polls: 1,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 429, Header: http.Header{"Retry-After": {"1"}},
				Body: `{"statusCode":429,"error":"Too Many Requests","message":"Rate limit exceeded, retry in 1 minute"}`})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "429"}, 1}},
	{name: "429 with Retry-After HTTP-date", polls: 1,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 429,
				Header: http.Header{"Retry-After": {time.Now().Add(time.Second).UTC().Format(http.TimeFormat)}}})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "429"}, 1}},
	{name: "429 without Retry-After, persisting", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 429, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "429"}, 4}},
	{name: "500 burst", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) { h.sim.InjectFault(serverErrorFault(500)) },
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "500"}, 2}},
	{name: "502 burst", polls: 2, failed: true,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 502, Times: -1, Body: "<html>Bad Gateway</html>"})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "502"}, 4}},
	{name: "503 burst", polls: 2, failed: true,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 503, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "503"}, 4}},
	{name: "504 burst", polls: 2, failed: true,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 504, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "504"}, 4}},
	{name: "connection resets", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Reset: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "error"}, 4}},
	{name: "slower than the timeout", polls: 1, failed: true,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Delay: 3 * time.Second, Times: 2})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "error"}, 2}},
	{name: "truncated JSON", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Truncate: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_poll_failures_total", nil, 2}},
	{name: "malformed JSON", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 200, Body: `{"data":[{"id":"x" "created":1}]}`, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "decode_error"}, 2}},
	{name: "a run whose created time cannot be decoded", polls: 2,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, Status: 200, Times: -1,
				Body: `{"data":[{"id":"xxxxxxxxxxxxxxxxxxxxx","created":"not a time","status":"FAILED"}],"next":null}`})
		},
		check: faultCheck{"activepieces_exporter_invalid_runs_total", nil, 2}},
	// A server ignoring the page size: more items than 2 × limit + 10 is refused (memory
	// follows the page size asked for); the runs are counted once it pages again. Every
	// listing is huge while the fault lasts (a retry after a slow answer gets one too).
	{name: "a page of 2,000 runs", polls: 1, failed: true,
		fault: func(h *harness, fx fixture) {
			for i := 0; i < 2000; i++ {
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
			}
			h.clock.Advance(20 * time.Second)
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, HugePage: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "size_error"}, 1}},
	{name: "cursor loop", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, fx fixture) {
			for i := 0; i < 250; i++ {
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
			}
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, LoopCursor: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_poll_failures_total", nil, 2}},
	{name: "next that never ends", polls: 2,
		fault: func(h *harness, _ fixture) {
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, EndlessNext: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_poll_page_cap_hits_total", nil, 2}},
	{name: "server ignoring createdAfter", polls: 3,
		fault: func(h *harness, fx fixture) {
			// Finished runs counted long ago, far outside the overlap window by now, that such a
			// server lists again.
			for i := range 30 {
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
			}
			h.mustPoll()
			h.clock.Advance(20 * time.Minute)
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
			h.mustPoll()
			h.mustPoll()
			h.sim.InjectFault(simulator.Fault{Path: faultRunsPath, IgnoreCreatedAfter: true, Times: -1})
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"endpoint": "flow-runs"}, 1},
		extra: func(t *testing.T, h *harness, fx fixture) {
			if v, _ := h.value("activepieces_flow_runs_total", map[string]string{"flow_id": fx.flowA, "status": "FAILED"}); v != 30 {
				t.Errorf("FAILED = %v while the server re-lists old runs, want the 30 counted once", v)
			}
		}},
	{name: "unknown statuses", polls: 2, opts: simulator.Options{OldServer: true},
		fault: func(h *harness, fx fixture) {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: "STOPPED"})
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: "EXPLODED_IN_2030"})
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: "lower case nonsense!"})
		},
		check: faultCheck{"activepieces_flow_runs_total", map[string]string{"status": "EXPLODED_IN_2030"}, 1}},
	{name: "missing startTime", polls: 1,
		fault: func(h *harness, fx fixture) {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, NoStartTime: true})
		},
		check: faultCheck{"activepieces_flow_runs_total", map[string]string{"status": "FAILED"}, 1},
		extra: durationLeftOut},

	{name: "clock skew and negative durations", polls: 1, opts: simulator.Options{OldServer: true},
		fault: func(h *harness, fx fixture) {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Duration: -5 * time.Second})
		},
		check: faultCheck{"activepieces_flow_runs_total", map[string]string{"status": "SUCCEEDED"}, 1},
		extra: durationLeftOut},

	{name: "absurd duration", polls: 1,
		fault: func(h *harness, fx fixture) {
			h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Duration: 5 * 365 * 24 * time.Hour})
		},
		check: faultCheck{"activepieces_flow_runs_total", map[string]string{"status": "SUCCEEDED"}, 1},
		extra: durationLeftOut},

	{name: "flow renamed between polls", polls: 2,
		fault: func(h *harness, fx fixture) {
			h.sim.RenameFlow(fx.flowA, "Renamed")
			h.clock.Advance(5 * time.Minute) // the next flow listing is due
		},
		check: faultCheck{"activepieces_flow_info", map[string]string{"flow_name": "Renamed"}, 1}},
	{name: "project deleted mid-poll", polls: 1,
		fault: func(h *harness, fx fixture) {
			p := h.sim.AddProject("Doomed")
			f := h.sim.AddFlow(p, "", "Doomed flow")
			h.mustPoll()
			h.sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed})
			h.sim.DeleteProject(p)
		},
		extra: func(t *testing.T, h *harness, fx fixture) {
			if strings.Contains(h.text(), "Doomed") {
				t.Error("the deleted project's series are still served")
			}
		},
		check: faultCheck{"activepieces_flow_info", map[string]string{"flow_name": "Sync CRM leads"}, 1}},
	{name: "401 after a key rotation", polls: 2, failed: true, logOne: "poll of project failed",
		fault: func(h *harness, _ fixture) {
			h.sim.SetAPIKey("sk-rotated00000000000000000000000000000000000000000000000000000")
		},
		check: faultCheck{"activepieces_exporter_api_requests_total", map[string]string{"code": "401"}, 2}},
}

// runFaultCase seeds a project, polls it healthy, injects tc's fault and polls through it, checks
// what the fault shows, then recovers and checks that every run was counted exactly once.
func runFaultCase(t *testing.T, tc faultCase) {
	var fx fixture
	h := newHarness(t, tc.opts, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded})
	running := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusRunning})
	h.mustPoll()
	before := h.logs.String()

	tc.fault(h, fx)
	h.sim.SetRunStatus(running, apiclient.StatusFailed)
	pollThroughFault(t, h, fx, tc)
	sum := faultCheckSum(h, tc.check)
	if sum < tc.check.min {
		t.Errorf("%s%v = %v, want at least %v", tc.check.metric, tc.check.labels, sum, tc.check.min)
	}
	if tc.extra != nil {
		tc.extra(t, h, fx)
	}
	if tc.logOne != "" {
		if n := strings.Count(strings.TrimPrefix(h.logs.String(), before), `"msg":"`+tc.logOne+`"`); n != 1 {
			t.Errorf("%q logged %d times over %d failing polls, want once\n%s", tc.logOne, n, tc.polls, strings.TrimPrefix(h.logs.String(), before))
		}
	}

	// Recovery.
	h.sim.ClearFaults()
	h.sim.SetAPIKey(simulator.DefaultAPIKey)
	for i := 0; i < 4; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusTimeout})
		h.mustPoll()
	}
	if up, _ := h.value("activepieces_up", nil); up != 1 {
		t.Errorf("activepieces_up = %v after recovery", up)
	}
	n := h.assertTotals()
	t.Logf("after recovery: %d finished runs in the simulator's record, %d counted per flow and status alike; %s = %v during the fault",
		n, n, tc.check.metric, sum)
	h.lint()
}

// pollThroughFault polls tc.polls times while the fault is active, a new run before each: each
// poll fails or not as tc says, and the exporter keeps serving with activepieces_up to match.
func pollThroughFault(t *testing.T, h *harness, fx fixture, tc faultCase) {
	t.Helper()
	for i := 0; i < tc.polls; i++ {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
		err := h.poll()
		if (err != nil) != tc.failed {
			t.Fatalf("poll %d error = %v, want failure %v", i, err, tc.failed)
		}
		if _, err := h.reg.Gather(); err != nil {
			t.Fatalf("the exporter stopped serving: %v", err)
		}
		if up, _ := h.value("activepieces_up", nil); (up == 0) != tc.failed {
			t.Errorf("activepieces_up = %v during the fault", up)
		}
	}
}

// faultCheckSum sums the series of c.metric that carry all of c.labels (counters and gauges alike).
func faultCheckSum(h *harness, c faultCheck) float64 {
	var sum float64
	for _, m := range h.family(c.metric) {
		ok := true
		for k, v := range c.labels {
			ok = ok && label(m, k) == v
		}
		if ok {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// "stepsCount": 1e400 is valid JSON but no float64: the run is counted without its task count,
// and the poll position moves past it (it froze the project before).
func TestOutOfRangeNumberDoesNotFreezeAProject(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	id := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Steps: 3})
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flow-runs", Times: -1, Rewrite: func(body []byte) []byte {
		return bytes.ReplaceAll(body, []byte(`"stepsCount":3`), []byte(`"stepsCount":1e400`))
	}})
	h.mustPoll()
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusSucceeded, Steps: 2})
	h.mustPoll()
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); got != 1 {
		t.Errorf("run with stepsCount 1e400 counted %v times, want 1", got)
	}
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "SUCCEEDED"); got != 1 {
		t.Errorf("the next run counted %v times: the project froze", got)
	}
	if got := h.flowValue("activepieces_flow_run_tasks_total", fx.flowA); got != 2 {
		t.Errorf("tasks = %v, want only the plausible 2", got)
	}
	if !strings.Contains(h.logs.String(), "fields that cannot be decoded") {
		t.Error("the dropped field was not logged")
	}
	_ = id
}

// A flows listing whose next never ends (hostile round 3, item 3) is bounded by what a project
// can plausibly hold, not by 1,000 pages of whole flows: it fails clearly after 20,000 flows,
// having kept only what a flow needs (names cut to label size), and the exporter goes on.
func TestEndlessFlowsListingIsBounded(t *testing.T) {
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) {
		p := h.sim.AddProject("Endless")
		for i := range 100 {
			h.sim.AddFlow(p, "", fmt.Sprintf("%04d %s", i, strings.Repeat("x", 1000)))
		}
	})
	h.sim.InjectFault(simulator.Fault{Path: "/api/v1/flows", EndlessNext: true, Times: -1})
	err := h.poll()
	if err == nil || !strings.Contains(err.Error(), "more than 20000 flows") {
		t.Fatalf("poll error = %v, want the listing bounded at 20000 flows", err)
	}
	if n := h.sim.CountRequests("/api/v1/flows"); n > 202 {
		t.Errorf("%d flow pages read for a project of 100 flows a page: the bound is 20,000 flows", n)
	}
	if v, _ := h.value("activepieces_exporter_poll_failures_total", nil); v != 1 {
		t.Errorf("poll failures = %v, want 1", v)
	}
	if v, _ := h.value("activepieces_up", nil); v != 0 {
		t.Errorf("up = %v, want 0", v)
	}
}
