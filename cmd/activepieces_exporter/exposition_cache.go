package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// gzipCache holds the exporter's snapshots gzip-compressed, per format: a poll's exposition is
// compressed once, however many scrapes take it, and only its compressed bytes are kept (at 10k
// flows about 5 MB per format, where the plain text is over 60 MB). Each format of a snapshot is
// rendered into gzip as the exporter publishes it (published, its collector.WithPublished hook),
// before scrapes can take it: at 10k flows that takes a quarter of a second or more, which a
// scrape must not wait for (nor spend of its fast window). With the hook, the exporter keeps no
// plain bytes, nor makes any: this cache is the only copy of what /metrics serves. Without it
// (tests), the first scrape that needs a poll compresses the snapshot's plain bytes. Safe for
// concurrent use; the zero value is ready.
type gzipCache struct {
	text, om gzipped
}

// gzipped is one format's snapshot, gzip-compressed.
type gzipped struct {
	// mu is held while compressing, so that a poll is compressed once: last is stored under it
	// only, and moves to newer polls only. Readers load last without it.
	mu   sync.Mutex
	last atomic.Pointer[compressed]
}

// compressed is the gzip-compressed bytes of a snapshot (one gzip member), immutable.
type compressed struct {
	poll uint64
	gz   []byte
}

func (c *gzipCache) format(om bool) *gzipped {
	if om {
		return &c.om
	}
	return &c.text
}

// published compresses r, straight from the exporter's model into gzip: no plain copy of it is
// made. The exporter calls it as it publishes r's poll, on its poll's goroutine, before any scrape
// can take that poll; an error (there is none but an invalid level) is the render's.
func (c *gzipCache) published(r collector.Rendering) error {
	_, err := c.format(r.OpenMetrics).compress(r.Poll, r.WriteTo)
	return err
}

// get is the snapshot of poll in the format, gzip-compressed: that of poll, or of a newer poll
// compressed meanwhile; and the poll it is of. plain is the snapshot's bytes in the format, which
// it compresses if no such poll is yet; nil when the exporter keeps none (it has the hook).
func (c *gzipCache) get(om bool, poll uint64, plain []byte) (gz []byte, of uint64, err error) {
	g := c.format(om)
	if last := g.last.Load(); last != nil && last.poll >= poll {
		return last.gz, last.poll, nil
	}
	if plain == nil {
		return nil, 0, fmt.Errorf("poll %d was not compressed as the exporter published it", poll)
	}
	last, err := g.compress(poll, bytes.NewReader(plain).WriteTo)
	if err != nil {
		return nil, 0, err
	}
	return last.gz, last.poll, nil
}

// compress compresses what write writes, the snapshot of poll, unless that poll or a newer one
// is already.
func (g *gzipped) compress(poll uint64, write func(io.Writer) (int64, error)) (*compressed, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.last.Load()
	if prev != nil && prev.poll >= poll {
		return prev, nil // compressed while this one waited
	}
	var buf bytes.Buffer
	if prev != nil {
		buf.Grow(len(prev.gz) + len(prev.gz)/16)
	}
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := write(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c := &compressed{poll: poll, gz: slices.Clip(buf.Bytes())}
	g.last.Store(c)
	return c, nil
}
