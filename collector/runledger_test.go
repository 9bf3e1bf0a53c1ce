package collector

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// The ledger as a state machine: runs are created, start, finish, are retried on the same row
// and finish again, while the ledger is shown them in any interleaving of the ways the poller
// reads them (the listing of new runs with an overlap, the refresh of runs in flight, the retry
// watch's listing and its re-read of watched runs, the look-back history), each possibly twice,
// and restarts (the ledger written to its saved form as JSON and read back) fall anywhere in
// between. Whatever the interleaving, each execution shown to the ledger is counted once: a
// run created after the exporter started counts every execution it was seen to finish; a run
// of the history counts the executions it was seen to finish after the one it was first seen
// with, if it was first seen finished (the baseline).
func TestLedgerCountsEachExecutionOnceInAnyInterleaving(t *testing.T) {
	for seed := range uint64(400) {
		if msg := ledgerScenario(seed); msg != "" {
			t.Fatalf("seed %d: %s", seed, msg)
		}
	}
}

// simRun is a run of the scenario: its row as the server has it now, and the executions it has
// finished so far (finish times).
type simRun struct {
	row      apiclient.FlowRun
	retries  int // retries left
	finishes []time.Time
	// flapped is the finished row a stale status upload showed RUNNING again: it goes back to
	// it, times and all.
	flapped *apiclient.FlowRun
}

// ledgerWorld is the scenario's server and what the ledger was shown.
type ledgerWorld struct {
	rng       *rand.Rand
	now       time.Time
	countFrom time.Time
	runs      []*simRun
	ledger    runLedger
	seq       uint64
	head      time.Time
	// shown: the finish times of each run's executions shown to the ledger, in order;
	// counted: how often each (run, finish) was counted.
	shown   map[string][]time.Time
	counted map[string]int
	// baseline: runs first shown already finished (for a run of the history, that execution
	// finished before the exporter knew it: not counted).
	baseline map[string]bool
	trace    []string
	reading  string // the read under way (for the trace)
}

func ledgerScenario(seed uint64) string {
	w := &ledgerWorld{rng: rand.New(rand.NewPCG(seed, 42)), now: time.UnixMilli(1_700_000_000_000).UTC(),
		ledger: newRunLedger(), shown: map[string][]time.Time{}, counted: map[string]int{}, baseline: map[string]bool{}}
	// History: runs that exist before the exporter's first poll, some finished, some in flight.
	for range 1 + w.rng.IntN(5) {
		w.create()
		if w.rng.IntN(3) > 0 {
			w.advance(w.runs[len(w.runs)-1])
		}
	}
	w.tick()
	w.firstPoll()
	for range 60 {
		w.tick()
		switch n := w.rng.IntN(10); {
		case n < 3:
			w.create()
		case n < 7 && len(w.runs) > 0:
			w.advance(w.runs[w.rng.IntN(len(w.runs))])
		}
		for range 1 + w.rng.IntN(3) {
			w.read(w.rng.IntN(6))
		}
	}
	// Settle: everything finishes, and a full poll shows it (twice).
	for _, r := range w.runs {
		for r.row.Status.IsInFlight() || r.retries > 0 && w.rng.IntN(2) == 0 {
			w.tick()
			w.advance(r)
			w.read(w.rng.IntN(6))
		}
	}
	for range 2 {
		for kind := range 4 {
			w.read(kind)
		}
	}
	return w.check()
}

func (w *ledgerWorld) tick() { w.now = w.now.Add(time.Duration(1+w.rng.IntN(3000)) * time.Millisecond) }

func (w *ledgerWorld) create() {
	st := apiclient.StatusQueued
	if w.rng.IntN(2) == 0 {
		st = apiclient.StatusRunning
	}
	r := &simRun{row: apiclient.FlowRun{ID: fmt.Sprintf("run%02d", len(w.runs)), FlowID: "flow", Status: st,
		Created: apiclient.Time{Time: w.now}}, retries: w.rng.IntN(3)}
	if st == apiclient.StatusRunning {
		r.row.StartTime = apiclient.Time{Time: w.now}
	}
	w.runs = append(w.runs, r)
	w.trace = append(w.trace, "create "+r.row.ID)
}

