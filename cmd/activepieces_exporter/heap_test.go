package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// BenchmarkHeap reports the heap in use (runtime.MemStats.HeapInuse, after a GC) by an exporter
// of 10k flows wired as serve wires it, after each step of a scrape sequence, and the highest
// heap in use seen during the step (sampled every millisecond), the steps of the first round on
// stderr. Run it alone, -benchtime=1x.
func BenchmarkHeap(b *testing.B) {
	const n = 10000
	sim, flows, api, _ := benchPlatform(b, n)
	base := heapInuse()
	e, h := heapBenchWire(b, api)
	ctx := context.Background()
	if err := e.PollOnce(ctx); err != nil {
		b.Fatal(err)
	}
	beforeRuns := heapInuse()
	addBenchRuns(sim, flows)
	base += heapInuse() - beforeRuns // the simulator's runs are not the exporter's
	scrape := func(om, zip bool) func() {
		return func() {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if om {
				req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
			}
			if zip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			w := &discardResponse{header: http.Header{}}
			h.ServeHTTP(w, req)
			if w.code != 0 && w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	}
	poll := func() {
		if err := e.PollOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"poll1", poll}, {"text-gzip", scrape(false, true)}, {"poll2", poll},
		{"text-gzip", scrape(false, true)}, {"text-identity", scrape(false, false)},
		{"om-gzip", scrape(true, true)}, {"om-identity", scrape(true, false)},
		{"poll3", poll}, {"text-gzip", scrape(false, true)}, {"text-identity", scrape(false, false)},
		{"om-gzip", scrape(true, true)}, {"om-identity", scrape(true, false)},
	}
	var highest float64
	for round := 0; b.Loop(); round++ {
		for _, s := range steps {
			peak := peakDuring(s.do)
			highest = max(highest, peak)
			if round == 0 {
				fmt.Fprintf(os.Stderr, "%-14s heap in use %6.1f MiB (peak during %6.1f MiB)\n", s.name, (heapInuse()-base)/(1<<20), (peak-base)/(1<<20))
			}
		}
	}
	b.ReportMetric((heapInuse()-base)/(1<<20), "heap-MiB")
	b.ReportMetric((highest-base)/(1<<20), "peak-MiB")
	runtime.KeepAlive(e)
}

// heapInuse is HeapInuse after a GC.
func heapInuse() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}

// peakDuring runs do and returns the highest HeapInuse sampled meanwhile.
func peakDuring(do func()) float64 {
	runtime.GC()
	done := make(chan struct{})
	var peak uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	do()
	close(done)
	wg.Wait()
	return float64(peak)
}

// discardResponse is a ResponseWriter that keeps nothing of the body.
type discardResponse struct {
	header http.Header
	code   int
}

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(code int)        { d.code = code }

// heapBenchWire builds the exporter and its /metrics handler as serve does.
func heapBenchWire(b *testing.B, api *apiclient.Client) (*collector.Exporter, http.Handler) {
	gz := &gzipCache{}
	e, err := collector.New(collector.Config{PageSize: 1000, MaxPages: 100}, api, slog.New(slog.NewTextHandler(io.Discard, nil)), collector.WithPublished(gz.published))
	if err != nil {
		b.Fatal(err)
	}
	h := newMetricsHandler(e, prometheus.NewRegistry(), 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.gz = gz
	return e, h
}
