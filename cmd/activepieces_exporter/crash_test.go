package main

import (
	"syscall"
	"testing"
	"time"
)

// A crash (SIGKILL) right after a scrape that showed new counts, ten times over, with runs
// finishing through every path (new runs, runs in flight, late rows, retries): the restarted
// exporter, scraped as early as it answers, never serves a counter lower than the last scrape
// before the kill (Prometheus would take it for a reset and count the series again), and in the
// end every run is counted once.
func TestKillsRightAfterAScrapeNeverLowerACounter(t *testing.T) {
	bin := buildBinary(t)
	g := newGeneratedPlatform(t, 5, "300ms")
	args := g.args
	p := startExporter(t, bin, args...)
	// Runs from now on are the exporter's to count: a row that finished before its first read
	// and shows late is history (the simulator's record would count it).
	t0 := time.Now()
	g.run()
	lowered := 0
	for round := range 10 {
		last := p.totals(t)
		deadline := time.Now().Add(10 * time.Second)
		for equalCounts(last, p.totals(t)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		seen := p.totals(t) // a scrape with new counts: kill at once
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		p = startAnswering(t, bin, args...)
		restored := p.totals(t)
		for k, v := range seen {
			if restored[k] < v {
				lowered++
				t.Errorf("round %d: %v served %d before the kill, %d by the restarted exporter", round, k, v, restored[k])
			}
		}
	}
	g.stop()
	got, want, produced := settle(t, g.sim, p, t0, 30*time.Second)
	if !equalCounts(got, want) {
		t.Fatalf("totals differ from the simulator's record\n got %v\nwant %v\nlogs after the last restart:\n%s", got, want, p.logs.String())
	}
	t.Logf("10 kills right after a scrape: %d counters served lower after a restart; %d finished runs counted exactly", lowered, produced)
}

// startAnswering starts the exporter and returns as soon as /metrics answers (before it is
// ready: what a restarted exporter serves from its state file before its first poll counts).
func startAnswering(t *testing.T, bin string, args ...string) *exporterProc {
	t.Helper()
	return startExporterUntil(t, 20*time.Second, "/metrics", bin, args...)
}
