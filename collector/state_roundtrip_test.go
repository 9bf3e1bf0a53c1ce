package collector

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// notSaved lists the fields of the ledger that a state file deliberately does not keep, with
// why. Every other field must survive a save and a load: TestStateRoundTripKeepsEveryField fills
// them all by reflection, so a field added to the ledger and forgotten in the state file fails it.
var notSaved = map[string]string{
	"projectState.countFrom":           "zero for a restored project: its ledger says what was seen",
	"projectState.finishedFrom":        "zero for a restored project: its ledger says what was seen",
	"projectState.clockEv":             "evidence of the poll in progress",
	"projectState.prunedAt":            "pruning schedule",
	"projectState.lastFlows":           "flows are listed again on the first poll",
	"projectState.lastFolders":         "folders are listed again with the first flow listing",
	"projectState.lastSuccess":         "set by the first poll",
	"projectState.prevSuccess":         "the period is measured anew after a restart",
	"projectState.failing":             "log state",
	"projectState.failingAt":           "log state",
	"projectState.backlogged":          "log state",
	"projectState.lastErr":             "log state",
	"projectState.watchFullLogged":     "log state",
	"projectState.watchStarted":        "the watch lists once after every start",
	"projectState.droppedFieldsLogged": "log state",
	"projectState.ignored":             "rebuilt by the first flow listing",
	"projectState.attempt":             "a restart reads afresh",
	"projectState.nextDue":             "the schedule of this process",
	"projectState.census":              "a restored project settles its census anew",
	"projectState.active":              "the first poll after a start lists new runs anyway",
	"projectState.lastListed":          "the first poll after a start lists new runs anyway",
	"projectState.watchedAt":           "the watch lists once after every start",
	"projectState.gen":                 "versions of this process's rendering",
	"flowState.bornPoll":               "a restored flow was served before",
	"flowState.bornAt":                 "a restored flow was served before",
	"flowState.exported":               "derived from --metrics.max-flows on load",
	"flowState.labels":                 "derived from the ids and name",
	"flowState.exFailed":               "exemplars restart with the process",
	"flowState.exTimeout":              "exemplars restart with the process",
	"flowState.exBuckets":              "exemplars restart with the process",
	"trackedRun.touched":               "poll sequence of this process",
	"pendingRun.backfill":              "history is applied at once, never deferred",
	"FlowRun.Invalid":                  "never sent (json:\"-\")",
	"FlowRun.Dropped":                  "never sent (json:\"-\")",
}

// fill sets every field reachable from v to a non-zero value (one entry in maps and slices).
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 6, 20, 10, *n%60, *n%60, (*n%1000)*int(time.Millisecond), time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(reflect.NewAt(v.Field(i).Type(), unsafe.Pointer(v.Field(i).UnsafeAddr())).Elem(), n)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("S%020d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.SetMapIndex(k, e)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	}
}

// clearNotSaved zeroes the fields of notSaved reachable from v.
func clearNotSaved(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := reflect.NewAt(v.Field(i).Type(), unsafe.Pointer(v.Field(i).UnsafeAddr())).Elem()
			if _, ok := notSaved[v.Type().Name()+"."+v.Type().Field(i).Name]; ok {
				f.Set(reflect.Zero(f.Type()))
				continue
			}
			clearNotSaved(f)
		}
	case reflect.Slice:
		for i := range v.Len() {
			clearNotSaved(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			clearNotSaved(e)
			v.SetMapIndex(k, e)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			clearNotSaved(v.Elem())
		}
	}
}

