package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// benchPlatform is a simulated project of n flows served on loopback, and a client of it (the
// server is closed when b ends).
func benchPlatform(b *testing.B, n int) (*simulator.Server, []string, *apiclient.Client, *httptest.Server) {
	b.Helper()
	sim := simulator.New(simulator.Options{Raw: true})
	pid := sim.AddProject("Bench")
	var flows []string
	for i := range n {
		flows = append(flows, sim.AddFlow(pid, "", fmt.Sprintf("Flow number %d", i)))
	}
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	api, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey }})
	if err != nil {
		b.Fatal(err)
	}
	return sim, flows, api, srv
}

// addBenchRuns gives each flow two finished runs, one in ten of them still running.
func addBenchRuns(sim *simulator.Server, flows []string) {
	for i, f := range flows {
		st := apiclient.StatusSucceeded
		if i%10 == 0 {
			st = apiclient.StatusRunning
		}
		sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed, Steps: 2})
		sim.AddRun(simulator.RunSpec{FlowID: f, Status: st, Steps: 3})
	}
}

// BenchmarkScrape measures what Prometheus waits for: GET /metrics through the real handler on an
// exporter that polled a simulated platform of 1k or 10k flows (two finished runs each, one in
// ten still running), with and without gzip.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		sim, flows, api, srv := benchPlatform(b, n)
		gz := &gzipCache{} // compressed as the exporter publishes, as serve wires it
		e, err := collector.New(collector.Config{PageSize: 1000, MaxPages: 100}, api, slog.New(slog.NewTextHandler(io.Discard, nil)), collector.WithPublished(gz.published))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if err := e.PollOnce(ctx); err != nil {
			b.Fatal(err)
		}
		addBenchRuns(sim, flows)
		for range 2 { // Prometheus scrapes between polls; the runs are counted on the second
			e.Served(e.Snapshot().Poll)
			if err := e.PollOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
		srv.Close()
		reg := prometheus.NewRegistry()
		reg.MustRegister(collector.NewAPIMetrics(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		h := newMetricsHandler(e, reg, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
		h.gz = gz
		for _, gz := range []bool{true, false} {
			b.Run(fmt.Sprintf("flows=%d/gzip=%v", n, gz), func(b *testing.B) {
				var lat []time.Duration
				var size int
				for b.Loop() {
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					if gz {
						req.Header.Set("Accept-Encoding", "gzip")
					}
					rec := httptest.NewRecorder()
					start := time.Now()
					h.ServeHTTP(rec, req)
					lat = append(lat, time.Since(start))
					if rec.Code != 200 {
						b.Fatalf("status %d", rec.Code)
					}
					size = rec.Body.Len()
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(size)/(1<<20), "body-MiB")
			})
		}
	}
}
