package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
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
	t0 := time.Now()
	g.run()
	p := startExporter(t, bin, args...)
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
	p := &exporterProc{addr: testkit.FreePort(t)}
	p.cmd = exec.Command(bin, append(args, "--web.listen-address="+p.addr, "--log.format=json")...)
	p.cmd.Env = append(os.Environ(), "ACTIVEPIECES_API_KEY="+simulator.DefaultAPIKey)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, code, err := scrape("http://" + p.addr + "/metrics"); err == nil && code == 200 {
			return p
		}
	}
	t.Fatalf("exporter not answering after 20 s:\n%s", p.logs.String())
	return nil
}