// advance moves a run one step through its life: QUEUED → RUNNING → a terminal status; a
// finished run with retries left is retried (from the failed step: RUNNING again, a new start);
// or a finished run's status flaps: RUNNING with its old times, then back.
func (w *ledgerWorld) advance(r *simRun) {
	row := &r.row
	switch {
	case r.flapped != nil:
		r.row, r.flapped = *r.flapped, nil
	case row.Status.IsTerminal() && w.rng.IntN(4) == 0:
		before := *row
		r.flapped = &before
		row.Status = apiclient.StatusRunning // a stale status upload: the times stay
	case row.Status == apiclient.StatusQueued:
		row.Status, row.StartTime = apiclient.StatusRunning, apiclient.Time{Time: w.now}
	case row.Status.IsInFlight():
		row.Status = []apiclient.RunStatus{apiclient.StatusSucceeded, apiclient.StatusFailed, apiclient.StatusTimeout, apiclient.StatusFailed}[w.rng.IntN(4)]
		row.FinishTime = apiclient.Time{Time: w.now}
		r.finishes = append(r.finishes, w.now)
	case row.Status.IsRetryable() && r.retries > 0:
		r.retries--
		row.Status, row.StartTime, row.FinishTime = apiclient.StatusRunning, apiclient.Time{Time: w.now}, apiclient.Time{}
	default:
		return
	}
	w.trace = append(w.trace, fmt.Sprintf("%s → %s", row.ID, row.Status))
}

func (w *ledgerWorld) rules(counting bool) *ledgerRules {
	return &ledgerRules{seq: w.seq, counting: counting, countFrom: w.countFrom, serverNow: w.now,
		retryWindow: 24 * time.Hour, maxTracked: 1000,
		skip: func(string) bool { return false }, intern: func(id string) string { return id }}
}

// firstPoll is the exporter's first read: what it lists is history.
func (w *ledgerWorld) firstPoll() {
	w.seq++
	w.countFrom = w.now.Add(time.Millisecond)
	w.reading = "first poll"
	var news ledgerNews
	rules := w.rules(false)
	for _, r := range w.runs {
		w.show(r, func(row *apiclient.FlowRun) { w.ledger.observe(row, "p", true, rules, &news) })
	}
	w.apply(&news, "first poll")
	w.head = w.now
}

// read shows the ledger the runs as one of the poller's reads would: 0 the listing of runs
// created since the head less an overlap, 1 the refresh of tracked runs, 2 the retry watch's
// listing, 3 its re-read of watched runs, 4 the history, 5 a restart.
func (w *ledgerWorld) read(kind int) {
	w.seq++
	var news ledgerNews
	rules := w.rules(true)
	name := [...]string{"listing", "refresh", "watch listing", "watch re-read", "history", "restart"}[kind]
	w.reading = name
	for _, r := range w.shuffled() {
		row := &r.row
		switch kind {
		case 0:
			if row.Created.After(w.head.Add(-time.Duration(w.rng.IntN(20)) * time.Second)) {
				w.show(r, func(row *apiclient.FlowRun) { w.ledger.observe(row, "p", true, rules, &news) })
			}
		case 1:
			if _, ok := w.ledger.tracked[row.ID]; ok {
				w.show(r, func(row *apiclient.FlowRun) { w.ledger.observe(row, "p", false, rules, &news) })
			}
		case 2:
			if row.Status.IsRetryable() {
				w.show(r, func(row *apiclient.FlowRun) { w.ledger.observeWatchListing(row, "p", w.head, rules, &news) })
			}
		case 3:
			if _, ok := w.ledger.watched[row.ID]; ok {
				w.show(r, func(row *apiclient.FlowRun) { w.ledger.observe(row, "p", false, rules, &news) })
			}
		case 4:
			if row.Created.Before(w.countFrom) {
				// The history never counts: a run the ledger knows (tracked, watched, seen) is
				// the poll's to count, so what the history shows of it is not an execution the
				// ledger was shown.
				_, tracked := w.ledger.tracked[row.ID]
				_, watched := w.ledger.watched[row.ID]
				known := tracked || watched || w.ledger.seen.has(row.ID)
				w.showAs(r, !known, func(row *apiclient.FlowRun) { w.ledger.observeHistory(row, "p", rules, &news) })
			}
		}
	}
	if kind == 0 {
		w.head = w.now
	}
	if kind == 5 {
		w.restart()
	}
	w.apply(&news, name)
}

