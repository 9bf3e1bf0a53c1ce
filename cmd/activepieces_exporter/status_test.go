package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/collector"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// statusFixture is an exporter polled against a simulator that setup filled, and its page.
func statusFixture(t testing.TB, setup func(s *simulator.Server)) (*statusPage, *collector.Exporter) {
	t.Helper()
	return statusFixtureWith(t, collector.Config{}, setup)
}

// statusFixtureWith is statusFixture with cfg (its API, flow cap and history rate set here).
func statusFixtureWith(t testing.TB, cfg collector.Config, setup func(s *simulator.Server)) (*statusPage, *collector.Exporter) {
	t.Helper()
	sim := simulator.New(simulator.Options{})
	setup(sim)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	api := collector.NewAPIMetrics()
	client, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/api", APIKey: func() string { return simulator.DefaultAPIKey },
		Observer: api.Observe})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerURL, cfg.MaxFlows, cfg.HistoryRate = srv.URL+"/api", 100000, 1e6
	exp, err := collector.New(cfg, client,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exp.Close)
	for range 2 {
		if err := exp.PollOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := exp.ReadHistory(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	return newStatusPage(exp, api), exp
}

func get(t testing.TB, h http.Handler, target string) (string, *http.Response) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Body.String(), rec.Result()
}

// Every flow with its health, failing first; user text escaped; filters as query parameters.
func TestStatusPageShowsEveryFlowByHealth(t *testing.T) {
	now := time.Now()
	var project, failing, healthy, stuck, hostile string
	page, _ := statusFixture(t, func(s *simulator.Server) {
		project = s.AddProject(`Ops "east" <b>`)
		healthy = s.AddFlow(project, "", "Aaa nightly export")
		failing = s.AddFlow(project, "", "Zzz webhook relay")
		stuck = s.AddFlow(project, "", "Mmm long import")
		hostile = s.AddFlow(project, "", "<script>alert(\"x\")</script> \u202egnp.exe")
		s.AddRun(simulator.RunSpec{FlowID: healthy, Created: now.Add(-10 * time.Minute)})
		s.AddRun(simulator.RunSpec{FlowID: failing, Created: now.Add(-20 * time.Minute)})
		s.AddRun(simulator.RunSpec{FlowID: failing, Status: apiclient.StatusFailed, Created: now.Add(-5 * time.Minute),
			FailedStep: "step_2", FailedStepDisplay: `Post to "Slack" <now>`})
		s.AddRun(simulator.RunSpec{FlowID: stuck, Status: apiclient.StatusRunning, Created: now.Add(-30 * time.Minute), QueueWait: time.Second})
		s.AddRun(simulator.RunSpec{FlowID: hostile, Created: now.Add(-3 * time.Minute)})
	})
	body, resp := get(t, page, "/status")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Failing, then stuck, then healthy (sorted by name within).
	order := []string{failing, stuck, healthy}
	last := -1
	for _, id := range order {
		i := strings.Index(body, `id="flow-`+id+`"`)
		if i < 0 || i < last {
			t.Fatalf("flows not in the order failing, stuck, healthy (flow %s at %d, after %d)", id, i, last)
		}
		last = i
	}
	for _, want := range []string{
		`✖ Failing`, `⏳ Stuck`, `✔ Healthy`, // colour is never the only signal
		`in step <q class="failed-step"><bdi>Post to &#34;Slack&#34; &lt;now&gt;</bdi></q>`,
		`<a class="run-link" href="` + strings.TrimSuffix(pageUIURL(t, page), "/") + `/projects/` + project + `/runs/`,
		"<bdi>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; \u202egnp.exe</bdi>",
		`<bdi>Ops &#34;east&#34; &lt;b&gt;</bdi>`,
		`<meta http-equiv="refresh" content="30">`,
		`aria-label="last 24 hours: 1 succeeded, 1 failed"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
		t.Error("user text reached the page unescaped")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// Filters.
	for q, want := range map[string][]string{
		"?only=failing":                      {failing},
		"?q=LONG":                            {stuck},
		"?project=" + project + "&q=nightly": {healthy},
		"?project=elsewhere":                 {},
	} {
		body, _ := get(t, page, "/status"+q)
		for _, id := range []string{failing, stuck, healthy, hostile} {
			shown := strings.Contains(body, `id="flow-`+id+`"`)
			if shown != contains(want, id) {
				t.Errorf("%s: flow %s shown = %v", q, id, shown)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func pageUIURL(t testing.TB, p *statusPage) string {
	t.Helper()
	return p.src.Status().UIURL
}

// A platform of 10,000 flows: each page stays under 1 MB (200 flows a page) and is rendered in
// well under 200 ms (BenchmarkStatusPage measures it).
func TestStatusPageOfABigPlatformIsPaged(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 flows")
	}
	page, _ := statusFixture(t, bigPlatform)
	body, _ := get(t, page, "/status")
	if len(body) > 1<<20 || strings.Count(body, `class="flow `) != statusPageSize || !strings.Contains(body, "page 1 of 50") {
		t.Errorf("first page: %d bytes, %d flows", len(body), strings.Count(body, `class="flow `))
	}
	body, _ = get(t, page, "/status?page=50")
	if strings.Count(body, `class="flow `) != statusPageSize || !strings.Contains(body, "← previous") || strings.Contains(body, "next →") {
		t.Errorf("last page: %d flows", strings.Count(body, `class="flow `))
	}
	// A page number that would overflow (page-1)×size is a page beyond the last, not page 1.
	body, _ = get(t, page, "/status?page=1199038364791120856")
	if n := strings.Count(body, `class="flow `); n != 0 {
		t.Errorf("?page=1199038364791120856 shows %d flows, want none (beyond the last page)", n)
	}
}

