package collector

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
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

// exposition caches the gzip-compressed text exposition, rendered after every poll: between polls
// nothing changes, so a scrape costs a copy, whatever the number of flows.
type exposition struct {
	mu  sync.RWMutex
	gz  []byte
	gen uint64       // the last poll whose results gz holds
	buf bytes.Buffer // reused between renders
	// served is the newest poll whose results a scrape has been given (MarkServed).
	served atomic.Uint64

	// The OpenMetrics rendering (with exemplars), gzip-compressed, of poll omGen: rendered with
	// the text one after every poll once a scrape has asked for it (wantOM), and at once for
	// the first such scrape.
	omMu   sync.Mutex
	om     []byte
	omGen  uint64
	wantOM atomic.Bool
}

func (x *exposition) markServed(gen uint64) {
	for {
		old := x.served.Load()
		if gen <= old || x.served.CompareAndSwap(old, gen) {
			return
		}
	}
}

// refreshExposition re-renders the cached exposition, and publishes with it the facts and (when
// a status page was asked for) the status snapshot of the same moment. Called after polls.
func (e *model) refreshExposition() error {
	gen := e.completed
	defer e.publishFacts() // after the exposition: ready means /metrics has what it says
	if asked := e.pub.statusAskedAt.Load(); asked != 0 && e.now().Sub(time.Unix(0, asked)) < statusWanted {
		st := e.status()
		e.pub.status.Store(&st)
	}
	gz, err := e.renderGzip(&e.expo.buf, false)
	if err != nil {
		return err
	}
	e.expo.mu.Lock()
	e.expo.gz, e.expo.gen = gz, gen
	e.expo.mu.Unlock()
	if e.expo.wantOM.Load() {
		e.expo.omMu.Lock()
		defer e.expo.omMu.Unlock()
		om, err := e.renderGzip(nil, true)
		if err != nil {
			return err
		}
		e.expo.om, e.expo.omGen = om, gen
	}
	return nil
}

// renderGzip renders the text (or OpenMetrics) exposition, gzip-compressed, in buf (reused when
// given).
func (e *model) renderGzip(buf *bytes.Buffer, om bool) ([]byte, error) {
	if buf == nil {
		buf = &bytes.Buffer{}
	}
	buf.Reset()
	zw, err := gzip.NewWriterLevel(buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := e.write(zw, om); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// OpenMetrics returns the exporter's metrics as of the last poll in the OpenMetrics format, with
// exemplars and without the closing "# EOF", gzip-compressed, and the poll they are of. The
// first call renders them; from then on they are rendered after every poll. The slice is shared:
// do not modify it.
func (e *Exporter) OpenMetrics() (gz []byte, poll uint64, err error) {
	e.expo.wantOM.Store(true)
	if gz, gen, ok := e.expo.openMetrics(); ok {
		return gz, gen, nil
	}
	// The first OpenMetrics scrape: rendered now, by the model's owner (from then on with
	// every render).
	m, release := e.acquire()
	defer release()
	if gz, gen, ok := e.expo.openMetrics(); ok {
		return gz, gen, nil
	}
	om, err := m.renderGzip(nil, true)
	if err != nil {
		return nil, 0, err
	}
	e.expo.omMu.Lock()
	defer e.expo.omMu.Unlock()
	e.expo.om, e.expo.omGen = om, m.completed
	return om, m.completed, nil
}

// openMetrics is the OpenMetrics rendering, if it is of the latest text rendering.
func (x *exposition) openMetrics() ([]byte, uint64, bool) {
	x.omMu.Lock()
	defer x.omMu.Unlock()
	x.mu.RLock()
	gen := x.gen
	x.mu.RUnlock()
	return x.om, x.omGen, x.om != nil && x.omGen == gen
}

// Exposition returns the exporter's metrics as of the last poll, in the text format (0.0.4),
// gzip-compressed, and the poll they are of. The slice is shared: do not modify it.
func (e *Exporter) Exposition() (gz []byte, poll uint64) {
	e.expo.mu.RLock()
	defer e.expo.mu.RUnlock()
	return e.expo.gz, e.expo.gen
}

// MarkServed tells the exporter that a scrape has been given the metrics of poll (as returned by
// Exposition). A flow first listed in a poll serves its counters at 0; its counted runs are
// applied only after a scrape has been given that 0, so that Prometheus' increase() sees the
// first failure of a brand-new flow (or after 10 polls if nothing is marked). Whoever serves the
// metrics calls it once the answer is written.
func (e *Exporter) MarkServed(poll uint64) { e.expo.markServed(poll) }
