package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// A poll is compressed once however many scrapes want it at once, and the cache never goes back
// to an older poll.
func TestGzipCacheCompressesAPollOnce(t *testing.T) {
	var c gzipCache
	text := []byte(strings.Repeat("activepieces_up 1\n", 10000))
	got := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			gz, poll, err := c.get(false, 3, text)
			if err != nil || poll != 3 {
				t.Errorf("get: poll %d, %v", poll, err)
			}
			got[i] = gz
		})
	}
	wg.Wait()
	for _, gz := range got[1:] {
		if &gz[0] != &got[0][0] {
			t.Fatal("one poll compressed more than once")
		}
	}
	if plain, err := gunzipBytes(got[0]); err != nil || !bytes.Equal(plain, text) {
		t.Fatal("the compressed text is not the text")
	}
	if _, err := c.text.compress(5, strings.NewReader("activepieces_up 0\n").WriteTo); err != nil {
		t.Fatal(err)
	}
	if _, poll, _ := c.get(false, 4, text); poll != 5 {
		t.Errorf("a scrape of poll 4 after poll 5 was compressed got poll %d, want the newer 5", poll)
	}
	if c.om.last.Load() != nil {
		t.Error("OpenMetrics compressed with the text")
	}
	if _, _, err := c.get(true, 5, nil); err == nil {
		t.Error("a poll never compressed, without its bytes, was served")
	}
}

// servedPolls is the exporter as the handler sees it, recording the polls marked served.
type servedPolls struct {
	*collector.Exporter
	mu    sync.Mutex
	polls map[uint64]bool
}

func (s *servedPolls) Served(poll uint64) {
	s.mu.Lock()
	s.polls[poll] = true
	s.mu.Unlock()
	s.Exporter.Served(poll)
}

// Scrapes of every kind (text and OpenMetrics, gzip and identity, GET and HEAD) through the
// handler, wired as serve wires it, overlap Run's polls publishing new snapshots, while new flows
// appear with a failed run each. Under -race (make test) any state shared without its owner's
// guard fails the test; and every answer is whole, publishes happened during scrapes, and each
// new flow's failure is counted only after a scrape served its zero (well before the ten poll
// intervals after which it would be counted unscraped).
func TestScrapesOverlapPollsPublishingSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of polling")
	}
	sim := simulator.New(simulator.Options{})
	var projects []string
	for i := range 10 { // ten projects: Run polls one a tick, a tenth of the interval
		p := sim.AddProject(fmt.Sprintf("Project %d", i))
		sim.AddFlow(p, "", "Steady")
		projects = append(projects, p)
	}
	exp, h, overlapped := overlapExporter(t, sim)
	// Socket buffers of 4 kB each way: a slow reader's scrape is still being written (its
	// snapshot in use) while polls publish the next ones.
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()

	firstSeen := &flowSightings{zero: map[string]time.Time{}, one: map[string]time.Time{}}
	done := make(chan struct{})
	scrapers, scrapes := startScrapers(t, srv.URL, firstSeen, done)
	// Runs older than a project's first poll are history, not counted: new flows come after.
	testkit.WaitFor(t, 10*time.Second, "every project polled", func() bool { return exp.Ready() == nil })
	var newFlows []string
	for i := range 6 {
		f := sim.AddFlow(projects[i], "", fmt.Sprintf("New flow %d", i))
		sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed})
		newFlows = append(newFlows, f)
		firstSeen.watch(f)
		time.Sleep(250 * time.Millisecond)
	}
	created := time.Now()
	deadline := created.Add(8 * time.Second) // the unscraped fallback is 10 s (10 × 1 s) away
	for time.Now().Before(deadline) && (!firstSeen.allCounted(newFlows) || overlapped.Load() < 10) {
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	scrapers.Wait()

	if !firstSeen.allCounted(newFlows) {
		for i, f := range newFlows {
			z, zok := firstSeen.zero[f]
			o, ook := firstSeen.one[f]
			t.Logf("flow %d %s: zero %v %v, one %v %v", i, f, zok, z.Sub(created), ook, o.Sub(created))
		}
		t.Fatalf("new flows' failures not counted within %s", time.Since(created).Round(time.Millisecond))
	}
	for _, f := range newFlows {
		if z, ok := firstSeen.zero[f]; !ok || !z.Before(firstSeen.one[f]) {
			t.Errorf("flow %s: counted at 1 (%v) before a scrape had it at 0 (%v, %v)", f, firstSeen.one[f], z, ok)
		}
	}
	exp.mu.Lock()
	polls := len(exp.polls)
	exp.mu.Unlock()
	if overlapped.Load() < 5 || polls < 10 {
		t.Errorf("%d snapshots published while a scrape was in flight, %d polls served; want 5 and 10 or more", overlapped.Load(), polls)
	}
	t.Logf("%d scrapes; %d publishes overlapped a scrape; %d polls served", scrapes.Load(), overlapped.Load(), polls)
}

