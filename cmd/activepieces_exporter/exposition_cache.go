package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/activepieces-exporter/activepieces_exporter/collector"
)

// gzipCache holds the exporter's snapshots gzip-compressed, per format: a poll's exposition is
// compressed once, however many scrapes take it, and only its compressed bytes are kept (at 10k
// flows about 2 MB per format, where the plain text is over 60 MB). Each format of a snapshot is
// compressed as the exporter publishes it (published, its collector.WithPublished hook), before
// scrapes can take it: at 10k flows that takes a quarter of a second, which a scrape must not
// wait for (nor spend of its fast window). With the hook, the exporter keeps no plain bytes:
// this cache is then the only copy of what /metrics serves. Without it (tests), the first scrape
// that needs a poll compresses the snapshot's plain bytes. Safe for concurrent use; the zero
// value is ready.
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

// published compresses the formats s holds (the exporter lends them one at a time, for the call
// only: it keeps their compression alone). The exporter calls it as it publishes s, on its poll's
// goroutine, before any scrape can take s's poll. An error here (there is none but an invalid
// level) is answered by the scrape that then finds the poll missing.
func (c *gzipCache) published(s collector.Snapshot) {
	if s.Text != nil {
		_, _ = c.text.compress(s.Poll, s.Text)
	}
	if s.OpenMetrics != nil {
		_, _ = c.om.compress(s.Poll, s.OpenMetrics)
	}
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
	last, err := g.compress(poll, plain)
	if err != nil {
		return nil, 0, err
	}
	return last.gz, last.poll, nil
}

// compress compresses plain, the snapshot of poll, unless that poll or a newer one is already.
func (g *gzipped) compress(poll uint64, plain []byte) (*compressed, error) {
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
	if _, err := zw.Write(plain); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c := &compressed{poll: poll, gz: slices.Clip(buf.Bytes())}
	g.last.Store(c)
	return c, nil
}
