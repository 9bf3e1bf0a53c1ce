package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// metricsHandler serves /metrics: the exporter's samples from the snapshot it renders once per
// poll (gzip-compressed once per poll and format, by gz), followed by the registry's own metrics
// (Go, process, API client, build info) encoded per scrape. The answer is OpenMetrics (1.0.0,
// with exemplars that name runs) when the client asks for it (Prometheus does), else the text
// format (0.0.4); gzip-compressed when the client accepts it (Prometheus does).
//
// At most maxInFlight scrapes are served at once, but a scrape keeps its slot for fastWindow only:
// one still being written after that (a slow or stalled reader) moves to one of the few slow slots
// (a quarter of maxInFlight, at least 2), and is cut off when none is free. So clients that read
// slowly, however many, cannot keep Prometheus out; each scrape must be written within
// scrapeTimeout.
type metricsHandler struct {
	exp exposer
	// gz is the exporter's snapshots gzip-compressed. The handler's own is filled by scrapes,
	// from the snapshots' plain bytes; an exporter with a publisher keeps none, so serve gives
	// the handler the cache that the exporter's publisher fills (wire).
	gz         *gzipCache
	registry   prometheus.Gatherer
	log        *slog.Logger
	inFlight   chan struct{}
	slow       chan struct{}
	fastWindow time.Duration
	admitted   atomic.Uint64 // scrapes given a slot so far
}

// exposer is what the handler needs of the exporter (collector.Exporter).
type exposer interface {
	// Snapshot is the text rendered after the last poll, and that poll (the text nil when the
	// exporter wrote it to its publisher, gz).
	Snapshot() collector.Snapshot
	// OpenMetricsSnapshot is the same with OpenMetrics too (without its "# EOF").
	OpenMetricsSnapshot() (collector.Snapshot, error)
	// Served records that a scrape was given the snapshot of a poll.
	Served(poll uint64)
}

func newMetricsHandler(exp exposer, reg prometheus.Gatherer, maxInFlight int, log *slog.Logger) *metricsHandler {
	h := &metricsHandler{exp: exp, gz: &gzipCache{}, registry: reg, log: log, fastWindow: fastWindow}
	if maxInFlight > 0 {
		h.inFlight = make(chan struct{}, maxInFlight)
		h.slow = make(chan struct{}, max(2, maxInFlight/4))
	}
	return h
}

// fastWindow is how long a scrape may hold one of the --web.max-requests slots: a scrape is a copy
// of a rendered text, which a reader at the speed of Prometheus takes milliseconds to read.
const fastWindow = 250 * time.Millisecond

