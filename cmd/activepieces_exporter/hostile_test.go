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
