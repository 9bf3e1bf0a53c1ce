package collector

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/simulator"
)

// Run with everything it does at once (spread polls, the background history reader, the retry
// watch, late-row sweeps) against a project with a long history, while the metrics, the status
// page and readiness are read from other goroutines, for long enough that history pages and
// polls overlap many times. Under -race (make test) any state read by one goroutine while
// another writes it fails the test; without -race it still checks that history and polls did
// overlap and that the readers were served meanwhile.
func TestRunRaceHistoryPollsAndReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of polling")
	}
	sim := simulator.New(simulator.Options{})
	big := sim.AddProject("big history")
	small := sim.AddProject("small")
	flows := []string{sim.AddFlow(big, "", "a"), sim.AddFlow(big, "", "b"), sim.AddFlow(small, "", "c")}
	now := time.Now()
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 40000 { // 40 pages of history, newest first
		st := apiclient.StatusSucceeded
		if i%7 == 0 {
			st = apiclient.StatusFailed
		}
		sim.AddRun(simulator.RunSpec{FlowID: flows[i%2], Status: st, Created: now.Add(-time.Duration(1 + rng.Int64N(int64(50*time.Minute))))})
	}
	cfg := Config{PollInterval: 150 * time.Millisecond, FlowsInterval: 300 * time.Millisecond, OverlapInterval: 200 * time.Millisecond,
		Overlap: time.Second, HistoryRate: 20, RateLimit: 10000, Lookback: time.Hour}
	exp, stop := runAgainst(t, sim, cfg)
	start := time.Now()

	// Readers: what the HTTP handlers call, in a loop.
	var readers sync.WaitGroup
	done := make(chan struct{})
	var reads atomic.Int64
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				_, gen := exp.Exposition()
				exp.MarkServed(gen)
				if _, _, err := exp.OpenMetrics(); err != nil {
					t.Error(err)
				}
				_ = exp.Status()
				_ = exp.Ready()
				exp.PollBudget()
				reads.Add(1)
				time.Sleep(time.Millisecond)
			}
		})
	}
	// Traffic: new runs, failures retried (the watch and the sweeps have work), late rows.
	var created []string
	var mu sync.Mutex
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		spec := simulator.RunSpec{FlowID: flows[i%3], Status: apiclient.StatusFailed}
		if i%4 == 0 {
			spec.VisibleAfter = 300 * time.Millisecond
		}
		id := sim.AddRun(spec)
		mu.Lock()
		created = append(created, id)
		mu.Unlock()
		switch {
		case i%5 == 4:
			sim.RetryRun(created[i-3], simulator.RetryFromFailedStep)
		case i%5 == 0 && i > 0:
			sim.SetRunStatus(created[i-4], apiclient.StatusSucceeded) // the retry succeeds
		}
		time.Sleep(20 * time.Millisecond)
	}
	pendingWhileTraffic := exp.HistoryPending()
	time.Sleep(time.Second) // late rows and the last retries are swept
	close(done)
	readers.Wait()
	stop()
	if pendingWhileTraffic == 0 {
		t.Errorf("the history was read before the traffic ended: polls and history did not overlap long enough")
	}
	if reads.Load() < 100 {
		t.Errorf("only %d reads of the metrics and status while running", reads.Load())
	}
	t.Logf("%d reads in %s; %d history projects pending when the traffic ended", reads.Load(), time.Since(start).Round(time.Millisecond), pendingWhileTraffic)
}
