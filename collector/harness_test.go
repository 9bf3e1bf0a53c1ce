package collector

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

var epoch = time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	clock  *testkit.Clock
	sim    *simulator.Server
	exp    *Exporter
	api    *APIMetrics
	client *apiclient.Client
	key    atomic.Pointer[string]
	// noScrape: nothing scrapes between polls (Exposition is not called).
	noScrape bool
	// noHistory: the look-back history is not read between polls (as the background reader of
	// Run does).
	noHistory bool
	logs      *testkit.LockedBuffer
	opts      []Option // given to New besides the clock
	reg       *prometheus.Registry
	// kept is what checkParts keeps of the text and OpenMetrics parts, as a publisher does (of
	// the exporter started last).
	kept [2]map[string]keptPart
}

// newHarness starts a simulator (opts) and returns it with an unstarted exporter; setup runs
// before the exporter is created, so what it adds is history.
func newHarness(t *testing.T, opts simulator.Options, cfg Config, setup func(h *harness)) *harness {
	t.Helper()
	h := &harness{t: t, clock: testkit.NewClock(epoch), logs: &testkit.LockedBuffer{}}
	h.setKey(simulator.DefaultAPIKey)
	opts.Now = h.clock.Now
	h.sim = simulator.New(opts)
	if setup != nil {
		setup(h)
	}
	srv := httptest.NewServer(h.sim)
	t.Cleanup(srv.Close)
	h.api = NewAPIMetrics()
	client, err := apiclient.New(apiclient.Config{
		BaseURL: srv.URL + "/api", APIKey: func() string { return *h.key.Load() },
		Timeout: 2 * time.Second, Retries: 1, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Observer: h.api.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.client = client
	if err := h.start(cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) setKey(k string) { h.key.Store(&k) }

// start (re)creates the exporter on the same simulator, as a restarted process would.
func (h *harness) start(cfg Config) error {
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.HistoryRate == 0 {
		cfg.HistoryRate = 1e6 // not what tests wait for
	}
	if h.exp != nil {
		h.exp.Close() // the previous process is gone, and its lock with it
	}
	exp, err := New(cfg, h.client, logger, append([]Option{WithClock(h.clock.Now)}, h.opts...)...)
	if err != nil {
		return err
	}
	h.exp = exp
	h.kept = [2]map[string]keptPart{}
	h.reg = prometheus.NewPedanticRegistry()
	h.reg.MustRegister(h.exp, h.api)
	return nil
}

// poll advances the clock by one poll interval and polls; then, unless h.noScrape, Prometheus
// scrapes (a new flow's first runs wait for a scrape of its zero series).
func (h *harness) poll() error {
	h.t.Helper()
	h.clock.Advance(h.exp.cfg.PollInterval)
	err := h.exp.PollOnce(context.Background())
	if !h.noHistory {
		if _, herr := h.exp.ReadHistory(context.Background(), 0); herr != nil {
			h.t.Logf("history: %v", herr)
		}
	}
	if !h.noScrape {
		h.exp.Served(h.exp.Snapshot().Poll)
	}
	h.checkParts()
	return err
}

// checkParts asserts, after every poll of every harness test, that the rendering in parts (what
// a publisher assembles from the parts it kept and those it was given anew) is exactly the whole
// rendering: a project whose change did not move its gen would show old parts here.
func (h *harness) checkParts() {
	h.t.Helper()
	m := h.exp.m()
	for _, om := range []bool{false, true} {
		var whole bytes.Buffer
		if err := m.write(&whole, om); err != nil {
			h.t.Fatal(err)
		}
		if h.kept[b2i(om)] == nil {
			h.kept[b2i(om)] = map[string]keptPart{}
		}
		got, err := assembleParts(m.parts(om), h.kept[b2i(om)])
		if err != nil {
			h.t.Fatal(err)
		}
		if !bytes.Equal(got, whole.Bytes()) {
			h.t.Fatalf("the rendering in parts (OpenMetrics %v) differs from the whole rendering:\n%s", om, firstDiff(got, whole.Bytes()))
		}
	}
}

// keptPart is a part's bytes as a publisher keeps them.
type keptPart struct {
	version uint64
	b       []byte
}

// assembleParts assembles a rendering from its parts as a publisher does: a part whose Version
// it kept is its kept bytes, the others are written and kept.
func assembleParts(parts iter.Seq[Part], kept map[string]keptPart) ([]byte, error) {
	var out []byte
	seen := map[string]bool{}
	for p := range parts {
		if seen[p.Key] {
			return nil, fmt.Errorf("part %q twice", p.Key)
		}
		seen[p.Key] = true
		k, ok := kept[p.Key]
		if !ok || k.version != p.Version {
			var b bytes.Buffer
			if _, err := p.WriteTo(&b); err != nil {
				return nil, err
			}
			k = keptPart{version: p.Version, b: b.Bytes()}
			kept[p.Key] = k
		}
		out = append(out, k.b...)
	}
	return out, nil
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  parts: %s\n  whole: %s", i+1, x, y)
		}
	}
	return "(equal lines, different bytes)"
}

func (h *harness) mustPoll() {
	h.t.Helper()
	if err := h.poll(); err != nil {
		h.t.Fatalf("poll: %v", err)
	}
}

// counts reads activepieces_flow_runs_total as flow id/status → value.
func (h *harness) counts() map[simulator.Key]int {
	h.t.Helper()
	out := map[simulator.Key]int{}
	for _, m := range h.family("activepieces_flow_runs_total") {
		if v := int(m.GetCounter().GetValue()); v > 0 {
			out[simulator.Key{FlowID: label(m, "flow_id"), Status: apiclient.RunStatus(label(m, "status"))}] = v
		}
	}
	return out
}

func (h *harness) family(name string) []*dto.Metric {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// value returns the value of the series of family name whose labels include want, and whether
// it exists.
func (h *harness) value(name string, want map[string]string) (float64, bool) {
	h.t.Helper()
	for _, m := range h.family(name) {
		ok := true
		for k, v := range want {
			if label(m, k) != v {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// assertTotals compares the exporter's counters with the simulator's record of runs created
// since the exporter started.
func (h *harness) assertTotals() (runs int) {
	h.t.Helper()
	want := map[simulator.Key]int{}
	for k, v := range h.sim.Finished(h.exp.startedAt) {
		k.Status = statusLabel(k.Status) // garbage statuses are exported as INVALID
		want[k] += v
	}
	got := h.counts()
	if len(want) != len(got) {
		h.t.Errorf("counted %d flow/status pairs, simulator has %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for k, v := range want {
		if got[k] != v {
			h.t.Errorf("%s/%s: counted %d, simulator has %d", k.FlowID, k.Status, got[k], v)
		}
		runs += v
	}
	return runs
}

func (h *harness) lint() {
	h.t.Helper()
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, p := range problems {
		h.t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func (h *harness) text() string {
	h.t.Helper()
	var b strings.Builder
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteString("\n")
	}
	return b.String()
}

// m is the exporter's model, for a test that polls only from its own goroutine (PollOnce,
// ReadHistory): between those calls nobody else owns it.
func (e *Exporter) m() *model {
	m, release := e.acquire()
	release()
	return m
}
