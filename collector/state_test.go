package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

func TestRestartFromStateCountsEveryRunOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := Config{StateFile: state, ServerURL: "sim", PageSize: 10, MaxPages: 3}
	var fx fixture
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	firstStart := h.exp.startedAt
	h.mustPoll()
	h.mustPoll()
	produce := func(n int, st apiclient.RunStatus) {
		for i := 0; i < n; i++ {
			h.sim.AddRun(simulator.RunSpec{FlowID: []string{fx.flowA, fx.flowB}[i%2], Status: st, Created: h.clock.Now().Add(time.Duration(i) * time.Millisecond)})
		}
	}
	produce(15, apiclient.StatusFailed)
	running := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	paused := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB, Status: apiclient.StatusPaused})
	h.mustPoll()
	// Time passes: the in-flight runs fall out of the overlap window, only tracking finds them.
	h.clock.Advance(5 * time.Minute)
	produce(3, apiclient.StatusFailed)
	h.mustPoll()
	h.mustPoll()
	before := h.counts()

	// The process dies between polls (nothing runs at exit); meanwhile runs keep coming and the
	// in-flight ones finish.
	h.clock.Advance(10 * time.Minute)
	produce(95, apiclient.StatusSucceeded) // more than one poll's page cap: a backlog
	h.sim.SetRunStatus(running, apiclient.StatusTimeout)
	h.sim.SetRunStatus(paused, apiclient.StatusSucceeded)

	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	if got := h.counts(); len(got) != len(before) || got[simulator.Key{FlowID: fx.flowA, Status: "FAILED"}] != before[simulator.Key{FlowID: fx.flowA, Status: "FAILED"}] {
		t.Fatalf("counters did not continue from the state: before %v, after restart %v", before, got)
	}
	for i := 0; i < 6; i++ {
		h.mustPoll()
	}
	want := h.sim.Finished(firstStart)
	want[simulator.Key{FlowID: fx.flowA, Status: apiclient.StatusTimeout}]++ // created before the first start? no: check below
	want[simulator.Key{FlowID: fx.flowA, Status: apiclient.StatusTimeout}]-- // (it was created after: already in Finished)
	got := h.counts()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s/%s: counted %d, simulator has %d", k.FlowID, k.Status, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counted %v, want %v", got, want)
	}
}

func TestStateFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	buckets := `[0.5,1,2.5,5,10,30,60,120,300,600,1800,3600]`
	zeros := "[0" + strings.Repeat(",0", 12) + "]"
	// flowState is a state file holding one project p with one flow f of these fields.
	flowState := func(fields string) string {
		return `{"version":2,"source":"sim","durationBuckets":` + buckets + `,"projects":{"p":{"flows":{"f":{` + fields + `}}}}}`
	}
	tracked := func(n int) string {
		var runs []string
		for i := range n {
			runs = append(runs, fmt.Sprintf(`"r%d":{"flowId":"f","status":"RUNNING","created":"2026-01-01T00:00:00Z"}`, i))
		}
		return strings.Join(runs, ",")
	}
	for _, tc := range []struct {
		name, content, want string
		incompatible        bool
	}{
		{"corrupt", `{"version":1,`, "is corrupt (unexpected end of JSON input); move it away, or start fresh with --state.reset", false},
		{"not json", `hello`, "is corrupt (invalid character 'h' looking for beginning of value); move it away, or start fresh with --state.reset", false},
		{"future version", `{"version":7,"source":"sim","durationBuckets":` + buckets + `}`, "has format version 7, this exporter reads 1 to 2; start fresh with --state.reset", true},
		{"other api", `{"version":1,"source":"https://other/api","durationBuckets":` + buckets + `}`, `was written for "https://other/api", not "sim"; start fresh with --state.reset`, true},
		{"other buckets", `{"version":1,"source":"sim","durationBuckets":[1,2]}`, "has duration buckets [1 2], the exporter is configured with", true},
		{"bad flow", `{"version":1,"source":"sim","durationBuckets":` + buckets + `,"projects":{"p":{"flows":{"f":{"durationBuckets":[1]}}}}}`, "is corrupt (flow f: 1 duration buckets, want 13)", false},
		// Implausible content (hostile round 3, item 8): a clear error, not values carried on.
		{"negative counter", flowState(`"runs":{"FAILED":-5},"durationBuckets":` + zeros), "is corrupt (flow f: implausible content: runs FAILED = -5)", false},
		{"wrapped bucket", flowState(`"durationBuckets":[18446744073709551615` + strings.Repeat(",0", 12) + `],"durationCount":18446744073709551615`), "is corrupt (flow f: implausible content: a duration bucket of 18446744073709551615)", false},
		{"buckets off the count", flowState(`"durationBuckets":[3` + strings.Repeat(",0", 12) + `],"durationCount":2`), "duration buckets sum to 3, the count is 2", false},
		{"finish in 9999", flowState(`"durationBuckets":` + zeros + `,"last":{"status":"FAILED","finish":"9999-01-01T00:00:00Z","order":"9999-01-01T00:00:00Z"}`), "last run at 9999-01-01T00:00:00Z, in the future", false},
		{"too many tracked", `{"version":2,"source":"sim","durationBuckets":` + buckets + `,"projects":{"p":{"tracked":{` + tracked(3) + `}}}}`, "implausible content: 3 runs in flight, more than --poll.max-tracked-runs (2)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(tc.name+".json", tc.content)
			h := newHarness(t, simulator.Options{}, Config{}, nil)
			err := h.start(Config{StateFile: path, ServerURL: "sim", MaxTrackedRuns: 2})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to name %s and say %q", err, path, tc.want)
			}
			if errors.Is(err, ErrStateIncompatible) != tc.incompatible {
				t.Errorf("errors.Is(ErrStateIncompatible) = %v", !tc.incompatible)
			}
			// --state.reset starts fresh and overwrites the file after the next poll.
			if err := h.start(Config{StateFile: path, ServerURL: "sim", StateReset: true}); err != nil {
				t.Fatalf("with reset: %v", err)
			}
			h.mustPoll()
			if err := h.start(Config{StateFile: path, ServerURL: "sim"}); err != nil {
				t.Errorf("the file written after a reset does not load: %v", err)
			}
		})
	}
}

func TestStateIsWrittenAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	h := newHarness(t, simulator.Options{}, Config{StateFile: path, ServerURL: "sim"}, func(h *harness) { seedFixture(h) })
	h.mustPoll()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Name() != "state.json" || entries[1].Name() != "state.json.lock" {
		t.Errorf("directory holds %v, want only state.json and its lock (no temporary files left)", entries)
	}
	// The directory goes away under a running exporter: the save fails, is counted, and the
	// exporter goes on.
	gone := filepath.Join(dir, "gone")
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, simulator.Options{}, Config{StateFile: filepath.Join(gone, "state.json"), ServerURL: "sim"}, func(h *harness) { seedFixture(h) })
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	if err := h2.poll(); err == nil || !strings.Contains(err.Error(), "writing state") {
		t.Errorf("poll error = %v, want the failed save", err)
	}
	if v, _ := h2.value("activepieces_exporter_state_save_failures_total", nil); v != 1 {
		t.Errorf("state save failures = %v, want 1", v)
	}
	if v, _ := h2.value("activepieces_up", nil); v != 1 {
		t.Errorf("activepieces_up = %v: a failed save is not an API failure", v)
	}
	// A persisting failure is logged once, and its end once.
	for range 3 {
		_ = h2.poll()
	}
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	h2.mustPoll()
	if n := strings.Count(h2.logs.String(), "cannot save state"); n != 1 {
		t.Errorf("a persisting save failure was logged %d times", n)
	}
	if !strings.Contains(h2.logs.String(), "state saved again") {
		t.Error("the recovery of saving was not logged")
	}
	if v, _ := h2.value("activepieces_exporter_state_save_failures_total", nil); v != 4 {
		t.Errorf("state save failures = %v, want 4", v)
	}
}

func TestStateFileIsLockedAgainstASecondExporter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, simulator.Options{}, Config{StateFile: path, ServerURL: "sim"}, nil)
	h.mustPoll()
	api := h.client
	_, err := New(Config{StateFile: path, ServerURL: "sim"}, api, h.exp.log)
	want := "state file " + path + " is in use by another exporter (lock " + path + ".lock held)"
	if err == nil || err.Error() != want {
		t.Fatalf("second exporter: %v, want %q", err, want)
	}
	h.exp.Close()
	second, err := New(Config{StateFile: path, ServerURL: "sim"}, api, h.exp.log)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	second.Close()
}

// What the exporter learned about the server survives a restart: a server that ignores
// flowRunIds is not asked with that filter again.
func TestServerTraitsSurviveARestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := Config{StateFile: state, ServerURL: "sim"}
	var fx fixture
	h := newHarness(t, simulator.Options{IgnoreFlowRunIDs: true}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	r := h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusRunning})
	h.mustPoll()
	h.clock.Advance(10 * time.Minute)
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowB})
	h.mustPoll()
	h.mustPoll() // learns that flowRunIds is ignored
	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	h.sim.ResetRequests()
	h.mustPoll() // lists in-flight runs by status (first poll after start)
	h.sim.SetRunStatus(r, apiclient.StatusSucceeded)
	h.mustPoll() // the census sees a run in flight finish: the tracked run is re-read
	for _, req := range h.sim.Requests() {
		if req.Query.Has("flowRunIds") {
			t.Errorf("asked with flowRunIds again after the restart: %v", req.Query)
		}
	}
	if h.sim.CountRequests("/api/v1/flow-runs/"+r) == 0 {
		t.Error("the tracked run was not refreshed by id after the restart")
	}
}