func (w *ledgerWorld) shuffled() []*simRun {
	out := append([]*simRun(nil), w.runs...)
	w.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// show shows the ledger a copy of the run's row (twice, now and then: a duplicate read), and
// notes the execution shown when the row is finished.
func (w *ledgerWorld) show(r *simRun, observe func(*apiclient.FlowRun)) { w.showAs(r, true, observe) }

// showAs is show, noting the execution shown only when record says so.
func (w *ledgerWorld) showAs(r *simRun, record bool, observe func(*apiclient.FlowRun)) {
	for range 1 + w.rng.IntN(2) {
		row := r.row
		observe(&row)
	}
	w.trace = append(w.trace, fmt.Sprintf("  %s shows %s %s", w.reading, r.row.ID, r.row.Status))
	if _, ok := w.baseline[r.row.ID]; !ok {
		w.baseline[r.row.ID] = r.row.Status.IsTerminal()
	}
	if r.row.Status.IsTerminal() && record {
		s := w.shown[r.row.ID]
		if len(s) == 0 || !s[len(s)-1].Equal(r.row.FinishTime.Time) {
			w.shown[r.row.ID] = append(s, r.row.FinishTime.Time)
		}
	}
}

func (w *ledgerWorld) apply(news *ledgerNews, how string) {
	for _, pr := range news.finished {
		if pr.Count {
			key := pr.Run.ID + "@" + pr.Run.FinishTime.Format(time.RFC3339Nano)
			w.counted[key]++
			w.trace = append(w.trace, fmt.Sprintf("  %s counted %s", how, key))
		}
	}
}

// restart writes the ledger to its saved form, as JSON, and reads it back into a new one.
func (w *ledgerWorld) restart() {
	var ps projectSaved
	w.ledger.saveTo(&ps)
	b, err := json.Marshal(&ps)
	if err != nil {
		panic(err)
	}
	var back projectSaved
	if err := json.Unmarshal(b, &back); err != nil {
		panic(err)
	}
	w.ledger = newRunLedger()
	w.ledger.restoreFrom(&back)
}

// check compares what was counted with the executions shown.
func (w *ledgerWorld) check() string {
	var problems []string
	want := map[string]int{}
	for _, r := range w.runs {
		shown := w.shown[r.row.ID]
		if r.row.Created.Before(w.countFrom) && w.baseline[r.row.ID] && len(shown) > 0 {
			shown = shown[1:] // the baseline
		}
		for _, f := range shown {
			want[r.row.ID+"@"+f.Format(time.RFC3339Nano)] = 1
		}
	}
	for k, n := range want {
		if w.counted[k] != n {
			problems = append(problems, fmt.Sprintf("%s counted %d times, want %d", k, w.counted[k], n))
		}
	}
	for k, n := range w.counted {
		if want[k] == 0 {
			problems = append(problems, fmt.Sprintf("%s counted %d times, but was never shown finished (or is the baseline)", k, n))
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return strings.Join(problems, "; ") + "\ntrace:\n" + strings.Join(w.trace, "\n")
}

// fnv64a is hash/fnv's FNV-1a: the ledger's run ids in state files and the shard of a project
// depend on it staying so.
func TestFNV64aIsHashFNV(t *testing.T) {
	for _, s := range []string{"", "a", "run00", "vgmGONtoKCF0rTNfyNgPn", strings.Repeat("é", 100)} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s))
		if got, want := fnv64a(s), h.Sum64(); got != want {
			t.Errorf("fnv64a(%q) = %x, hash/fnv says %x", s, got, want)
		}
	}
}