// admit takes a slot for a scrape and returns its release, or false when every slot stayed taken
// for a fast window (every slot is given back within one). After fastWindow the scrape gives its
// slot back and takes a slow one, or is cut off (its write deadline set to now) when there is none.
func (h *metricsHandler) admit(ctx context.Context, rc *http.ResponseController) (release func(), ok bool) {
	if h.inFlight == nil {
		return func() {}, true
	}
	select {
	case h.inFlight <- struct{}{}:
	default:
		wait := time.NewTimer(h.fastWindow + 50*time.Millisecond)
		defer wait.Stop()
		select {
		case h.inFlight <- struct{}{}:
		case <-wait.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
	h.admitted.Add(1)
	var mu sync.Mutex
	held := h.inFlight // the pool whose slot this scrape holds; nil once it holds none
	t := time.AfterFunc(h.fastWindow, func() {
		mu.Lock()
		defer mu.Unlock()
		if held == nil {
			return
		}
		<-h.inFlight
		select {
		case h.slow <- struct{}{}:
			held = h.slow
		default:
			held = nil
			_ = rc.SetWriteDeadline(time.Now()) // too many slow readers: this one is cut off
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		defer mu.Unlock()
		if held != nil {
			<-held
			held = nil
		}
	}, true
}

// scrapeTimeout bounds the writing of one scrape (a slow or stalled client), without buffering.
const scrapeTimeout = 30 * time.Second

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(scrapeTimeout)) // unsupported in tests' recorders
	release, ok := h.admit(r.Context(), rc)
	if !ok {
		http.Error(w, fmt.Sprintf("too many concurrent scrapes (limit %d)", cap(h.inFlight)), http.StatusServiceUnavailable)
		return
	}
	defer release()
	families, err := h.registry.Gather()
	if err != nil {
		h.log.Error("gathering the registry", "err", err)
		http.Error(w, "error gathering metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The two formats served: OpenMetrics 1.0.0 when asked for, else the text format.
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	om := !refusesOpenMetrics(r) && expfmt.NegotiateAccept(r.Header, expfmt.NewFormat(expfmt.TypeOpenMetrics), format).FormatType() == expfmt.TypeOpenMetrics
	if om {
		format = expfmt.NewFormat(expfmt.TypeOpenMetrics)
	}
	cached, poll, err := h.exposition(om)
	if err != nil {
		h.log.Error("rendering metrics", "openmetrics", om, "err", err)
		http.Error(w, "error rendering metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var own bytes.Buffer
	enc := expfmt.NewEncoder(&own, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			http.Error(w, "error encoding metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		_ = closer.Close() // OpenMetrics' "# EOF", after everything
	}
	w.Header().Set("Content-Type", string(format))
	if err := write(w, acceptsGzip(r), cached, own.Bytes()); err != nil {
		return
	}
	// Only a whole GET answer is a scrape that served new flows' zero series: a HEAD has no body.
	if err := rc.Flush(); r.Method == http.MethodGet && (err == nil || errors.Is(err, http.ErrNotSupported)) {
		h.exp.Served(poll) // the scrape has the snapshot of that poll, new flows at 0 included
	}
}

// exposition is the exporter's latest snapshot in the format asked for (OpenMetrics with om),
// gzip-compressed, and the poll it holds.
func (h *metricsHandler) exposition(om bool) ([]byte, uint64, error) {
	var s collector.Snapshot
	var err error
	if om {
		s, err = h.exp.OpenMetricsSnapshot()
	} else {
		s = h.exp.Snapshot()
	}
	if err != nil {
		return nil, 0, err
	}
	plain := s.Text
	if om {
		plain = s.OpenMetrics
	}
	return h.gz.get(om, s.Poll, plain)
}

// write sends the exporter's part (cached, gzip-compressed) and the registry's text: both
// gzip-compressed with zip, else both plain, the former decompressed as it is written (no plain
// copy of it is kept anywhere).
func write(w http.ResponseWriter, zip bool, cached, own []byte) error {
	if !zip {
		zr, err := gzip.NewReader(bytes.NewReader(cached))
		if err != nil {
			http.Error(w, "error decoding cached metrics: "+err.Error(), http.StatusInternalServerError)
			return err
		}
		if _, err := io.Copy(w, zr); err != nil {
			return err
		}
		_, err = w.Write(own)
		return err
	}
	// Two gzip members back to back form one valid gzip stream (RFC 1952 §2.2).
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Add("Vary", "Accept-Encoding")
	if _, err := w.Write(cached); err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(own); err != nil {
		return err
	}
	return zw.Close()
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && qualityOf(params) > 0 {
			return true
		}
	}
	return false
}

// refusesOpenMetrics reports whether the Accept header gives OpenMetrics a quality of 0 ("not
// acceptable", RFC 9110 §12.4.2), which expfmt's negotiation does not heed.
func refusesOpenMetrics(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "application/openmetrics-text") && qualityOf(params) == 0 {
			return true
		}
	}
	return false
}

// qualityOf is the q parameter among a header element's parameters (1 when absent, 0 when
// unreadable): "q=0", "Q=0", "q=0.000" are all 0.
func qualityOf(params string) float64 {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// methods answers 405 (with Allow) to any method but GET and HEAD: /metrics, /status and the
// probes have nothing else to offer.
func methods(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
