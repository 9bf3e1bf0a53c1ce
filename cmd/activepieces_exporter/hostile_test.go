package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// peakRSS is a process's peak resident set (VmHWM), in MiB.
func peakRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// Four projects polled at once, each answered with 200 MB of runs: the exporter stays under
// 150 MB RSS (it read 663 MB before pages were capped and streamed), keeps serving /metrics and
// recovers when the answers are sane again.
func TestFourHugeAnswersAtOnceStayUnder150MB(t *testing.T) {
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{Raw: true})
	for i := range 4 {
		p := sim.AddProject("P" + strconv.Itoa(i))
		f := sim.AddFlow(p, "", "F"+strconv.Itoa(i))
		sim.AddRun(simulator.RunSpec{FlowID: f})
	}
	var huge atomic.Bool
	var answered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !huge.Load() || r.URL.Path != "/api/v1/flow-runs" {
			sim.ServeHTTP(w, r)
			return
		}
		answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"next":null,"data":[`)
		item := strings.Repeat(`{"id":"aaaaaaaaaaaaaaaaaaaaa","created":"2026-01-01T00:00:00.000Z","status":"SUCCEEDED","pad":"`+strings.Repeat("x", 900)+`"},`, 64)
		for written := 0; written < 200e6; written += len(item) {
			if _, err := io.WriteString(w, item); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	p := startExporter(t, bin, "--activepieces.url="+srv.URL+"/api", "--poll.interval=500ms", "--poll.concurrency=4",
		"--api.rate-limit=1000", "--api.retries=0")
	base := peakRSS(t, p.cmd.Process.Pid)
	huge.Store(true)
	testkit.WaitFor(t, 30*time.Second, "twelve huge answers", func() bool { return answered.Load() >= 12 })
	text, code, err := scrape("http://" + p.addr + "/metrics")
	if err != nil || code != 200 || !strings.Contains(text, "activepieces_up 0") || !strings.Contains(text, `code="size_error"`) {
		t.Errorf("during the huge answers /metrics answered %d %v, up 0 and size_error counted: %v", code, err, strings.Contains(text, `code="size_error"`))
	}
	peak := peakRSS(t, p.cmd.Process.Pid)
	huge.Store(false)
	testkit.WaitFor(t, 20*time.Second, "recovery", func() bool {
		text, _, _ := scrape("http://" + p.addr + "/metrics")
		return strings.Contains(text, "activepieces_up 1")
	})
	t.Logf("peak RSS %.1f MiB before the huge answers, %.1f MiB after %d answers of 200 MB, four at a time", base, peak, answered.Load())
	if peak > 150 {
		t.Errorf("peak RSS %.1f MiB, want under 150", peak)
	}
}

// The status page is no weapon (hostile round 3, item 1): 50 clients asking /status as fast as
// they can (all of it, one project, no project, a search) on 10,000 flows, for 10 s, while
// Prometheus scrapes /metrics every second and a probe asks /-/ready: every scrape answers within
// 250 ms, the probe within 1 s, and the exporter stays under 250 MiB RSS.
func TestFiftyStatusClientsDoNotStarveTheScrape(t *testing.T) {
	bin := buildBinary(t)
	sim := simulator.New(simulator.Options{Raw: true})
	var first string
	for i := range 100 {
		p := sim.AddProject("Project " + strconv.Itoa(i))
		if i == 0 {
			first = p
		}
		for j := range 100 {
			sim.AddFlow(p, "", "Flow "+strconv.Itoa(i)+"-"+strconv.Itoa(j))
		}
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	p := startExporterWithin(t, 60*time.Second, bin, "--activepieces.url="+srv.URL+"/api", "--api.rate-limit=10000", "--log.level=warn")
	base := "http://" + p.addr
	var quiet time.Duration // the slowest scrape without the crowd: the baseline
	for range 5 {
		t0 := time.Now()
		if _, code, err := scrape(base + "/metrics"); err != nil || code != 200 {
			t.Fatalf("scrape: %d %v", code, err)
		}
		quiet = max(quiet, time.Since(t0))
	}
	stop := time.Now().Add(10 * time.Second)
	var statusOK, statusBusy atomic.Int64
	done := make(chan struct{})
	for c := range 50 {
		go func() {
			defer func() { done <- struct{}{} }()
			paths := []string{"/status", "/status?project=" + first, "/status?project=none", "/status?q=Flow+7"}
			for i := 0; time.Now().Before(stop); i++ {
				_, code, err := scrape(base + paths[(c+i)%len(paths)])
				switch {
				case err == nil && code == 200:
					statusOK.Add(1)
				case err == nil && code == 503:
					statusBusy.Add(1)
				}
			}
		}()
	}
	var slowest, slowestReady time.Duration
	for time.Now().Before(stop) {
		t0 := time.Now()
		if _, code, err := scrape(base + "/metrics"); err != nil || code != 200 {
			t.Errorf("scrape: %d %v", code, err)
		}
		slowest = max(slowest, time.Since(t0))
		for range 5 {
			t1 := time.Now()
			if _, code, err := scrape(base + "/-/ready"); err != nil || code != 200 {
				t.Errorf("ready: %d %v", code, err)
			}
			slowestReady = max(slowestReady, time.Since(t1))
			time.Sleep(200 * time.Millisecond)
		}
	}
	for range 50 {
		<-done
	}
	peak := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("50 /status clients on 10,000 flows for 10 s: %d pages served, %d told to retry; slowest scrape %s (%s without them), slowest /-/ready %s, peak RSS %.0f MiB",
		statusOK.Load(), statusBusy.Load(), slowest.Round(time.Millisecond), quiet.Round(time.Millisecond), slowestReady.Round(time.Millisecond), peak)
	// 250 ms, or half again the slowest scrape without the crowd on a machine where reading
	// 10,000 flows' metrics alone takes longer (this test's client decompresses them too).
	limit := max(250*time.Millisecond, quiet*3/2)
	if slowest > limit || slowestReady > time.Second || peak > 250 {
		t.Errorf("slowest scrape %s (want ≤ %s), slowest /-/ready %s (≤ 1 s), peak RSS %.0f MiB (≤ 250)", slowest, limit, slowestReady, peak)
	}
	if statusOK.Load() == 0 {
		t.Error("no status page was served")
	}
}
