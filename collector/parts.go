package collector

import (
	"bufio"
	"io"
	"iter"
	"strings"
)

// A rendering in parts: what changed is rendered again, the rest is the bytes its publisher kept.
// At 10,000 flows a whole rendering is tens of MB of text, and at rest nothing in it changes but
// a few samples per project (the poll timestamps). So a rendering is cut into parts, in order: for
// a family of per-project series (the flows' and the projects' own), its HELP and TYPE, then one
// part per project holding that project's samples of it; every other family (the exporter's own,
// small) is a part whole. A project's parts keep their Version until that project changes
// (projectState.gen): a publisher that kept a part's bytes (compressed: cmd's gzip cache) reuses
// them, and renders only the parts of the projects that changed and the small ones.

// Part is one part of a rendering (Rendering.Parts). Parts written in order make exactly the
// bytes Rendering.WriteTo writes. A Part with the Key and Version of one written before holds the
// same bytes (in the same format); a part whose Version is new must be written.
type Part struct {
	// Key names the part among the rendering's parts: its family, and its project if any.
	Key string
	// Version changes whenever the part's bytes may have.
	Version uint64
	write   func(w io.Writer) error
}

// WriteTo writes the part's bytes to w. Like Rendering.WriteTo, it is valid during the publish
// call only.
func (p Part) WriteTo(w io.Writer) (int64, error) {
	c := &countingWriter{w: w}
	err := p.write(c)
	return c.n, err
}

// Parts yields the rendering's parts in order (see Part). It is valid during the publish call
// only, and is to be ranged over once per publish.
func (r Rendering) Parts() iter.Seq[Part] { return r.m.parts(r.OpenMetrics) }

// partKey is a part of a family's per-project samples: the family (its index) and the project.
// A project is named by its state, not its id: a project removed and discovered again is another
// (the book holds the old one while it remembers its parts).
type partKey struct {
	fam     int
	project *projectState
}

// partMeta is what the model's owner remembers of a part it gave a publisher: of which version of
// its project (gen), under which Version, and whether it has samples at all (an empty part is
// left out, and a family none of whose parts has samples has no HELP and TYPE either: as a whole
// rendering writes them).
type partMeta struct {
	gen, version uint64
	samples      bool
}

// partBook is the model's record of the parts given to the publisher, per format. Owned by the
// model's owner, like the rest of the model.
type partBook struct {
	meta map[partKey]partMeta
	next uint64 // the last Version handed out
}

// headerVersion is the Version of every family's HELP and TYPE part: they never change.
const headerVersion = 1

// partedFamily reports whether a family's samples are per project: every flow family (the view
// lists flows grouped by project), and the projects' and folders' info and per-project
// histograms. The exporter's own families are parts whole.
func partedFamily(name string) bool {
	return strings.HasPrefix(name, "activepieces_flow_") || strings.HasPrefix(name, "activepieces_project_") ||
		name == "activepieces_folder_info"
}

// parts yields the parts of a rendering in format om. Every part but a reused project's is
// rendered anew; what the publisher skipped it kept from before.
func (e *model) parts(om bool) iter.Seq[Part] {
	return func(yield func(Part) bool) {
		book := &e.partBooks[b2i(om)]
		if book.next < headerVersion {
			book.next = headerVersion
		}
		v := e.viewLocked()
		subs := v.byProject()
		meta := make(map[partKey]partMeta, len(book.meta))
		defer func() { book.meta = meta }() // what no project has any more is forgotten
		for fi, f := range e.fam {
			if !f.parted {
				book.next++
				if !yield(Part{Key: f.name, Version: book.next, write: func(w io.Writer) error { return writeFamily(w, om, f, v, false) }}) {
					return
				}
				continue
			}
			if !yieldParted(yield, book, meta, fi, f, subs, om) {
				return
			}
		}
	}
}

// yieldParted yields a per-project family: its header when any project has samples of it, then
// each project's samples that has any, under the Version they were given while the project has
// not changed.
func yieldParted(yield func(Part) bool, book *partBook, meta map[partKey]partMeta, fi int, f *family, subs []*view, om bool) bool {
	some := false
	for _, sub := range subs {
		p := sub.projects[0]
		k := partKey{fi, p}
		m, ok := book.meta[k]
		if !ok || m.gen != p.gen {
			book.next++
			m = partMeta{gen: p.gen, version: book.next, samples: hasSamples(f, sub)}
		}
		meta[k] = m
		some = some || m.samples
	}
	if !some {
		return true
	}
	if !yield(Part{Key: f.name, Version: headerVersion, write: func(w io.Writer) error { return writeHeader(w, om, f) }}) {
		return false
	}
	for _, sub := range subs {
		m := meta[partKey{fi, sub.projects[0]}]
		if !m.samples {
			continue
		}
		if !yield(Part{Key: f.name + "\x00" + sub.projects[0].id, Version: m.version,
			write: func(w io.Writer) error { return writeFamily(w, om, f, sub, true) }}) {
			return false
		}
	}
	return true
}

// writeFamily writes f's samples of v to w; headless: without the HELP and TYPE (a project's
// part of a family).
func writeFamily(w io.Writer, om bool, f *family, v *view, headless bool) error {
	t := &textSink{w: bufio.NewWriterSize(w, 16<<10), om: om}
	if headless {
		t.last = f
	}
	f.write(v, t, f)
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}

// writeHeader writes f's HELP and TYPE.
func writeHeader(w io.Writer, om bool, f *family) error {
	t := &textSink{w: bufio.NewWriterSize(w, 1<<10), om: om}
	t.header(f)
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}

// hasSamples reports whether f has any sample in v, without formatting one.
func hasSamples(f *family, v *view) bool {
	var c countSink
	f.write(v, &c, f)
	return c.n > 0
}

// countSink counts samples and histograms.
type countSink struct{ n int }

func (c *countSink) sample(*family, float64, ...string)                                 { c.n++ }
func (c *countSink) histogram(*family, uint64, float64, []float64, []uint64, ...string) { c.n++ }
func (c *countSink) exemplars(...exemplar)                                              {}

// byProject splits the view into one per project: its flows (the view lists them grouped by
// project, in the projects' order) and itself.
func (v *view) byProject() []*view {
	subs := make([]*view, len(v.projects))
	start := 0
	for i, p := range v.projects {
		end := start
		for end < len(v.flows) && v.flows[end].project == p {
			end++
		}
		subs[i] = &view{e: v.e, projects: v.projects[i : i+1 : i+1], flows: v.flows[start:end:end]}
		start = end
	}
	return subs
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
