package collector

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

var soak = flag.Bool("soak", false, "run the 1M-run soak test (make test runs it)")

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// TestSoakMillionRunsFlatHeap pushes a million runs through the ledger, 200 per poll at one
// poll a second across 100 flows (5,000 s, beyond the one-hour late window), a tenth of them seen
// RUNNING first and 1% FAILED (watched for retries for 30 minutes), and checks that the heap
// after a million is no bigger than after the first 500,000: the seen-id ledger is bounded by the
// late window, the watched runs by the retry window, and finished runs leave the in-flight set.
func TestSoakMillionRunsFlatHeap(t *testing.T) {
	if !*soak {
		t.Skip("pass -soak")
	}
	clk := testkit.NewClock(epoch)
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{RetryWindow: 30 * time.Minute}, api, slog.New(slog.NewTextHandler(io.Discard, nil)), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	p := newProjectState("pppppppppppppppppppp1", "P", e.startedAt)
	e.m().projects[p.id] = p
	var flows []apiclient.Flow
	for i := range 100 {
		flows = append(flows, apiclient.Flow{ID: fmt.Sprintf("flow%017d", i), Status: "ENABLED", Version: &apiclient.FlowVersion{DisplayName: fmt.Sprintf("Flow %d", i)}})
	}
	e.m().applyLocked(p, &fetched{flowsListed: true, flows: flows, head: clk.Now(), started: true}, 1, clk.Now())
	e.expo.markServed(1) // scraped: runs of these flows are counted from the next poll on

	const perPoll, polls = 200, 5000
	var pending []apiclient.FlowRun // seen RUNNING last poll, finished now
	n := 0
	var heapAtHalf float64
	for poll := 2; poll <= polls+1; poll++ {
		clk.Advance(time.Second)
		now := clk.Now()
		f := &fetched{head: now, started: true}
		if poll%60 == 0 {
			f.watchListedAt = now // a flow refresh: watched runs past the retry window leave
		}
		for i := range pending {
			pending[i].Status = apiclient.StatusSucceeded
			pending[i].FinishTime = apiclient.Time{Time: now}
		}
		f.inflight, pending = pending, nil
		for i := range perPoll {
			created := now.Add(-time.Duration(perPoll-i) * time.Millisecond)
			r := apiclient.FlowRun{ID: fmt.Sprintf("run%018d", n), Created: apiclient.Time{Time: created}, ProjectID: p.id,
				FlowID: flows[n%len(flows)].ID, Status: apiclient.StatusSucceeded,
				StartTime: apiclient.Time{Time: created}, FinishTime: apiclient.Time{Time: created.Add(500 * time.Millisecond)}}
			if n%10 == 0 {
				r.Status, r.FinishTime = apiclient.StatusRunning, apiclient.Time{}
				pending = append(pending, r)
			} else if n%100 == 1 {
				r.Status = apiclient.StatusFailed
			}
			f.listed = append(f.listed, r)
			n++
		}
		e.m().applyLocked(p, f, uint64(poll), now)
		if n == 500_000 {
			heapAtHalf = heapMB()
		}
	}
	heapAt1M := heapMB()
	var counted float64
	for _, fl := range p.flows {
		for _, v := range fl.Runs {
			counted += v
		}
	}
	t.Logf("runs %d, counted %.0f, heap after 500k %.1f MiB, after 1M %.1f MiB, seen ledger %d ids, tracked %d, watched %d",
		n, counted, heapAtHalf, heapAt1M, len(p.seen), len(p.tracked), len(p.watched))
	if int(counted)+len(pending) != n {
		t.Errorf("counted %.0f + %d in flight of %d runs", counted, len(pending), n)
	}
	if heapAt1M > heapAtHalf*1.2+2 {
		t.Errorf("heap grew from %.1f MiB (500k runs) to %.1f MiB (1M runs)", heapAtHalf, heapAt1M)
	}
	if want := int((e.ledgerWindow()+e.ledgerWindow()/32)/time.Second+2) * perPoll; len(p.seen) > want {
		t.Errorf("seen ledger holds %d ids, want at most the late window's %d", len(p.seen), want)
	}
	if want := int((e.cfg.RetryWindow+time.Minute)/time.Second) * perPoll / 100; len(p.watched) > want {
		t.Errorf("%d runs watched, want at most the retry window's %d", len(p.watched), want)
	}
}

// TestLedgerMemoryPerRun measures what the ledgers cost per entry (README): an id in the seen
// ledger (every run created within the late window) and a watched run (every run that ended in
// a retryable status within the retry window).
func TestLedgerMemoryPerRun(t *testing.T) {
	if !*soak {
		t.Skip("pass -soak")
	}
	const n = 200_000
	p := newProjectState("pppppppppppppppppppp1", "P", epoch)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("run%018d", i)
	}
	before := heapMB()
	for i, id := range ids {
		p.seen.add(id, epoch.Add(time.Duration(i)*time.Millisecond))
	}
	seenBytes := (heapMB() - before) * (1 << 20) / n
	runtime.KeepAlive(p)
	before = heapMB()
	for i, id := range ids {
		created := epoch.Add(time.Duration(i) * time.Millisecond)
		p.watched[id] = watchedOf(&apiclient.FlowRun{ID: id, FlowID: "flow00000000000000001", Status: apiclient.StatusFailed,
			Created: apiclient.Time{Time: created}, StartTime: apiclient.Time{Time: created}, FinishTime: apiclient.Time{Time: created.Add(time.Second)}})
	}
	watchedBytes := (heapMB() - before) * (1 << 20) / n
	runtime.KeepAlive(p)
	t.Logf("seen ledger: %.0f bytes per run; watched: %.0f bytes per run (ids kept alive by the caller)", seenBytes, watchedBytes)
	if seenBytes > 48 || watchedBytes > 160 {
		t.Errorf("ledger memory per run: seen %.0f bytes (want <= 48), watched %.0f bytes (want <= 160)", seenBytes, watchedBytes)
	}
	runtime.KeepAlive(ids)
	runtime.KeepAlive(p)
}
