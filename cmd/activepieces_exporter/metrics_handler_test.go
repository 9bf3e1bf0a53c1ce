package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fixedExposition is an exposer serving one text, recording what was marked served.
type fixedExposition struct {
	text, om []byte
	served   atomic.Uint64
}

func (f *fixedExposition) Snapshot() collector.Snapshot {
	return collector.Snapshot{Poll: 7, Text: f.text}
}
func (f *fixedExposition) OpenMetricsSnapshot() (collector.Snapshot, error) {
	return collector.Snapshot{Poll: 8, Text: f.text, OpenMetrics: f.om}, nil
}
func (f *fixedExposition) Served(poll uint64) { f.served.Store(poll) }

func TestMetricsHandlerServesCachedAndRegistryTextWithOrWithoutGzip(t *testing.T) {
	cached := "# HELP activepieces_up Up.\n# TYPE activepieces_up gauge\nactivepieces_up 1\n"
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_metric", Help: "Own."})
	g.Set(7)
	reg.MustRegister(g)
	exp := &fixedExposition{text: []byte(cached)}
	h := newMetricsHandler(exp, reg, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := cached + "# HELP own_metric Own.\n# TYPE own_metric gauge\nown_metric 7\n"
	for _, enc := range []string{"", "gzip", "deflate, gzip;q=1.0", "gzip;q=0"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		zipped := rec.Header().Get("Content-Encoding") == "gzip"
		if zipped != (strings.Contains(enc, "gzip") && enc != "gzip;q=0") {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", enc, rec.Header().Get("Content-Encoding"))
		}
		if zipped {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if string(body) != want {
			t.Errorf("Accept-Encoding %q: body\n%s\nwant\n%s", enc, body, want)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	if exp.served.Load() != 7 {
		t.Errorf("served poll %d, want 7 marked after a written scrape", exp.served.Load())
	}
	// Over the in-flight limit for longer than a fast window (only when the slots are held other
	// than by scrapes, which give them back within one): 503, not a long queue.
	h.inFlight <- struct{}{}
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusServiceUnavailable || time.Since(start) > time.Second {
		t.Errorf("over the limit: %d after %s, want 503 within a second", rec.Code, time.Since(start))
	}
}

// Forty clients that read /metrics at a byte a second (the --web.max-requests default) and a
// Prometheus-like scrape every 200 ms: every scrape is answered 200 within a second. Before, the
// slow readers held every slot for the 30 s write deadline and Prometheus got 503.
func TestSlowReadersCannotLockOutTheScraper(t *testing.T) {
	// A big exposition (about 8 MB as text), so that a slow reader's writes block.
	var text strings.Builder
	for i := 0; text.Len() < 8<<20; i++ {
		fmt.Fprintf(&text, "activepieces_flow_runs_total{flow_id=\"f%07d\",status=\"SUCCEEDED\"} %d\n", i, i)
	}
	cached := gz(t, text.String())
	exp := &fixedExposition{text: []byte(text.String())}
	h := newMetricsHandler(exp, prometheus.NewRegistry(), 40, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Compressed before the scrapes, as the exporter's publisher is (wire).
	if _, _, err := h.gz.get(false, 7, exp.text); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 40 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).SetReadBuffer(1024)
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // one byte a second
			defer wg.Done()
			defer conn.Close()
			b := make([]byte, 1)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				if _, err := conn.Read(b); err != nil {
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testkit.WaitFor(t, 10*time.Second, "every slow reader admitted", func() bool { return h.admitted.Load() == 40 })

	client := &http.Client{Timeout: time.Second}
	for i := range 15 {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < int64(len(cached)) || time.Since(start) > time.Second {
			t.Errorf("scrape %d: %d, %d bytes in %s", i, resp.StatusCode, n, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A scraper asking for OpenMetrics (as Prometheus does) gets it: the exporter's OpenMetrics
// rendering, then the registry's metrics in OpenMetrics, then "# EOF"; and the poll marked
// served is the one that rendering is of.
func TestMetricsHandlerNegotiatesOpenMetrics(t *testing.T) {
	om := "# HELP activepieces_flow_runs Runs.\n# TYPE activepieces_flow_runs counter\n" +
		`activepieces_flow_runs_total{status="FAILED"} 1 # {run_id="r1"} 1 1.7e+09` + "\n"
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "own_total", Help: "Own."})
	c.Add(2)
	reg.MustRegister(c)
	exp := &fixedExposition{text: []byte("text\n"), om: []byte(om)}
	h := newMetricsHandler(exp, reg, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	// What Prometheus 3 sends by default.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Errorf("Content-Type %q", ct)
	}
	want := om + "# HELP own Own.\n# TYPE own counter\nown_total 2.0\n# EOF\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body:\n%s\nwant:\n%s", got, want)
	}
	if exp.served.Load() != 8 {
		t.Errorf("marked poll %d served, want the OpenMetrics rendering's 8", exp.served.Load())
	}
	// Without an Accept for it: the text format.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") || !strings.HasPrefix(rec.Body.String(), "text\n") {
		t.Errorf("plain scrape: %q %q", ct, rec.Body.String())
	}
}

// A HEAD answer has no body: it does not count as a scrape that served new flows' zero series
// (else the first GET would already see a new flow's first failure). Other methods get 405.
func TestOnlyAWholeGETCountsAsServed(t *testing.T) {
	exp := &fixedExposition{text: []byte("text\n")}
	h := methods(newMetricsHandler(exp, prometheus.NewRegistry(), 1, slog.New(slog.NewTextHandler(io.Discard, nil))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if rec.Code != 200 || exp.served.Load() != 0 {
		t.Errorf("HEAD: %d, served poll %d; want 200 and nothing marked served", rec.Code, exp.served.Load())
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, "PROPFIND"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/metrics", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" || exp.served.Load() != 0 {
			t.Errorf("%s: %d Allow %q served %d", m, rec.Code, rec.Header().Get("Allow"), exp.served.Load())
		}
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if exp.served.Load() != 7 {
		t.Errorf("GET: served poll %d, want 7", exp.served.Load())
	}
}

// A quality of 0 refuses, however it is spelt: no gzip for gzip;q=0.0, Q=0 or q=0.000, and no
// OpenMetrics for an OpenMetrics Accept with q=0.
func TestQualityZeroRefuses(t *testing.T) {
	exp := &fixedExposition{text: []byte("text\n"), om: []byte("om\n")}
	h := newMetricsHandler(exp, prometheus.NewRegistry(), 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, enc := range []string{"gzip;q=0.0", "gzip; Q=0", "gzip;q=0.000", "GZIP;q=0"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", enc)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != "text\n" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", enc, rec.Header().Get("Content-Encoding"))
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0,text/plain;version=0.0.4;q=0.2")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("OpenMetrics at q=0: Content-Type %q", ct)
	}
}