// A save that fails after its temporary file was written (here: the state path became a
// directory, so the rename fails) is logged once, not on every poll: the message names the state
// file, not the temporary file's random name (hostile round 3, item 7).
func TestFailingRenameIsLoggedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, simulator.Options{}, Config{StateFile: path, ServerURL: "sim"}, func(h *harness) { seedFixture(h) })
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := h.poll(); err == nil || !strings.Contains(err.Error(), "replacing state "+path) {
			t.Fatalf("poll error = %v, want the failed rename naming %s", err, path)
		}
	}
	if n := strings.Count(h.logs.String(), "cannot save state"); n != 1 {
		t.Errorf("a persisting save failure was logged %d times in 5 polls, want once", n)
	}
}

// 40 flows with --metrics.max-flows=5: one log line says so, not 35 (hostile round 3, item 7).
func TestDroppedFlowsAreLoggedInOneLine(t *testing.T) {
	h := newHarness(t, simulator.Options{}, Config{MaxFlows: 5}, func(h *harness) {
		p := h.sim.AddProject("Many")
		for i := range 40 {
			h.sim.AddFlow(p, "", fmt.Sprintf("flow %02d", i))
		}
	})
	for range 3 {
		h.mustPoll()
	}
	if n := strings.Count(h.logs.String(), "max-flows reached"); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
	if v, _ := h.value("activepieces_exporter_flows_dropped", nil); v != 35 {
		t.Errorf("flows_dropped = %v, want 35", v)
	}
}

// Hostile round 3, item 8: temporary files that saves killed mid-way left are removed at start;
// a symlink to the state file takes the same lock (a second exporter on the alias is refused);
// a state file larger than any real one is refused before it is read.
func TestStateFileHousekeepingAndBounds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, name := range []string{".state.json.tmp-123", ".state.json.tmp-456"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half a save"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, simulator.Options{}, Config{StateFile: path, ServerURL: "sim"}, func(h *harness) { seedFixture(h) })
	h.mustPoll()
	if left, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left after start: %v", left)
	}
	alias := filepath.Join(t.TempDir(), "alias.json")
	if err := os.Symlink(path, alias); err != nil {
		t.Fatal(err)
	}
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "k" }})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := New(Config{StateFile: alias, ServerURL: "sim"}, api, slog.New(slog.DiscardHandler)); err == nil {
		e.Close()
		t.Error("a second exporter on a symlink to a state file in use started")
	} else if !strings.Contains(err.Error(), "in use by another exporter") {
		t.Errorf("err = %v, want the lock held", err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxStateBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	if e, err := New(Config{StateFile: big, ServerURL: "sim"}, api, slog.New(slog.DiscardHandler)); err == nil {
		e.Close()
		t.Error("a state file of 256 MiB was read")
	} else if !strings.Contains(err.Error(), "more than a state file can plausibly be") || !strings.Contains(err.Error(), "--state.reset") {
		t.Errorf("err = %v", err)
	}
}

// The state file is saved before a render only when something it holds of the counts changed: a
// quiet poll at rest (a census that found nothing moved) leaves it as it is (at 10k flows a save
// takes about 100 ms, and at rest every tick renders); a poll that counted a run, or a failed poll
// (its failure counter is served), saves it before the render that shows it.
func TestStateIsSavedOnlyWhenItsCountsChange(t *testing.T) {
	var fx fixture
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, simulator.Options{}, Config{StateFile: path, ServerURL: "sim"}, func(h *harness) { fx = seedFixture(h) })
	for range 3 {
		h.mustPoll()
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := read()
	h.mustPoll()
	if read() != before {
		t.Error("a poll that found nothing moved saved the state file again")
	}
	h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed})
	h.mustPoll()
	counted := read()
	if counted == before || !strings.Contains(counted, `"FAILED":1`) {
		t.Error("the poll that counted a run did not save it")
	}
	h.setKey("wrong")
	if err := h.poll(); err == nil {
		t.Fatal("a poll with a wrong key succeeded")
	}
	if !strings.Contains(read(), `"pollFailures":1`) {
		t.Error("a failed poll's counter was served unsaved")
	}
}
