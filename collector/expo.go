package collector

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// WriteText writes the exporter's samples in the Prometheus text format (0.0.4): the same samples
// as Collect, written straight from the ledger without a metric object per sample.
func (e *Exporter) WriteText(w io.Writer) error {
	m, release := e.acquire()
	defer release()
	return m.write(w, false)
}

// WriteOpenMetrics writes the same samples in the OpenMetrics text format (1.0.0), with
// exemplars {run_id="…"} on the FAILED and TIMEOUT series of activepieces_flow_runs_total and on
// the duration buckets (the latest run observed in each). It does not write the closing
// "# EOF": whoever appends other metrics writes it.
func (e *Exporter) WriteOpenMetrics(w io.Writer) error {
	m, release := e.acquire()
	defer release()
	return m.write(w, true)
}

func (e *model) write(w io.Writer, om bool) error {
	t := &textSink{w: bufio.NewWriterSize(w, 64<<10), om: om}
	e.emit(t)
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}

// textSink writes the text format, or with om the OpenMetrics one: counters' families are named
// without _total, HELP escapes quotes too, and samples may carry exemplars.
type textSink struct {
	w    *bufio.Writer
	om   bool
	last *family // family whose HELP and TYPE were written last
	buf  []byte
	err  error
	ex   []exemplar // for the next sample or histogram
}

func (t *textSink) exemplars(ex ...exemplar) { t.ex = ex }

var (
	helpEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	omHelpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// appendExemplar appends an exemplar's ` # {run_id="…"} value timestamp` (OpenMetrics only).
func (t *textSink) appendExemplar(x exemplar) {
	if !t.om || x.runID == "" {
		return
	}
	t.buf = append(t.buf, ` # {run_id="`...)
	t.buf = appendEscaped(t.buf, x.runID)
	t.buf = append(t.buf, `"} `...)
	t.buf = appendOMFloat(t.buf, x.value)
	if !x.at.IsZero() {
		t.buf = append(t.buf, ' ')
		t.buf = appendOMFloat(t.buf, float64(x.at.UnixNano())/1e9)
	}
}

// appendOMFloat writes a float as OpenMetrics wants it (and expfmt writes it): with ".0" when
// it would otherwise read as an integer.
func appendOMFloat(b []byte, v float64) []byte {
	start := len(b)
	b = appendFloat(b, v)
	if math.IsInf(v, 0) || math.IsNaN(v) || bytes.ContainsAny(b[start:], "e.") {
		return b
	}
	return append(b, ".0"...)
}

// appendValue writes a sample value in the sink's format.
func (t *textSink) appendValue(v float64) {
	if t.om {
		t.buf = appendOMFloat(t.buf, v)
	} else {
		t.buf = appendFloat(t.buf, v)
	}
}

func (t *textSink) header(f *family) {
	if t.last == f {
		return
	}
	t.last = f
	typ := "gauge"
	switch f.typ {
	case dto.MetricType_COUNTER:
		typ = "counter"
	case dto.MetricType_HISTOGRAM:
		typ = "histogram"
	}
	name, help := f.name, helpEscaper.Replace(f.help)
	if t.om {
		help = omHelpEscaper.Replace(f.help)
		if f.typ == dto.MetricType_COUNTER {
			name = strings.TrimSuffix(name, "_total") // the family; its sample is name_total
		}
	}
	t.buf = append(t.buf[:0], "# HELP "...)
	t.buf = append(t.buf, name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, help...)
	t.buf = append(t.buf, "\n# TYPE "...)
	t.buf = append(t.buf, name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, typ...)
	t.buf = append(t.buf, '\n')
	t.write()
}

func (t *textSink) write() {
	if t.err == nil {
		_, t.err = t.w.Write(t.buf)
	}
}

// line appends `name{labels} ` to t.buf, labels sorted by name; extraName (le) is placed at the
// family's lePos.
func (t *textSink) line(name, suffix string, f *family, lv []string, extraName, extraValue string) {
	t.buf = append(t.buf[:0], name...)
	t.buf = append(t.buf, suffix...)
	if len(lv) == 0 && extraName == "" {
		t.buf = append(t.buf, ' ')
		return
	}
	t.buf = append(t.buf, '{')
	n := 0
	pair := func(k, v string, escape bool) {
		if n > 0 {
			t.buf = append(t.buf, ',')
		}
		n++
		t.buf = append(t.buf, k...)
		t.buf = append(t.buf, `="`...)
		if escape {
			t.buf = appendEscaped(t.buf, v)
		} else {
			t.buf = append(t.buf, v...)
		}
		t.buf = append(t.buf, '"')
	}
	lePos := f.lePos
	if t.om {
		lePos = len(f.order) // where expfmt's OpenMetrics encoder writes it
	}
	for i, idx := range f.order {
		if extraName != "" && i == lePos {
			pair(extraName, extraValue, false)
		}
		pair(f.labels[idx], lv[idx], true)
	}
	if extraName != "" && lePos == len(f.order) {
		pair(extraName, extraValue, false)
	}
	t.buf = append(t.buf, "} "...)
}

func appendEscaped(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\"\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func (t *textSink) sample(f *family, v float64, lv ...string) {
	t.header(f)
	t.line(f.name, "", f, lv, "", "")
	t.appendValue(v)
	if len(t.ex) > 0 {
		t.appendExemplar(t.ex[0])
		t.ex = nil
	}
	t.buf = append(t.buf, '\n')
	t.write()
}

func (t *textSink) histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, lv ...string) {
	t.header(f)
	ex := t.ex
	t.ex = nil
	bucketEx := func(i int) {
		if i < len(ex) {
			t.appendExemplar(ex[i])
		}
	}
	var cum uint64
	var le []byte
	for i, ub := range upper {
		cum += counts[i]
		if t.om {
			le = appendOMFloat(le[:0], ub)
		} else {
			le = appendFloat(le[:0], ub)
		}
		t.line(f.name, "_bucket", f, lv, "le", string(le))
		t.buf = strconv.AppendUint(t.buf, cum, 10)
		bucketEx(i)
		t.buf = append(t.buf, '\n')
		t.write()
	}
	t.line(f.name, "_bucket", f, lv, "le", "+Inf")
	t.buf = strconv.AppendUint(t.buf, count, 10)
	bucketEx(len(upper))
	t.buf = append(t.buf, '\n')
	t.write()
	t.line(f.name, "_sum", f, lv, "", "")
	t.appendValue(sum)
	t.buf = append(t.buf, '\n')
	t.write()
	t.line(f.name, "_count", f, lv, "", "")
	t.buf = strconv.AppendUint(t.buf, count, 10)
	t.buf = append(t.buf, '\n')
	t.write()
}

