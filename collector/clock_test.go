package collector

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// A Date header that the runs' own times contradict is shown but not applied, and counting goes
// on as if the clocks agreed: one hour ahead (a proxy with a bad clock), in 2100, in 1970.
func TestWrongDateHeaderDoesNotStopCounting(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"an hour ahead", time.Hour},
		{"in 2100", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Sub(epoch)},
		{"in 1970", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Sub(epoch)},
		{"ten minutes behind", -10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fx fixture
			dir := t.TempDir()
			cfg := Config{StateFile: filepath.Join(dir, "state.json"), ServerURL: "sim"}
			h := newHarness(t, simulator.Options{DateSkew: tc.skew}, cfg, func(h *harness) {
				fx = seedFixture(h)
				// History: failed before the exporter started; must not be counted.
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed, Created: epoch.Add(-3 * time.Minute)})
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusRunning, Created: epoch.Add(-time.Minute)})
			})
			h.mustPoll()
			for range 4 {
				h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusSucceeded})
				h.mustPoll()
			}
			if got := h.flowValue("activepieces_flow_runs_total", fx.flowB, "status", "SUCCEEDED"); got != 4 {
				t.Errorf("SUCCEEDED = %v, want 4", got)
			}
			if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); got != 0 {
				t.Errorf("history FAILED counted %v times", got)
			}
			if got := h.flowValue("activepieces_flow_last_run_status", fx.flowA, "status", "FAILED"); got != 1 {
				t.Errorf("last-run gauge of the history run = %v, want 1", got)
			}
			date, _ := h.value("activepieces_exporter_server_clock_offset_seconds", map[string]string{"source": "date_header"})
			applied, _ := h.value("activepieces_exporter_server_clock_offset_seconds", map[string]string{"source": "applied"})
			if d := date - tc.skew.Seconds(); d < -1 || d > 1 || applied != 0 {
				t.Errorf("offset gauges: date_header %v (want %v), applied %v (want 0)", date, tc.skew.Seconds(), applied)
			}
			if n := strings.Count(h.logs.String(), "disagrees with its runs"); n != 1 {
				t.Errorf("the rejected Date was logged %d times, want once", n)
			}
			// The saved poll position is the newest run's, not the Date's.
			b, err := os.ReadFile(cfg.StateFile)
			if err != nil {
				t.Fatal(err)
			}
			var sf stateFile
			if err := json.Unmarshal(b, &sf); err != nil {
				t.Fatal(err)
			}
			if head := sf.Projects[fx.project].Head; head.After(h.clock.Now()) {
				t.Errorf("state file position %v is ahead of the server's clock %v", head, h.clock.Now())
			}
		})
	}
}

// A state file that holds a poll position in 2099 (written by an exporter that believed a Date
// in 2100) is repaired on restart against a correct server: counting resumes.
func TestStateFilePositionFromTheFutureIsRepaired(t *testing.T) {
	var fx fixture
	path := filepath.Join(t.TempDir(), "state.json")
	cfg := Config{StateFile: path, ServerURL: "sim"}
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	h.exp.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sf map[string]any
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	sf["projects"].(map[string]any)[fx.project].(map[string]any)["head"] = "2099-12-31T23:00:00Z"
	if b, err = json.Marshal(sf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	h.mustPoll() // the repair
	for range 3 {
		h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
		h.mustPoll()
	}
	if got := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); got != 3 {
		t.Errorf("after the repair FAILED = %v, want 3", got)
	}
	if head := h.exp.m().projects[fx.project].head; head.Year() != epoch.Year() {
		t.Errorf("poll position %v not repaired", head)
	}
	if !strings.Contains(h.logs.String(), "poll position far ahead") {
		t.Error("the repair was not logged")
	}
}

// A server on our own clock (as --demo is) shows no offset, however long between ticks: the Date
// of an answer a tick ago is not compared with the clock of now. No clock warning in 10 s of Run
// with ticks 3 s apart (the old code logged one on most ticks).
func TestSameClockLogsNoOffset(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of polling")
	}
	sim := simulator.New(simulator.Options{})
	for _, name := range []string{"a", "b"} {
		f := sim.AddFlow(sim.AddProject(name), "", "relay")
		sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusSucceeded})
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey }})
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.LockedBuffer
	exp, err := New(Config{PollInterval: 6 * time.Second, RateLimit: 1000}, client, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp.Run(ctx)
	if strings.Contains(logs.String(), "clock") {
		t.Errorf("clock warnings with the server on our own clock:\n%s", logs.String())
	}
}
