package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsHandler serves /metrics: the exporter's samples from the exposition it renders once per
// poll (already gzip-compressed), followed by the registry's own metrics (Go, process, API client,
// build info) encoded per scrape. The answer is always the text format (0.0.4), gzip-compressed
// when the client accepts it (Prometheus does). At most maxInFlight scrapes are served at once, and
// each must be written within scrapeTimeout.
type metricsHandler struct {
	cached      func() []byte // gzip text of the exporter
	registry    prometheus.Gatherer
	log         *slog.Logger
	inFlight    chan struct{}
	contentType string
}

func newMetricsHandler(cached func() []byte, reg prometheus.Gatherer, maxInFlight int, log *slog.Logger) *metricsHandler {
	h := &metricsHandler{cached: cached, registry: reg, log: log,
		contentType: string(expfmt.NewFormat(expfmt.TypeTextPlain))}
	if maxInFlight > 0 {
		h.inFlight = make(chan struct{}, maxInFlight)
	}
	return h
}

// scrapeTimeout bounds the writing of one scrape (a slow or stalled client), without buffering.
const scrapeTimeout = 30 * time.Second

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(scrapeTimeout)) // unsupported in tests' recorders
	if h.inFlight != nil {
		select {
		case h.inFlight <- struct{}{}:
			defer func() { <-h.inFlight }()
		default:
			http.Error(w, fmt.Sprintf("too many concurrent scrapes (limit %d)", cap(h.inFlight)), http.StatusServiceUnavailable)
			return
		}
	}
	families, err := h.registry.Gather()
	if err != nil {
		h.log.Error("gathering the registry", "err", err)
		http.Error(w, "error gathering metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var own bytes.Buffer
	enc := expfmt.NewEncoder(&own, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			http.Error(w, "error encoding metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	cached := h.cached()
	w.Header().Set("Content-Type", h.contentType)
	if acceptsGzip(r) {
		// Two gzip members back to back form one valid gzip stream (RFC 1952 §2.2).
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		if _, err := w.Write(cached); err != nil {
			return
		}
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(own.Bytes())
		_ = zw.Close()
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(cached))
	if err != nil {
		http.Error(w, "error decoding cached metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := io.Copy(w, zr); err != nil {
		return
	}
	_, _ = w.Write(own.Bytes())
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