// startScrapers starts four scrapers of url until done is closed; scrapes counts their scrapes.
// Scraper 0 reads slowly (identity, text and OpenMetrics): a scrape is nearly always being
// written while polls publish. The others scrape every way in turn, leaving the poller time.
func startScrapers(t *testing.T, url string, seen *flowSightings, done <-chan struct{}) (scrapers *sync.WaitGroup, scrapes *atomic.Int64) {
	scrapers, scrapes = &sync.WaitGroup{}, &atomic.Int64{}
	for i := range 4 {
		scrapers.Go(func() {
			for k := i; ; k++ {
				select {
				case <-done:
					return
				default:
				}
				slow, kind := i == 0, k%5
				if slow {
					kind = 2 * (k % 2)
				}
				scrapeKind(t, url, kind, slow, seen)
				scrapes.Add(1)
				if !slow {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	return scrapers, scrapes
}

// overlapExporter runs an exporter of sim under Run, its snapshots compressed as published (as
// serve wires it), and returns the handler serving it, wrapped to count the publishes that
// happen while it serves a scrape.
func overlapExporter(t *testing.T, sim *simulator.Server) (*servedPolls, http.Handler, *atomic.Int64) {
	t.Helper()
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	client, err := apiclient.New(apiclient.Config{BaseURL: api.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey }})
	if err != nil {
		t.Fatal(err)
	}
	gz := &gzipCache{}
	var inFlight, overlapped atomic.Int64
	publish := func(r collector.Rendering) error {
		if inFlight.Load() > 0 {
			overlapped.Add(1)
		}
		return gz.published(r)
	}
	cfg := collector.Config{PollInterval: time.Second, FlowsInterval: 300 * time.Millisecond, RateLimit: 1000, HistoryRate: 100}
	e, err := collector.New(cfg, client, slog.New(slog.NewTextHandler(io.Discard, nil)), collector.WithPublished(publish))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	exp := &servedPolls{Exporter: e, polls: map[uint64]bool{}}
	mh := newMetricsHandler(exp, prometheus.NewRegistry(), 40, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mh.gz = gz
	h := methods(mh)
	return exp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		h.ServeHTTP(w, r)
	}), &overlapped
}

// flowSightings is when scrapes first saw each watched flow's FAILED counter at 0 and at 1.
type flowSightings struct {
	mu        sync.Mutex
	watched   []string
	zero, one map[string]time.Time
}

func (s *flowSightings) watch(flow string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched = append(s.watched, flow)
}

// failedSample is a FAILED sample's value in either format (labels sorted: flow_id is first,
// status last), with OpenMetrics' exemplar if any.
var failedSample = regexp.MustCompile(`^activepieces_flow_runs_total\{flow_id="[^"]+"[^}]*status="FAILED"\} ([0-9.]+)`)

// saw records the watched flows' FAILED counters in a scrape's body, at the time it was read.
func (s *flowSightings) saw(body []byte) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.watched {
		for rest := body; ; {
			i := bytes.Index(rest, []byte(`activepieces_flow_runs_total{flow_id="`+f+`"`))
			if i < 0 {
				break
			}
			line, _, _ := bytes.Cut(rest[i:], []byte("\n"))
			rest = rest[i+len(line):]
			m := failedSample.FindSubmatch(line)
			if m == nil {
				continue
			}
			seen := s.zero
			switch string(m[1]) {
			case "0", "0.0":
			case "1", "1.0":
				seen = s.one
			default:
				continue
			}
			if _, ok := seen[f]; !ok {
				seen[f] = now
			}
		}
	}
}

func (s *flowSightings) allCounted(flows []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range flows {
		if _, ok := s.one[f]; !ok {
			return false
		}
	}
	return true
}

// scrapeKind scrapes url one of five ways (text, text gzip, OpenMetrics, OpenMetrics gzip, HEAD),
// reading 2 kB every 10 ms when slow, and checks the answer is whole; GET answers' FAILED
// counters go to seen.
func scrapeKind(t *testing.T, url string, kind int, slow bool, seen *flowSightings) {
	method, om, zip := http.MethodGet, kind == 2 || kind == 3, kind == 1 || kind == 3
	if kind == 4 {
		method = http.MethodHead
	}
	req, _ := http.NewRequest(method, url, nil)
	if om {
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2")
	}
	if zip {
		req.Header.Set("Accept-Encoding", "gzip") // set here, the transport does not decompress
	}
	client := http.DefaultClient
	if slow {
		client = slowClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("scrape: %v", err)
		return
	}
	var r io.Reader = resp.Body
	if slow {
		r = slowReader{resp.Body}
	}
	body, err := io.ReadAll(r)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("scrape kind %d: %d, %v", kind, resp.StatusCode, err)
		return
	}
	if method == http.MethodHead {
		return
	}
	if (resp.Header.Get("Content-Encoding") == "gzip") != zip {
		t.Errorf("scrape kind %d: Content-Encoding %q", kind, resp.Header.Get("Content-Encoding"))
		return
	}
	if zip {
		if body, err = gunzipBytes(body); err != nil {
			t.Errorf("scrape kind %d: %v", kind, err)
			return
		}
	}
	ct := resp.Header.Get("Content-Type")
	if om != strings.HasPrefix(ct, "application/openmetrics-text") || !bytes.Contains(body, []byte("\nactivepieces_up ")) ||
		om != bytes.HasSuffix(body, []byte("\n# EOF\n")) {
		t.Errorf("scrape kind %d: Content-Type %q, %d bytes, not a whole exposition", kind, ct, len(body))
		return
	}
	seen.saw(body)
}

// slowReader reads at most 2 kB every 10 ms.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 2<<10)])
}

