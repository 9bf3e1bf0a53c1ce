package collector

import (
	"time"

	"github.com/activepieces-exporter/activepieces_exporter/apiclient"
)

// The server's clock. Run times are the server's: the look-back, the retry window and how far in
// the future a creation time may be are measured on it. The Date header of its answers says
// what it is, but one load-balanced backend or a proxy with a bad clock can say anything, so the
// offset it gives is applied only when the runs' own times agree, and within bounds:
//
//   - lower evidence: the server's clock is at least at the newest time it stamped on a run read
//     (created, updated, startTime, finishTime);
//   - upper evidence: a run that was not visible at the previous poll was created after that
//     poll started (or is a late row), so the newest such creation time bounds the clock from above;
//   - a Date offset of up to maxDateOnlyOffset is applied on its own; a larger one only when a run
//     stamped within 5 minutes of it, or upper evidence, confirms it; never beyond maxClockOffset.
//
// An offset the runs contradict is logged and shown (activepieces_exporter_server_clock_offset_seconds)
// but not applied: the runs' own bounds are (0 when they do not exclude our clock). Both are
// re-checked after every poll. Counting does not depend on any of this: what a project's first
// poll lists is history, what appears later is counted (projectState.countFrom).
const (
	maxDateOnlyOffset = 15 * time.Minute
	maxClockOffset    = 24 * time.Hour
	clockTolerance    = 10 * time.Second // Date has whole seconds; a poll takes a moment
	clockWindow       = 10               // polls whose evidence is kept
)

type serverClock struct {
	date      time.Duration // Date − our clock, from the latest answer
	dateKnown bool
	applied   time.Duration
	// Evidence of the last clockWindow polls: lower and upper bounds of the offset.
	lows, highs []time.Duration
	rejected    bool // the Date offset is not applied (for logging the change only)
	// dateRead is the Date last read: a Date read again (no answer since) says nothing new, and
	// compared with a later moment of our clock it would look like an offset.
	dateRead time.Time
	logged   time.Duration // the offset last logged (0: none, or its end logged)
}

// clockEvidence is what one poll of one project says about the server's clock.
type clockEvidence struct {
	low, high     time.Duration
	lowOK, highOK bool
}

func stampOf(r *apiclient.FlowRun) time.Time {
	t := r.Created.Time
	for _, s := range []time.Time{r.Updated.Time, r.StartTime.Time, r.FinishTime.Time} {
		if s.After(t) {
			t = s
		}
	}
	return t
}

// clockEvidenceOf reads the runs of one poll of a project: read at our time now, listed by a
// poll whose previous one started at prev (zero: none) with the poll position head then.
func clockEvidenceOf(f *fetched, now, prev, head time.Time) clockEvidence {
	var ev clockEvidence
	plausible := func(d time.Duration) bool { return d > -maxClockOffset && d < maxClockOffset }
	for _, list := range [][]apiclient.FlowRun{f.listed, f.inflight, f.watchListed} {
		for i := range list {
			r := &list[i]
			if r.Invalid != "" {
				continue
			}
			if d := stampOf(r).Sub(now); plausible(d) && (!ev.lowOK || d > ev.low) {
				ev.low, ev.lowOK = d, true
			}
			if !prev.IsZero() && r.Created.After(head) {
				if d := r.Created.Sub(prev); plausible(d) && (!ev.highOK || d > ev.high) {
					ev.high, ev.highOK = d, true
				}
			}
		}
	}
	return ev
}

// addEvidence folds one poll's evidence (all projects) into the window.
func (c *serverClock) addEvidence(ev clockEvidence) {
	push := func(s []time.Duration, ok bool, v time.Duration) []time.Duration {
		if !ok {
			return s
		}
		s = append(s, v)
		if len(s) > clockWindow {
			s = s[len(s)-clockWindow:]
		}
		return s
	}
	c.lows = push(c.lows, ev.lowOK, ev.low)
	c.highs = push(c.highs, ev.highOK, ev.high)
}

func maxOf(s []time.Duration) (time.Duration, bool) {
	if len(s) == 0 {
		return 0, false
	}
	m := s[0]
	for _, v := range s[1:] {
		m = max(m, v)
	}
	return m, true
}

// decide computes the offset to apply from the Date offset and the evidence.
func (c *serverClock) decide() (applied time.Duration, dateApplied bool) {
	lo, loOK := maxOf(c.lows)
	hi, hiOK := maxOf(c.highs)
	if c.dateKnown {
		d := c.date
		consistent := (!loOK || d >= lo-clockTolerance) && (!hiOK || d <= hi+clockTolerance)
		confirmed := d.Abs() <= maxDateOnlyOffset || loOK && d-lo <= 5*time.Minute || hiOK
		if consistent && confirmed && d.Abs() <= maxClockOffset {
			return d, true
		}
	}
	// The runs' own bounds, as close to our clock as they allow.
	switch {
	case loOK && lo > 0:
		applied = lo
	case hiOK && hi < 0:
		applied = hi
	}
	return max(-maxClockOffset, min(maxClockOffset, applied)), false
}

// updateServerClock reads the latest Date, decides the offset to apply after a poll and logs
// what changed. Called with e.mu held.
func (e *model) updateServerClockLocked(ev clockEvidence) {
	c := &e.clock
	if date, ok := e.api.ServerDate(); ok && !date.Equal(c.dateRead) {
		c.date, c.dateKnown = date.Add(500*time.Millisecond).Sub(e.now()).Round(time.Second/10), true // Date is truncated to the second
		c.dateRead = date
	}
	c.addEvidence(ev)
	applied, dateApplied := c.decide()
	if applied.Abs() < minClockOffset {
		applied = 0 // within what a Date of whole seconds and a request's time can resolve
	}
	lo, _ := maxOf(c.lows)
	switch {
	case !dateApplied && !c.rejected && c.dateKnown && c.date.Abs() >= minClockOffset:
		e.log.Warn("the server's Date header disagrees with its runs' times (or is beyond bounds); not applied",
			"date_offset", c.date, "applied_offset", applied, "runs_newest_offset", lo)
	case dateApplied && c.rejected:
		e.log.Info("the server's Date header agrees with its runs' times again", "offset", c.date)
	}
	if c.dateKnown {
		c.rejected = !dateApplied && c.date.Abs() >= minClockOffset
	}
	// Logged when an offset starts and when it ends; how it moves meanwhile is the metric's
	// (activepieces_exporter_server_clock_offset_seconds) and the debug log's.
	switch {
	case applied != 0 && c.logged == 0:
		e.log.Warn("the server's clock differs from ours; comparing run times on the server's clock", "offset", applied)
		c.logged = applied
	case applied != 0 && applied != c.applied:
		e.log.Debug("the server's clock offset moved", "offset", applied)
	case applied == 0 && c.logged != 0:
		e.log.Info("the server's clock agrees with ours again", "previous_offset", c.logged)
		c.logged = 0
	}
	c.applied = applied
}

// minClockOffset is the smallest offset taken for one: below it, the Date header's whole seconds
// and a request's duration explain the difference.
const minClockOffset = 2 * time.Second

// serverNow is the server's clock as far as the exporter knows it.
func (e *model) serverNow() time.Time { return e.now().Add(e.clock.applied) }

func mergeEvidence(a, b clockEvidence) clockEvidence {
	if b.lowOK && (!a.lowOK || b.low > a.low) {
		a.low, a.lowOK = b.low, true
	}
	if b.highOK && (!a.highOK || b.high > a.high) {
		a.high, a.highOK = b.high, true
	}
	return a
}
