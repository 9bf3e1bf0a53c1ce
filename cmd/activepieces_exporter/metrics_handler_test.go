package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

func TestMetricsHandlerServesCachedAndRegistryTextWithOrWithoutGzip(t *testing.T) {
	cached := "# HELP activepieces_up Up.\n# TYPE activepieces_up gauge\nactivepieces_up 1\n"
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_metric", Help: "Own."})
	g.Set(7)
	reg.MustRegister(g)
	h := newMetricsHandler(func() []byte { return gz(t, cached) }, reg, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	// Over the in-flight limit: 503, not a queue.
	h.inFlight <- struct{}{}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("over the limit: %d, want 503", rec.Code)
	}
}
