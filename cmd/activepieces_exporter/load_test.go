package main

import (
	"context"
	"flag"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

var (
	load         = flag.Bool("load", false, "run the load test (make bench)")
	loadRate     = flag.Float64("load.rate", 100, "runs per second the simulator creates")
	loadDuration = flag.Duration("load.duration", 60*time.Second, "how long runs are created")
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
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t0 := time.Now()
	p := startExporter(t, bin, "--activepieces.url="+srv.URL+"/api", "--poll.interval=5s", "--api.rate-limit=1000")
	ctx, stop := context.WithTimeout(context.Background(), *loadDuration)
	defer stop()
	gen.Run(ctx, 100*time.Millisecond)
	got, want, produced := settle(t, sim, p, t0, 30*time.Second)
	counted := 0
	for _, v := range got {
		counted += v
	}
	text, _, err := scrape("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	cpu := mfs["process_cpu_seconds_total"].GetMetric()[0].GetCounter().GetValue()
	rss := mfs["process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue()
	requests := 0.0
	for _, m := range mfs["activepieces_exporter_api_requests_total"].GetMetric() {
		requests += m.GetCounter().GetValue()
	}
	elapsed := time.Since(t0)
	t.Logf("load: %.0f runs/s for %s, poll every 5 s: produced %d finished runs, counted %d; exporter CPU %.2f s over %s (%.1f%% of a core), RSS %.1f MiB, %d API requests",
		*loadRate, *loadDuration, produced, counted, cpu, elapsed.Round(time.Second), 100*cpu/elapsed.Seconds(), rss/(1<<20), int(requests))
	if !equalCounts(got, want) {
		t.Fatalf("counted %d of %d produced runs", counted, produced)
	}
}