// Snapshot is the exporter's exposition as of one poll: its samples rendered in the text format
// and, once asked for, in OpenMetrics. It is immutable once published, and shared by every
// reader: do not modify its slices. Two snapshots of the same poll hold the same bytes in each
// format both have.
//
// With a publisher (WithPublished), the exporter keeps no bytes: the snapshots it returns hold
// their Poll only, each format having been written to the publisher (a Rendering) before readers
// could see that poll.
type Snapshot struct {
	// Poll is the poll whose results it holds: whoever serves it gives it to Served.
	Poll uint64
	// Text is the samples in the Prometheus text format (0.0.4), as WriteText writes them.
	Text []byte
	// OpenMetrics is the same samples in OpenMetrics (1.0.0) with exemplars, without the closing
	// "# EOF", as WriteOpenMetrics writes them; nil until OpenMetricsSnapshot has been called.
	OpenMetrics []byte
}

// exposition is what the model's owner publishes of the rendered metrics, and what its readers
// tell it back. Rendered after every poll: between polls nothing changes, so a scrape costs a
// copy, whatever the number of flows.
type exposition struct {
	// last is the latest snapshot as kept; only the model's owner stores it.
	last atomic.Pointer[kept]
	// wantOM is set by the first OpenMetricsSnapshot: renders include OpenMetrics from then on.
	wantOM atomic.Bool
	// served is the newest poll whose snapshot a scrape has been given (Served), raised by readers
	// and read by the model's owner (zeroServed).
	served atomic.Uint64
	// servedWake tells the model's owner that a newer snapshot has been served (capacity one:
	// a wake pending is enough), so that runs waiting for a new flow's zero series are applied
	// at once rather than at the project's next poll.
	servedWake chan struct{}
}

func newExposition() *exposition { return &exposition{servedWake: make(chan struct{}, 1)} }

// kept is a snapshot as the exporter keeps it: whole without a publisher, its Poll only with one.
type kept struct {
	Snapshot
	om bool // OpenMetrics of Poll was rendered (with a publisher, to it)
}