func TestStateRoundTripKeepsEveryField(t *testing.T) {
	cfg := Config{StateFile: filepath.Join(t.TempDir(), "state.json"), ServerURL: "sim", DurationBuckets: []float64{1, 2}}
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := New(cfg, api, log)
	if err != nil {
		t.Fatal(err)
	}
	p := &projectState{}
	n := 0
	fill(reflect.ValueOf(p).Elem(), &n)
	// What the ledger's own rules fix.
	p.started = true
	p.server.WatchLevel = 1
	p.queueWait.Buckets = make([]uint64, len(DefaultQueueWaitBuckets)+1)
	p.queueWait.Buckets[3] = 7
	for id, f := range p.flows {
		f.id = id
		f.DurBuckets = []uint64{1, 2, 3}
		f.DurCount = 6 // the buckets' sum, or the file is implausible
		f.Last.set, f.Last.durationK, f.Last.tasksK = true, true, true
	}
	e.m().projects[p.id] = p
	e.m().trackedDropped = 42
	if err := e.m().saveState(); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e2, err := New(cfg, api, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	got := e2.m().projects[p.id]
	if got == nil {
		t.Fatalf("project %s not restored", p.id)
	}
	clearNotSaved(reflect.ValueOf(p))
	clearNotSaved(reflect.ValueOf(got))
	if !reflect.DeepEqual(got, p) {
		t.Errorf("a field of the ledger does not survive the state file (add it to the file, or to notSaved with a reason):\n got %+v\nwant %+v",
			dump(got), dump(p))
	}
	if e2.m().trackedDropped != 42 {
		t.Errorf("tracked runs dropped = %v", e2.m().trackedDropped)
	}
}

func dump(p *projectState) string {
	var b strings.Builder
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := reflect.NewAt(v.Field(i).Type(), unsafe.Pointer(v.Field(i).UnsafeAddr())).Elem()
		fmt.Fprintf(&b, "\n  %s: %+v", v.Type().Field(i).Name, f.Interface())
	}
	return b.String()
}

// A state file of format version 1 (before the retry watch: ids in clear, no watched runs) is
// read: the counters carry on and its seen ids are known.
func TestStateFileVersion1IsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	v1 := `{"version":1,"source":"sim","savedAt":"2026-06-20T10:00:00Z","durationBuckets":[1,2],"trackedRunsDropped":0,
"projects":{"pppppppppppppppppppp1":{"name":"P","head":"2026-06-20T09:59:00Z","lastOverlap":"2026-06-20T09:59:00Z",
"seen":{"rrrrrrrrrrrrrrrrrrrr1":"2026-06-20T09:58:30Z"},"server":{},"tracked":{},
"flows":{"ffffffffffffffffffff1":{"name":"F","status":"ENABLED","folderId":"","runs":{"FAILED":3},"durationCount":3,
"durationSum":4.5,"durationBuckets":[1,1,1],"tasks":9,"lastSuccess":"0001-01-01T00:00:00Z","consecutiveFailures":3}},
"folders":{},"pollFailures":1,"pageCapHits":0,"invalidRuns":0}}}`
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	api, _ := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "" }})
	e, err := New(Config{StateFile: path, ServerURL: "sim", DurationBuckets: []float64{1, 2}}, api, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("a version 1 state file is refused: %v", err)
	}
	defer e.Close()
	p := e.m().projects["pppppppppppppppppppp1"]
	if p == nil || !p.seen.has("rrrrrrrrrrrrrrrrrrrr1") || p.flows["ffffffffffffffffffff1"].Runs["FAILED"] != 3 || len(p.watched) != 0 {
		t.Errorf("version 1 state not carried over: %+v", p)
	}
}

// Upgrading from a version-1 state file, whose ledger covered only the overlap window, must not
// count again the runs of the last hour that the late-window check and the retry watch now read.
func TestUpgradeFromVersion1CountsNothingTwice(t *testing.T) {
	var fx fixture
	cfg := Config{StateFile: filepath.Join(t.TempDir(), "state.json"), ServerURL: "sim", FlowsInterval: time.Minute}
	h := newHarness(t, simulator.Options{}, cfg, func(h *harness) { fx = seedFixture(h) })
	h.mustPoll()
	var ids []string
	for range 60 { // 30 minutes, a failure every poll
		ids = append(ids, h.sim.AddRun(simulator.RunSpec{FlowID: fx.flowA, Status: apiclient.StatusFailed}))
		h.mustPoll()
	}
	before := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED")
	h.exp.Close()
	b, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	var sf map[string]any
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	// What version 1 kept: the ids of the runs of the overlap window, in clear.
	seen := map[string]any{}
	head := h.exp.m().projects[fx.project].head
	for _, id := range ids {
		if c := h.sim.Run(id).Created; !c.Before(head.Add(-time.Minute - time.Second)) {
			seen[id] = c
		}
	}
	sf["version"] = 1
	for _, ps := range sf["projects"].(map[string]any) {
		m := ps.(map[string]any)
		delete(m, "seenIds")
		delete(m, "ledgerFrom")
		delete(m, "watched")
		m["seen"] = seen
	}
	if b, err = json.Marshal(sf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.StateFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		h.mustPoll()
	}
	if after := h.flowValue("activepieces_flow_runs_total", fx.flowA, "status", "FAILED"); after != before || before != 60 {
		t.Errorf("FAILED went from %v to %v across the upgrade, want 60 both", before, after)
	}
}
