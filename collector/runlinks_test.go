package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// From the alert to the run: the last failure names its run, its failed step and links to the
// run in the UI; one series per flow, replaced by each newer failure; failures are counted by
// step, at most MaxFailedStepsPerFlow steps a flow and the rest as "other".
func TestLastFailureLinksTheRunAndItsStep(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{ServerURL: "https://ap.example.com/api/", MaxFailedStepsPerFlow: 2},
		func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	at := func(s int) time.Time { return h.clock.Now().Add(time.Duration(s) * time.Second) }
	add := func(s int, st apiclient.RunStatus, step, display string) string {
		return h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: st, Created: at(s), FailedStep: step, FailedStepDisplay: display,
			NoFailedStep: step == "" && st.IsFailure()})
	}
	add(1, apiclient.StatusFailed, "step_1", "Fetch invoices")
	add(2, apiclient.StatusFailed, "step_3", "Post to Slack")
	add(3, apiclient.StatusSucceeded, "", "")
	add(4, apiclient.StatusFailed, "step_4", "Update sheet") // a third step: "other"
	last := add(5, apiclient.StatusInternalError, "step_1", "Fetch invoices (v2)")
	h.clock.Advance(10 * time.Second)
	h.mustPoll()

	want := `
# HELP activepieces_flow_last_failure_info The flow's most recent execution that ended FAILED, INTERNAL_ERROR, QUOTA_EXCEEDED, TIMEOUT or MEMORY_LIMIT_EXCEEDED: its run, the step it failed in (display name and name; empty when the server does not say) and a link to the run in the Activepieces UI; always 1, one series per flow that has failed, replaced when a newer execution fails.` + polled + `
# TYPE activepieces_flow_last_failure_info gauge
activepieces_flow_last_failure_info{failed_step="Fetch invoices (v2)",failed_step_name="step_1",flow_id="FLOW",flow_name="Sync CRM leads",project_id="PROJECT",run_id="RUN",run_url="https://ap.example.com/projects/PROJECT/runs/RUN",status="INTERNAL_ERROR"} 1
# HELP activepieces_flow_run_failures_by_step_total Counted failed executions by the step that failed (step: its display name, step_name: its name; both empty when the server does not say, "other" beyond --metrics.max-failed-steps-per-flow steps). Only steps that failed have series.` + polled + `
# TYPE activepieces_flow_run_failures_by_step_total counter
activepieces_flow_run_failures_by_step_total{flow_id="FLOW",flow_name="Sync CRM leads",project_id="PROJECT",status="FAILED",step="Fetch invoices (v2)",step_name="step_1"} 1
activepieces_flow_run_failures_by_step_total{flow_id="FLOW",flow_name="Sync CRM leads",project_id="PROJECT",status="INTERNAL_ERROR",step="Fetch invoices (v2)",step_name="step_1"} 1
activepieces_flow_run_failures_by_step_total{flow_id="FLOW",flow_name="Sync CRM leads",project_id="PROJECT",status="FAILED",step="other",step_name="other"} 1
activepieces_flow_run_failures_by_step_total{flow_id="FLOW",flow_name="Sync CRM leads",project_id="PROJECT",status="FAILED",step="Post to Slack",step_name="step_3"} 1
`
	want = strings.NewReplacer("FLOW", fx.flowA, "PROJECT", fx.project, "RUN", last).Replace(want)
	if err := testutil.CollectAndCompare(h.exp, strings.NewReader(want), "activepieces_flow_last_failure_info", "activepieces_flow_run_failures_by_step_total"); err != nil {
		t.Error(err)
	}

	// A newer failure without a failed step (a run that timed out as a whole) replaces the
	// series: still one per flow.
	newest := add(1, apiclient.StatusTimeout, "", "")
	h.clock.Advance(10 * time.Second)
	h.mustPoll()
	infos := h.family("activepieces_flow_last_failure_info")
	if len(infos) != 1 || label(infos[0], "run_id") != newest || label(infos[0], "failed_step") != "" || label(infos[0], "failed_step_name") != "" || label(infos[0], "status") != "TIMEOUT" {
		t.Errorf("after a newer failure without a step: %v", infos)
	}
	if v, _ := h.value("activepieces_flow_run_failures_by_step_total", map[string]string{"step_name": "", "status": "TIMEOUT"}); v != 1 {
		t.Errorf("failures without a step counted %v, want 1 under an empty step", v)
	}
	if v, _ := h.value("activepieces_flow_last_failure_timestamp_seconds", map[string]string{"flow_id": fx.flowA}); v != float64(h.sim.Run(newest).FinishTime.UnixMilli())/1000 {
		t.Errorf("last_failure_timestamp = %v, want the finish of %s", v, newest)
	}
	// Flow B never failed: no series.
	if _, ok := h.value("activepieces_flow_last_failure_info", map[string]string{"flow_id": fx.flowB}); ok {
		t.Error("a flow that never failed has a last failure")
	}
	h.lint()
}

// Old servers name the failed step only by failedStepName: both labels carry it.
func TestLastFailureOnAnOldServer(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{OldServer: true}, Config{ServerURL: "http://10.0.0.5:8080/api"}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	id := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusFailed, Created: h.clock.Now().Add(time.Second)})
	h.clock.Advance(10 * time.Second)
	h.mustPoll()
	infos := h.family("activepieces_flow_last_failure_info")
	if len(infos) != 1 || label(infos[0], "failed_step") != "step_2" || label(infos[0], "failed_step_name") != "step_2" ||
		label(infos[0], "run_url") != "http://10.0.0.5:8080/projects/"+fx.project+"/runs/"+id {
		t.Errorf("last failure on an old server: %v", infos)
	}
}

// Queue wait: startTime − created of counted executions, per project; runs without a start are
// skipped.
func TestQueueWaitIsObservedPerProject(t *testing.T) {
	var fx fixture
	h := newHarness(t, simulator.Options{}, Config{}, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.mustPoll()
	for i, w := range []time.Duration{200 * time.Millisecond, 20 * time.Second, 20 * time.Minute} {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Created: h.clock.Now().Add(time.Duration(i) * time.Second), QueueWait: w})
	}
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusFailed, Created: h.clock.Now(), NoStartTime: true})
	h.clock.Advance(30 * time.Minute)
	h.mustPoll()
	want := `
# HELP activepieces_flow_run_queue_wait_seconds Time counted executions of the project's flows waited between creation and start (startTime - created; unknown or negative waits and re-opened runs are skipped): the saturation of the platform's workers.` + polled + `
# TYPE activepieces_flow_run_queue_wait_seconds histogram
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="0.1"} 0
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="0.5"} 1
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="1"} 1
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="2.5"} 1
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="5"} 1
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="10"} 1
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="30"} 2
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="60"} 2
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="300"} 2
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="900"} 2
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="3600"} 3
activepieces_flow_run_queue_wait_seconds_bucket{project_id="PROJECT",le="+Inf"} 3
activepieces_flow_run_queue_wait_seconds_sum{project_id="PROJECT"} 1220.2
activepieces_flow_run_queue_wait_seconds_count{project_id="PROJECT"} 3
`
	want = strings.ReplaceAll(want, "PROJECT", fx.project)
	if err := testutil.CollectAndCompare(h.exp, strings.NewReader(want), "activepieces_flow_run_queue_wait_seconds"); err != nil {
		t.Error(err)
	}
}