// smallBuffers gives the connections it accepts send and receive buffers of 4 kB.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
		_ = tc.SetReadBuffer(4 << 10)
	}
	return c, err
}

// slowClient reads through receive buffers of 4 kB.
var slowClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	return c, err
}}}

func gunzipBytes(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// Wired as serve wires it, the exporter keeps no plain bytes (its publisher compresses them as it
// publishes), and /metrics serves every format from the compressed cache: gzip as it is, identity
// decompressed as it is written. Each is the exporter's rendering, followed by the registry's.
func TestMetricsServedFromTheCompressedCacheAlone(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	p := sim.AddProject("Cache")
	for i := range 20 {
		f := sim.AddFlow(p, "", fmt.Sprintf("Flow %d", i))
		sim.AddRun(simulator.RunSpec{FlowID: f, Status: apiclient.StatusFailed, Steps: 2})
	}
	api := httptest.NewServer(sim)
	defer api.Close()
	client, err := apiclient.New(apiclient.Config{BaseURL: api.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey }})
	if err != nil {
		t.Fatal(err)
	}
	gz := &gzipCache{}
	e, err := collector.New(collector.Config{}, client, slog.New(slog.NewTextHandler(io.Discard, nil)), collector.WithPublished(gz.published))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.PollOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "own_metric", Help: "Own."}))
	h := newMetricsHandler(e, reg, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.gz = gz
	var text, om bytes.Buffer
	if err := e.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := e.WriteOpenMetrics(&om); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []struct {
		om, zip bool
		want    string
	}{
		{false, false, text.String() + "# HELP own_metric Own.\n# TYPE own_metric gauge\nown_metric 0\n"},
		{false, true, text.String() + "# HELP own_metric Own.\n# TYPE own_metric gauge\nown_metric 0\n"},
		{true, false, om.String() + "# HELP own_metric Own.\n# TYPE own_metric gauge\nown_metric 0.0\n# EOF\n"},
		{true, true, om.String() + "# HELP own_metric Own.\n# TYPE own_metric gauge\nown_metric 0.0\n# EOF\n"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if kind.om {
			req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
		}
		if kind.zip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if kind.zip {
			if body, err = gunzipBytes(body); err != nil {
				t.Fatal(err)
			}
		}
		if rec.Code != 200 || (rec.Header().Get("Content-Encoding") == "gzip") != kind.zip || string(body) != kind.want {
			t.Errorf("OpenMetrics %v, gzip %v: %d, Content-Encoding %q, %d bytes, want %d:\n%.300s", kind.om, kind.zip,
				rec.Code, rec.Header().Get("Content-Encoding"), len(body), len(kind.want), body)
		}
	}
	if s := e.Snapshot(); s.Text != nil || s.OpenMetrics != nil {
		t.Errorf("the exporter kept %d bytes of text and %d of OpenMetrics", len(s.Text), len(s.OpenMetrics))
	}
}
