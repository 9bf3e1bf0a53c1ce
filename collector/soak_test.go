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
)

var soak = flag.Bool("soak", false, "run the 1M-run soak test (make test runs it)")

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// TestSoakMillionRunsFlatHeap pushes a million runs through the ledger, 1,000 per poll at one
// poll a second across 100 flows, a tenth of them seen RUNNING first, and checks that the heap
// after a million is no bigger than after the first 200,000: the seen-id ledger is bounded by the
// overlap window and finished runs leave the in-flight set.
func TestSoakMillionRunsFlatHeap(t *testing.T) {
	if !*soak {
		t.Skip("pass -soak")
	}
	clk := &clock{t: epoch}
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://127.0.0.1:1/api", APIKey: func() string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{}, api, slog.New(slog.NewTextHandler(io.Discard, nil)), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	p := newProjectState("pppppppppppppppppppp1", "P", e.startedAt)
	e.projects[p.id] = p
	var flows []apiclient.Flow
	for i := range 100 {
		flows = append(flows, apiclient.Flow{ID: fmt.Sprintf("flow%017d", i), Status: "ENABLED", Version: &apiclient.FlowVersion{DisplayName: fmt.Sprintf("Flow %d", i)}})
	}
	e.apply(p, &fetched{flowsListed: true, flows: flows, head: clk.Now(), started: true}, 1, clk.Now())
	e.expo.markServed(1) // scraped: runs of these flows are counted from the next poll on

	const perPoll, polls = 1000, 1000
	var pending []apiclient.FlowRun // seen RUNNING last poll, finished now
	n := 0
	var heapAt200k float64
	for poll := 2; poll <= polls+1; poll++ {
		clk.Advance(time.Second)
		now := clk.Now()
		f := &fetched{head: now, started: true}
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
			}
			f.listed = append(f.listed, r)
			n++
		}
		e.mu.Lock()
		e.apply(p, f, uint64(poll), now)
		e.mu.Unlock()
		if n == 200_000 {
			heapAt200k = heapMB()
		}
	}
	heapAt1M := heapMB()
	var counted float64
	for _, fl := range p.flows {
		for _, v := range fl.runs {
			counted += v
		}
	}
	t.Logf("runs %d, counted %.0f, heap after 200k %.1f MiB, after 1M %.1f MiB, seen ledger %d ids, tracked %d",
		n, counted, heapAt200k, heapAt1M, len(p.seen), len(p.tracked))
	if int(counted)+len(pending) != n {
		t.Errorf("counted %.0f + %d in flight of %d runs", counted, len(pending), n)
	}
	if heapAt1M > heapAt200k*1.2+2 {
		t.Errorf("heap grew from %.1f MiB (200k runs) to %.1f MiB (1M runs)", heapAt200k, heapAt1M)
	}
	if want := int(e.cfg.Overlap/time.Second+2) * perPoll; len(p.seen) > want {
		t.Errorf("seen ledger holds %d ids, want at most the overlap window's %d", len(p.seen), want)
	}
}
