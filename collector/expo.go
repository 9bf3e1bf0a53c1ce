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

	dto "github.com/prometheus/client_model/go"
)

// WriteText writes the exporter's samples in the Prometheus text format (0.0.4): the same samples
// as Collect, written straight from the ledger without a metric object per sample.
func (e *Exporter) WriteText(w io.Writer) error {
	t := &textSink{w: bufio.NewWriterSize(w, 64<<10)}
	e.emit(t)
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}

type textSink struct {
	w    *bufio.Writer
	last *family // family whose HELP and TYPE were written last
	buf  []byte
	err  error
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

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
	t.buf = append(t.buf[:0], "# HELP "...)
	t.buf = append(t.buf, f.name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, helpEscaper.Replace(f.help)...)
	t.buf = append(t.buf, "\n# TYPE "...)
	t.buf = append(t.buf, f.name...)
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
	for i, idx := range f.order {
		if extraName != "" && i == f.lePos {
			pair(extraName, extraValue, false)
		}
		pair(f.labels[idx], lv[idx], true)
	}
	if extraName != "" && f.lePos == len(f.order) {
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
	t.buf = appendFloat(t.buf, v)
	t.buf = append(t.buf, '\n')
	t.write()
}

func (t *textSink) histogram(f *family, count uint64, sum float64, upper []float64, counts []uint64, lv ...string) {
	t.header(f)
	var cum uint64
	var le []byte
	for i, ub := range upper {
		cum += counts[i]
		le = appendFloat(le[:0], ub)
		t.line(f.name, "_bucket", f, lv, "le", string(le))
		t.buf = strconv.AppendUint(t.buf, cum, 10)
		t.buf = append(t.buf, '\n')
		t.write()
	}
	t.line(f.name, "_bucket", f, lv, "le", "+Inf")
	t.buf = strconv.AppendUint(t.buf, count, 10)
	t.buf = append(t.buf, '\n')
	t.write()
	t.line(f.name, "_sum", f, lv, "", "")
	t.buf = appendFloat(t.buf, sum)
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
}

func (x *exposition) markServed(gen uint64) {
	for {
		old := x.served.Load()
		if gen <= old || x.served.CompareAndSwap(old, gen) {
			return
		}
	}
}

// refreshExposition re-renders the cached exposition. Called after every poll.
func (e *Exporter) refreshExposition() error {
	e.expo.buf.Reset()
	zw, err := gzip.NewWriterLevel(&e.expo.buf, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := e.WriteText(zw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	gz := bytes.Clone(e.expo.buf.Bytes())
	e.mu.RLock()
	gen := e.completed
	e.mu.RUnlock()
	e.expo.mu.Lock()
	e.expo.gz, e.expo.gen = gz, gen
	e.expo.mu.Unlock()
	return nil
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
