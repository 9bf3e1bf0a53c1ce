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
// their Poll only, the publisher having been lent each format's bytes before readers could see
// that poll.
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
}

// kept is a snapshot as the exporter keeps it: whole without a publisher, its Poll only with one.
type kept struct {
	Snapshot
	om bool // OpenMetrics of Poll was rendered (and, with a publisher, handed to it)
}

func (x *exposition) markServed(gen uint64) {
	for {
		old := x.served.Load()
		if gen <= old || x.served.CompareAndSwap(old, gen) {
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
	om := e.expo.wantOM.Load()
	r := e.renderer(true, om)
	k := &kept{Snapshot: Snapshot{Poll: e.completed}}
	if err := r.format(k, false); err != nil {
		return err
	}
	var err error
	if om {
		// Without it when it fails: the next OpenMetricsSnapshot renders it again.
		err = r.format(k, true)
	}
	e.expo.last.Store(k)
	return err
}

// renderer renders the formats of one snapshot. With a publisher, they take turns in one buffer,
// lent to the publisher for its call (so one plain rendering at most is alive, and none once
// published); without one, each has bytes of its own, which the snapshot keeps.
type renderer struct {
	m   *model
	buf []byte // with a publisher: the buffer lent, cut to length 0
}

// renderer is a renderer of a snapshot in the text format (with text) and OpenMetrics (with om).
func (e *model) renderer(text, om bool) *renderer {
	r := &renderer{m: e}
	if e.onPublish != nil {
		r.buf = e.renderBuffer(text, om)
	}
	return r
}

// format renders k's poll in one format (OpenMetrics with om), hands it to the publisher if any,
// else keeps it in k.
func (r *renderer) format(k *kept, om bool) error {
	e := r.m
	buf := r.buf
	if e.onPublish == nil {
		buf = e.renderBuffer(!om, om)
	}
	b, err := e.render(buf, om)
	if err != nil {
		return err
	}
	k.om = k.om || om
	if e.onPublish == nil {
		if om {
			k.OpenMetrics = slices.Clip(b) // an append by a reader copies: the bytes are shared
		} else {
			k.Text = slices.Clip(b)
		}
		return nil
	}
	r.buf = b[:0] // grown if it had to be: the next format has it
	s := Snapshot{Poll: k.Poll}
	if om {
		s.OpenMetrics = b
	} else {
		s.Text = b
	}
	e.onPublish(s)
	return nil
}

// renderBuffer is an empty buffer for renderings in the text format (with text) and OpenMetrics
// (with om): the size of the largest of their last renderings, plus a sixteenth. At 10k flows a
// rendering is tens of MB, which growing by appending would allocate about thrice over; so a
// format whose last rendering was small (under countBelow) or none, as before a first poll, is
// counted first (rendered to a counter), a cheap pass when it is small again.
func (e *model) renderBuffer(text, om bool) []byte {
	n := 0
	for i, want := range [2]bool{text, om} {
		if !want {
			continue
		}
		if e.renderSize[i] < countBelow {
			var c byteCounter
			if e.write(&c, i == 1) == nil {
				e.renderSize[i] = int(c)
			}
		}
		n = max(n, e.renderSize[i])
	}
	return make([]byte, 0, n+n/16)
}

// countBelow is the size of rendering under which the next one is counted before it is rendered.
const countBelow = 1 << 20

// byteCounter is an io.Writer that counts what it is given.
type byteCounter int

func (c *byteCounter) Write(p []byte) (int, error) {
	*c += byteCounter(len(p))
	return len(p), nil
}

// render renders the text (or OpenMetrics) exposition appended to buf (given at length 0, and
// grown only if the rendering outgrows it), never nil.
func (e *model) render(buf []byte, om bool) ([]byte, error) {
	w := sliceWriter{b: buf}
	if w.b == nil {
		w.b = []byte{}
	}
	if err := e.write(&w, om); err != nil {
		return nil, err
	}
	if om {
		e.renderSize[1] = len(w.b)
	} else {
		e.renderSize[0] = len(w.b)
	}
	return w.b, nil
}

// sliceWriter is an io.Writer appending to a slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Snapshot is the exposition as of the last render (after every poll): the text format, and
// OpenMetrics if it has been asked for. It does not wait for a poll. With a publisher
// (WithPublished), it holds the poll only: the publisher has had the bytes.
func (e *Exporter) Snapshot() Snapshot { return e.expo.last.Load().Snapshot }

// OpenMetricsSnapshot is the exposition as of the last render, OpenMetrics included (with a
// publisher: handed to it, and the snapshot holds the poll only). The first call renders
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
	if err := e.renderer(false, true).format(&k, true); err != nil {
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