func (x *exposition) markServed(gen uint64) {
	for {
		old := x.served.Load()
		if gen <= old {
			return
		}
		if x.served.CompareAndSwap(old, gen) {
			select {
			case x.servedWake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// refreshExposition renders and publishes a snapshot of the exposition, and publishes with it the
// facts and (when a status page was asked for) the status snapshot of the same moment. Called
// after polls.
func (e *model) refreshExposition() error {
	defer e.publishFacts() // after the exposition: ready means /metrics has what it says
	if asked := e.pub.statusAskedAt.Load(); asked != 0 && e.now().Sub(time.Unix(0, asked)) < statusWanted {
		st := e.status()
		e.pub.status.Store(&st)
	}
	k := &kept{Snapshot: Snapshot{Poll: e.completed}}
	if err := e.renderFormat(k, false); err != nil {
		return err
	}
	var err error
	if e.expo.wantOM.Load() {
		// Without it when it fails: the next OpenMetricsSnapshot renders it again.
		err = e.renderFormat(k, true)
	}
	e.expo.last.Store(k)
	return err
}

// Rendering is one format of the exposition as of one poll, as the exporter gives it to its
// publisher (WithPublished): not bytes, but a writer of them, so that the exporter never holds a
// plain rendering (at 10k flows, over 60 MB per format).
type Rendering struct {
	// Poll is the poll whose results it holds.
	Poll uint64
	// OpenMetrics is the format: OpenMetrics (1.0.0) with exemplars, without the closing "# EOF",
	// as WriteOpenMetrics writes it; else the text format (0.0.4), as WriteText does.
	OpenMetrics bool
	m           *model
}

// WriteTo renders the samples to w, straight from the model, and returns the bytes written and
// the first error met. It is valid during the publish call only (it reads the model, which its
// owner holds then); it may be called more than once, each time writing the same bytes.
func (r Rendering) WriteTo(w io.Writer) (int64, error) {
	c := &countingWriter{w: w}
	err := r.m.write(c, r.OpenMetrics)
	return c.n, err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// renderFormat renders k's poll in one format (OpenMetrics with om): to the publisher, if any,
// else into bytes that k keeps.
func (e *model) renderFormat(k *kept, om bool) error {
	if e.onPublish != nil {
		if err := e.onPublish(Rendering{Poll: k.Poll, OpenMetrics: om, m: e}); err != nil {
			return err
		}
		k.om = k.om || om
		return nil
	}
	b, err := e.render(om)
	if err != nil {
		return err
	}
	if om {
		k.OpenMetrics = b
	} else {
		k.Text = b
	}
	k.om = k.om || om
	return nil
}

// render renders the text (or OpenMetrics) exposition into bytes of their own, allocated at the
// size of the last rendering in that format (a 10k-flow text is tens of MB: no growing by
// doubling, but for the first).
func (e *model) render(om bool) ([]byte, error) {
	size := &e.renderSize[0]
	if om {
		size = &e.renderSize[1]
	}
	var buf bytes.Buffer
	buf.Grow(*size + *size/16)
	if err := e.write(&buf, om); err != nil {
		return nil, err
	}
	*size = buf.Len()
	return slices.Clip(buf.Bytes()), nil // an append by a reader copies: the bytes are shared
}

// Snapshot is the exposition as of the last render (after every poll): the text format, and
// OpenMetrics if it has been asked for. It does not wait for a poll. With a publisher
// (WithPublished), it holds the poll only: the publisher has had the bytes.
func (e *Exporter) Snapshot() Snapshot { return e.expo.last.Load().Snapshot }

// OpenMetricsSnapshot is the exposition as of the last render, OpenMetrics included (with a
// publisher: written to it, and the snapshot holds the poll only). The first call renders
// OpenMetrics (waiting for the model's owner); from then on every render includes it.
func (e *Exporter) OpenMetricsSnapshot() (Snapshot, error) {
	e.expo.wantOM.Store(true)
	if k := e.expo.last.Load(); k.om {
		return k.Snapshot, nil
	}
	m, release := e.acquire()
	defer release()
	return m.openMetricsSnapshot()
}

// openMetricsSnapshot renders OpenMetrics for the first OpenMetrics scrape, and publishes it in a
// snapshot of the same poll as the text.
func (e *model) openMetricsSnapshot() (Snapshot, error) {
	k := *e.expo.last.Load()
	if k.om {
		return k.Snapshot, nil // rendered while this scrape waited for the model
	}
	if k.Poll != e.completed {
		// Polls since the last render (a tick left unrendered): both formats, of the same moment,
		// saved first as a poll's render is.
		if _, err := e.saveAndRender(); err != nil {
			return Snapshot{}, err
		}
		return e.expo.last.Load().Snapshot, nil
	}
	if err := e.renderFormat(&k, true); err != nil {
		return Snapshot{}, err
	}
	e.expo.last.Store(&k)
	return k.Snapshot, nil
}

// Served tells the exporter that a scrape has been given the snapshot of poll (Snapshot.Poll). A
// flow first listed in a poll serves its counters at 0; its counted runs are applied only after a
// scrape has been given that 0, so that Prometheus' increase() sees the first failure of a
// brand-new flow (or after 10 polls if nothing is served). Whoever serves the metrics calls it
// once the answer is written.
func (e *Exporter) Served(poll uint64) { e.expo.markServed(poll) }
