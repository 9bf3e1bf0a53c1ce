package gzjoin

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"io"
	"testing"
)

// countWriter counts the bytes written to it and drops them.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// gzipSize returns the size of data gzip-compressed in one stream at level: the baseline.
func gzipSize(b *testing.B, data []byte, level int) int64 {
	var n countWriter
	zw, err := gzip.NewWriterLevel(&n, level)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return int64(n)
}

// render compresses every piece of data and writes their member: a render from scratch.
func render(b *testing.B, c *Compressor, data [][]byte, w io.Writer) []*Piece {
	pieces := compressAll(b, c, data)
	if _, err := WriteMember(w, pieces); err != nil {
		b.Fatal(err)
	}
	return pieces
}

// BenchmarkExposition60MB compares, on a ~60 MB exposition of 500 pieces (20 families × 25
// projects), gzip.Writer at BestSpeed over the whole text (the baseline), the text compressed
// as 1 piece and as 500 pieces, writing the member of 500 cached pieces (against a plain copy
// of as many bytes), and a render where 5 of the 500 pieces changed. The sizes are measured
// once, before the sub-benchmarks, so that each reports its ratio to the baseline.
func BenchmarkExposition60MB(b *testing.B) {
	parts := exposition(20, 25, 1170, 11)
	whole := bytes.Join(parts, nil)
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	base := gzipSize(b, whole, flate.BestSpeed)
	cached := compressAll(b, c, parts)
	size500 := MemberSize(cached)
	size1 := MemberSize(compressAll(b, c, [][]byte{whole}))
	b.Logf("%d bytes of text in %d pieces; gzip BestSpeed %d bytes; 1 piece %d (%.4f×); 500 pieces %d (%.4f×), %.1f bytes more per piece",
		len(whole), len(parts), base, size1, float64(size1)/float64(base), size500,
		float64(size500)/float64(base), float64(size500-size1)/float64(len(parts)-1))
	sizes := func(b *testing.B, size int64) {
		b.ReportMetric(float64(size), "gz-bytes")
		b.ReportMetric(float64(size)/float64(base), "size/gzip")
	}

	b.Run("gzip.Writer BestSpeed", func(b *testing.B) {
		b.SetBytes(int64(len(whole)))
		for b.Loop() {
			gzipSize(b, whole, flate.BestSpeed)
		}
		sizes(b, base)
	})
	b.Run("1 piece", func(b *testing.B) {
		b.SetBytes(int64(len(whole)))
		for b.Loop() {
			render(b, c, [][]byte{whole}, new(countWriter))
		}
		sizes(b, size1)
	})
	b.Run("500 pieces", func(b *testing.B) {
		b.SetBytes(int64(len(whole)))
		for b.Loop() {
			render(b, c, parts, new(countWriter))
		}
		sizes(b, size500)
	})
	benchCached(b, c, parts, cached)
}

// benchCached benchmarks what a render costs once the pieces are cached: WriteMember of the
// 500 pieces into a buffer, against a copy of as many bytes (the floor); and a render where 5
// pieces changed and are compressed again. MB/s are of compressed bytes for the first two.
func benchCached(b *testing.B, c *Compressor, parts [][]byte, cached []*Piece) {
	size := MemberSize(cached)
	var out bytes.Buffer
	out.Grow(int(size))
	b.Run("WriteMember 500 cached", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			out.Reset()
			if _, err := WriteMember(&out, cached); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("copy of as many bytes", func(b *testing.B) {
		src := make([]byte, size)
		dst := make([]byte, size)
		b.SetBytes(size)
		for b.Loop() {
			copy(dst, src)
		}
	})
	b.Run("render 5 of 500 changed", func(b *testing.B) {
		pieces := append([]*Piece(nil), cached...)
		changed := []int{3, 101, 250, 333, 499}
		for b.Loop() {
			for _, i := range changed {
				pieces[i] = compressAll(b, c, parts[i:i+1])[0]
			}
			out.Reset()
			if _, err := WriteMember(&out, pieces); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cut cuts text at line ends into pieces of about size bytes.
func cut(text []byte, size int) [][]byte {
	var pieces [][]byte
	for len(text) > 0 {
		i := min(size, len(text))
		if j := bytes.IndexByte(text[i:], '\n'); j >= 0 {
			i += j + 1
		} else {
			i = len(text)
		}
		pieces = append(pieces, text[:i])
		text = text[i:]
	}
	return pieces
}

// BenchmarkPieceSize measures what cutting costs by piece size on ~8 MB of exposition text:
// the bytes each piece adds to the member over one piece (a fresh dictionary, the sync flush),
// the member's size relative to one piece, and the compression speed.
func BenchmarkPieceSize(b *testing.B) {
	text := bytes.Join(exposition(4, 16, 1170, 12), nil)
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	one := MemberSize(compressAll(b, c, [][]byte{text}))
	for _, size := range []int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
		parts := cut(text, size)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var n int64
			for b.Loop() {
				n = MemberSize(render(b, c, parts, new(countWriter)))
			}
			b.ReportMetric(float64(n-one)/float64(len(parts)), "extra-B/piece")
			b.ReportMetric(float64(n)/float64(one), "size/1piece")
			b.ReportMetric(float64(len(text))/float64(n), "ratio")
		})
	}
}
