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
	sim, flows := raceHistorySim()
	cfg := Config{PollInterval: 150 * time.Millisecond, FlowsInterval: 300 * time.Millisecond, OverlapInterval: 200 * time.Millisecond,
		Overlap: time.Second, HistoryRate: 20, RateLimit: 10000, Lookback: time.Hour}
	exp, stop := runAgainst(t, sim, cfg)
	start := time.Now()

	var reads atomic.Int64
	stopReaders := startRaceReaders(t, exp, &reads)
	overlapped, rounds, historySeen := raceTraffic(sim, exp, flows)
	time.Sleep(time.Second) // late rows and the last retries are swept
	stopReaders()
	stop()
	if !historySeen {
		t.Errorf("the history was never seen pending")
	}
	// 40 pages at 20 a second take 2 s: at 20 ms a round, at least 25 rounds (half a second)
	// must have run while pages were still being read, or polls and history did not overlap.
	if overlapped < 25 {
		t.Errorf("only %d of %d traffic rounds ran while the history was pending", overlapped, rounds)
	}
	if reads.Load() < 100 {
		t.Errorf("only %d reads of the metrics and status while running", reads.Load())
	}
	t.Logf("%d reads in %s; %d of %d traffic rounds overlapped the history", reads.Load(), time.Since(start).Round(time.Millisecond), overlapped, rounds)
}

// raceHistorySim is a simulator with a project of long history (two flows, 40,000 runs over the
// last 50 minutes, one in 7 failed) and a small one (one flow); it returns the three flows.
func raceHistorySim() (*simulator.Server, []string) {
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
	return sim, flows
}

// startRaceReaders starts the readers: what the HTTP handlers call, in a loop, from 3 goroutines,
// each round counted in reads. The returned func stops them and waits until they have.
func startRaceReaders(t *testing.T, exp *Exporter, reads *atomic.Int64) (stop func()) {
	var readers sync.WaitGroup
	done := make(chan struct{})
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				exp.Served(exp.Snapshot().Poll)
				if _, err := exp.OpenMetricsSnapshot(); err != nil {
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
	return func() {
		close(done)
		readers.Wait()
	}
}

// raceTraffic makes the traffic: new runs, failures retried (the watch and the sweeps have work),
// late rows. It goes on until the history has been read (however fast this machine reads it),
// then for half a second more, or until 150 rounds (3 s) overlapped a history still pending. It
// returns how many rounds overlapped the pending history, of how many, and whether the history
// was ever seen pending.
func raceTraffic(sim *simulator.Server, exp *Exporter, flows []string) (overlapped, rounds int, historySeen bool) {
	var created []string
	var historyDoneAt time.Time
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		pending := exp.HistoryPending()
		switch {
		case pending > 0:
			historySeen = true
			overlapped++
		case historySeen && historyDoneAt.IsZero():
			historyDoneAt = time.Now()
		}
		if overlapped >= 150 || !historyDoneAt.IsZero() && time.Since(historyDoneAt) > 500*time.Millisecond {
			break // 3 s of overlap is enough; a slow machine need not read all of it
		}
		rounds++
		spec := simulator.RunSpec{FlowID: flows[i%3], Status: apiclient.StatusFailed}
		if i%4 == 0 {
			spec.VisibleAfter = 300 * time.Millisecond
		}
		created = append(created, sim.AddRun(spec))
		switch {
		case i%5 == 4:
			sim.RetryRun(created[i-3], simulator.RetryFromFailedStep)
		case i%5 == 0 && i > 0:
			sim.SetRunStatus(created[i-4], apiclient.StatusSucceeded) // the retry succeeds
		}
		time.Sleep(20 * time.Millisecond)
	}
	return overlapped, rounds, historySeen
}
