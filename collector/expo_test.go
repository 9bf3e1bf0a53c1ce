package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
		fl.name, fl.labels = f, []string{p.id, fl.id, f}
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
	// The cached, compressed exposition is the same text once a poll has refreshed it.
	if err := e.refreshExposition(); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(first(e.Exposition())))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, text.Bytes()) {
		t.Error("Exposition() differs from WriteText")
	}
	promtool := testkit.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(plain)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func sortedFlowIDs(p *projectState) []string { return slices.Sorted(maps.Keys(p.flows)) }
