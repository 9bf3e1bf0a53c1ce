package collector

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

// The served text (WriteText) and Collect must say the same thing, sample for sample.
func TestWriteTextMatchesCollect(t *testing.T) {
	h := goldenScenario(t)
	var text bytes.Buffer
	if err := h.exp.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(h.exp, bytes.NewReader(text.Bytes())); err != nil {
		t.Errorf("golden scenario: %v", err)
	}

	// Many flows, odd names (quotes, backslashes, newlines, UTF-8), histograms, runs in flight.
	e, p, _ := benchExporter(t, 300)
	for i, f := range []string{`say "hi"`, `C:\temp`, "two\nlines", "Zürich ✓"} {
		fl := p.flows[sortedFlowIDs(p)[i]]
		fl.Name, fl.labels = f, []string{p.id, fl.id, f}
	}
	populate(e, p, 1000)
	p.folders["folder00000000000001"] = `Folder "A"`
	text.Reset()
	if err := e.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(e, bytes.NewReader(text.Bytes())); err != nil {
		t.Errorf("300 flows: %v", err)
	}
	// The published snapshot is the same text once a poll has refreshed it.
	if err := e.m().refreshExposition(); err != nil {
		t.Fatal(err)
	}
	plain := e.Snapshot().Text
	if !bytes.Equal(plain, text.Bytes()) {
		t.Error("Snapshot().Text differs from WriteText")
	}
	promtool := testkit.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(plain)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// With a publisher, the exporter gives it each format once per render, one format a call, and
// keeps none of the bytes: its snapshots hold the poll only. What a Rendering writes is what
// WriteText and WriteOpenMetrics write, the first OpenMetricsSnapshot's included.
func TestPublisherIsGivenEachFormatAndNothingIsKept(t *testing.T) {
	e, p, _ := benchExporter(t, 300)
	populate(e, p, 1000)
	type published struct {
		poll uint64
		om   bool
		text string
	}
	var got []published
	WithPublished(func(r Rendering) error {
		var b bytes.Buffer
		n, err := r.WriteTo(&b)
		if n != int64(b.Len()) {
			t.Errorf("WriteTo wrote %d bytes, said %d", b.Len(), n)
		}
		got = append(got, published{r.Poll, r.OpenMetrics, b.String()})
		return err
	})(e.env)
	var text, om bytes.Buffer
	if err := e.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	poll := e.m().completed
	check := func(when string, want ...published) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: published %d renderings, want %d (or they differ from WriteText, WriteOpenMetrics)", when, len(got), len(want))
		}
		got = nil
		if s := e.Snapshot(); s.Poll != poll || s.Text != nil || s.OpenMetrics != nil {
			t.Errorf("%s: the exporter kept %d bytes of text, %d of OpenMetrics (poll %d)", when, len(s.Text), len(s.OpenMetrics), s.Poll)
		}
	}
	if err := e.m().refreshExposition(); err != nil {
		t.Fatal(err)
	}
	check("a render", published{poll, false, text.String()})
	if s, err := e.OpenMetricsSnapshot(); err != nil || s.Poll != poll || s.OpenMetrics != nil {
		t.Fatalf("OpenMetricsSnapshot: poll %d, %d bytes, %v", s.Poll, len(s.OpenMetrics), err)
	}
	check("the first OpenMetricsSnapshot", published{poll, true, om.String()})
	if _, err := e.OpenMetricsSnapshot(); err != nil {
		t.Fatal(err)
	}
	check("a second OpenMetricsSnapshot")
	if err := e.m().refreshExposition(); err != nil {
		t.Fatal(err)
	}
	check("a render once OpenMetrics is wanted", published{poll, false, text.String()}, published{poll, true, om.String()})
}

// A publisher's error is the render's: a poll whose text it failed is not made visible, one whose
// OpenMetrics it failed is visible without it, and OpenMetricsSnapshot renders that again.
func TestPublisherErrorsAreTheRenders(t *testing.T) {
	e, _, _ := benchExporter(t, 10)
	fail := map[bool]bool{}
	WithPublished(func(r Rendering) error {
		if fail[r.OpenMetrics] {
			return errors.New("full")
		}
		_, err := r.WriteTo(io.Discard)
		return err
	})(e.env)
	if _, err := e.OpenMetricsSnapshot(); err != nil {
		t.Fatal(err)
	}
	before := e.Snapshot().Poll
	e.m().completed++
	fail[false] = true
	if err := e.m().refreshExposition(); err == nil || e.Snapshot().Poll != before {
		t.Errorf("text not published: %v, poll %d visible (was %d)", err, e.Snapshot().Poll, before)
	}
	fail[false], fail[true] = false, true
	if err := e.m().refreshExposition(); err == nil || e.Snapshot().Poll != before+1 {
		t.Errorf("OpenMetrics not published: %v, poll %d visible, want %d", err, e.Snapshot().Poll, before+1)
	}
	if _, err := e.OpenMetricsSnapshot(); err == nil {
		t.Error("OpenMetricsSnapshot served a poll whose OpenMetrics was never published")
	}
	fail[true] = false
	if s, err := e.OpenMetricsSnapshot(); err != nil || s.Poll != before+1 {
		t.Errorf("OpenMetricsSnapshot once the publisher recovered: poll %d, %v", s.Poll, err)
	}
}

func sortedFlowIDs(p *projectState) []string { return slices.Sorted(maps.Keys(p.flows)) }

// The OpenMetrics rendering says what expfmt's own OpenMetrics encoder says of Collect's
// samples (exemplars included), line for line; only the order within a family may differ.
func TestWriteOpenMetricsMatchesExpfmt(t *testing.T) {
	h := goldenScenario(t)
	e, p, _ := benchExporter(t, 300)
	for i, f := range []string{`say "hi"`, `C:\temp`, "two\nlines", "Zürich ✓"} {
		fl := p.flows[sortedFlowIDs(p)[i]]
		fl.Name, fl.labels = f, []string{p.id, fl.id, f}
	}
	populate(e, p, 1000)
	for name, exp := range map[string]*Exporter{"golden scenario": h.exp, "300 flows": e} {
		var ours bytes.Buffer
		if err := exp.WriteOpenMetrics(&ours); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(exp)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var theirs bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToOpenMetrics(&theirs, mf); err != nil {
				t.Fatal(err)
			}
		}
		a, b := strings.Split(ours.String(), "\n"), strings.Split(theirs.String(), "\n")
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			for _, l := range a {
				if !slices.Contains(b, l) {
					t.Errorf("%s: only ours: %s", name, l)
					break
				}
			}
			for _, l := range b {
				if !slices.Contains(a, l) {
					t.Errorf("%s: only expfmt's: %s", name, l)
					break
				}
			}
		}
		if n := strings.Count(ours.String(), " # {run_id="); n == 0 && exp == h.exp {
			t.Errorf("%s: no exemplars", name)
		}
	}
	// The golden scenario's FAILED and TIMEOUT series name their runs; SUCCEEDED ones do not.
	var om bytes.Buffer
	if err := h.exp.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(om.String(), "\n") {
		if !strings.HasPrefix(l, "activepieces_flow_runs_total{") {
			continue
		}
		has := strings.Contains(l, ` # {run_id="`)
		failed := strings.Contains(l, `status="FAILED"`) || strings.Contains(l, `status="TIMEOUT"`)
		if has != (failed && !strings.Contains(l, "} 0.0")) {
			t.Errorf("exemplar on the wrong series: %s", l)
		}
	}
}