func bigPlatform(s *simulator.Server) {
	now := time.Now()
	for p := range 20 {
		pid := s.AddProject(fmt.Sprintf("Customer %02d", p))
		for f := range 500 {
			fid := s.AddFlow(pid, "", fmt.Sprintf("Flow %03d", f))
			st := apiclient.StatusSucceeded
			if f%10 == 0 {
				st = apiclient.StatusFailed
			}
			s.AddRun(simulator.RunSpec{FlowID: fid, Status: st, Created: now.Add(-time.Duration(f) * time.Second)})
		}
	}
}

// BenchmarkStatusPage renders the first page of /status for 10,000 flows (the snapshot included).
func BenchmarkStatusPage(b *testing.B) {
	page, _ := statusFixture(b, bigPlatform)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		body, _ := get(b, page, "/status")
		size = len(body)
	}
	b.ReportMetric(float64(size), "page-bytes")
}

// At most statusConcurrency pages are rendered at once; a crowd beyond that gets 503 with
// Retry-After after a second instead of piling up.
func TestStatusPageRendersAFewAtATime(t *testing.T) {
	page, _ := statusFixture(t, func(s *simulator.Server) { s.AddFlow(s.AddProject("p"), "", "f") })
	for range statusConcurrency {
		page.slots <- struct{}{} // as if that many pages were being rendered
	}
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("a request beyond the limit: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	<-page.slots
	rec = httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != 200 {
		t.Errorf("with a slot free: %d", rec.Code)
	}
}

// The page cache under load (-race in make test): 16 clients ask for four views while Run polls
// and publishes new snapshots (the cache is emptied by each) and flows are added. Every answer
// is a page or a 503, never a torn one, and a flow added during the crowd is on the page once a
// poll has seen it: a cached page of an older snapshot is not served for a newer one.
func TestStatusPageCacheUnderConcurrentPolls(t *testing.T) {
	var sim *simulator.Server
	var project string
	page, exp := statusFixtureWith(t, collector.Config{PollInterval: 100 * time.Millisecond, FlowsInterval: 200 * time.Millisecond}, func(s *simulator.Server) {
		sim, project = s, s.AddProject("Crowd")
		s.AddFlow(project, "", "first flow")
	})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { exp.Run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }()
	stop := time.Now().Add(3 * time.Second)
	var served, busy, bad atomic.Int64
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			views := []string{"/status", "/status?project=" + project, "/status?q=flow", "/status?only=silent"}
			for i := 0; time.Now().Before(stop); i++ {
				body, resp := get(t, page, views[(c+i)%len(views)])
				switch {
				case resp.StatusCode == 200 && strings.HasSuffix(strings.TrimSpace(body), "</html>"):
					served.Add(1)
				case resp.StatusCode == 503:
					busy.Add(1)
				default:
					bad.Add(1)
				}
			}
		})
	}
	sim.AddFlow(project, "", "added while crowded")
	wg.Wait()
	if bad.Load() != 0 || served.Load() == 0 {
		t.Fatalf("%d pages, %d busy, %d neither", served.Load(), busy.Load(), bad.Load())
	}
	testkit.WaitFor(t, 10*time.Second, "the added flow on the page", func() bool {
		body, _ := get(t, page, "/status")
		return strings.Contains(body, "added while crowded")
	})
	t.Logf("%d pages served, %d told to retry, while Run published new snapshots", served.Load(), busy.Load())
}
