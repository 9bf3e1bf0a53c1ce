package gzjoin

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"

	"github.com/activepieces-exporter/activepieces_exporter/internal/testkit"
)

// compressAll compresses each of data into a Piece with one Compressor, as a render does.
func compressAll(t testing.TB, c *Compressor, data [][]byte) []*Piece {
	t.Helper()
	pieces := make([]*Piece, len(data))
	for i, d := range data {
		p, err := c.Compress(func(w io.Writer) error { _, err := w.Write(d); return err })
		if err != nil {
			t.Fatal(err)
		}
		if p.Len() != int64(len(d)) {
			t.Fatalf("piece %d: Len %d, want %d", i, p.Len(), len(d))
		}
		pieces[i] = p
	}
	return pieces
}

// member writes the member of pieces and checks the count WriteMember returns and MemberSize.
func member(t testing.TB, pieces []*Piece) []byte {
	t.Helper()
	var out bytes.Buffer
	n, err := WriteMember(&out, pieces)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(out.Len()) || MemberSize(pieces) != n {
		t.Fatalf("WriteMember returned %d, wrote %d, MemberSize says %d", n, out.Len(), MemberSize(pieces))
	}
	return out.Bytes()
}

// checkOneMember decodes gz with compress/gzip reading a single member, and checks that the
// member is all of gz (no second member, no trailing bytes), its header is the documented one,
// and its content is want. gzip.Reader checks the trailer's CRC-32 and ISIZE at EOF.
func checkOneMember(t *testing.T, gz, want []byte) {
	t.Helper()
	src := bytes.NewReader(gz) // an io.ByteReader: gzip.Reader reads no further than the member
	zr, err := gzip.NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes, want %d, equal: %v", len(got), len(want), bytes.Equal(got, want))
	}
	if src.Len() != 0 {
		t.Fatalf("%d bytes left after the first member", src.Len())
	}
	if zr.Name != "" || zr.Comment != "" || zr.Extra != nil || !zr.ModTime.IsZero() || zr.OS != 255 {
		t.Fatalf("header %+v, want no name, comment, extra, mtime and OS 255", zr.Header)
	}
	if err := zr.Close(); err != nil {
		t.Fatal(err)
	}
	checkSystemGzip(t, gz, want)
}

// checkSystemGzip decodes gz with the system's gzip -dc, another decoder than Go's.
func checkSystemGzip(t *testing.T, gz, want []byte) {
	t.Helper()
	cmd := exec.Command(testkit.RequireTool(t, "gzip"), "-dc")
	cmd.Stdin = bytes.NewReader(gz)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v: %s", err, stderr.Bytes())
	}
	if !bytes.Equal(got, want) || stderr.Len() != 0 {
		t.Fatalf("gzip -dc gave %d bytes, want %d; stderr %q", len(got), len(want), stderr.Bytes())
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		data [][]byte
	}{
		{"random", randomPieces(300, 70000, 1)},
		{"exposition", exposition(7, 9, 120, 2)},
		{"exposition small pieces", exposition(40, 10, 3, 3)},
		{"one empty", [][]byte{{}}},
		{"one byte", [][]byte{{'x'}}},
		{"empties around one byte", [][]byte{{}, {}, {'x'}, {}, {}}},
	}
	levels := []int{flate.BestSpeed, flate.DefaultCompression, flate.BestCompression,
		flate.NoCompression, flate.HuffmanOnly}
	for _, tc := range cases {
		want := bytes.Join(tc.data, nil)
		for _, level := range levels {
			c, err := NewCompressor(level)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("%s/level %d", tc.name, level), func(t *testing.T) {
				checkOneMember(t, member(t, compressAll(t, c, tc.data)), want)
			})
		}
	}
}

// TestMixedLevels joins pieces made at different levels: a piece's bytes do not depend on the
// level of its neighbours.
func TestMixedLevels(t *testing.T) {
	data := exposition(3, 4, 50, 4)
	var pieces []*Piece
	for i, d := range data {
		c, err := NewCompressor([]int{flate.BestSpeed, flate.BestCompression, flate.NoCompression}[i%3])
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, compressAll(t, c, [][]byte{d})...)
	}
	checkOneMember(t, member(t, pieces), bytes.Join(data, nil))
}

// TestReuseCachedPieces is the render: a member of cached pieces [a, b, c], then b changes,
// only b is compressed again, and the member of [a, b', c] holds the new content.
func TestReuseCachedPieces(t *testing.T) {
	data := exposition(1, 3, 200, 5)
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	pieces := compressAll(t, c, data)
	checkOneMember(t, member(t, pieces), bytes.Join(data, nil))

	a, cc := bytes.Clone(pieces[0].deflate), bytes.Clone(pieces[2].deflate)
	changed := exposition(1, 3, 180, 6)[1]
	pieces[1] = compressAll(t, c, [][]byte{changed})[0]
	checkOneMember(t, member(t, pieces), bytes.Join([][]byte{data[0], changed, data[2]}, nil))
	if !bytes.Equal(pieces[0].deflate, a) || !bytes.Equal(pieces[2].deflate, cc) {
		t.Fatal("writing a member changed the bytes of a cached piece")
	}
}

// TestPieceIndependentOfHistory checks what makes a cached piece reusable anywhere: its bytes
// are the same whether its Compressor is fresh or has compressed other pieces before, so they
// hold no back-reference to data that came before them.
func TestPieceIndependentOfHistory(t *testing.T) {
	data := exposition(2, 2, 300, 7)
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		used, err := NewCompressor(level)
		if err != nil {
			t.Fatal(err)
		}
		compressAll(t, used, data) // history: the same kind of text, matches galore
		for i, d := range data {
			fresh, err := NewCompressor(level)
			if err != nil {
				t.Fatal(err)
			}
			want := compressAll(t, fresh, [][]byte{d})[0].deflate
			if got := compressAll(t, used, [][]byte{d})[0].deflate; !bytes.Equal(got, want) {
				t.Errorf("level %d, piece %d: %d bytes after other pieces, %d fresh", level, i, len(got), len(want))
			}
		}
	}
}

// TestZeroPieces: no pieces, or only empty ones (also the zero Piece), make a valid member of
// empty content, 20 bytes long.
func TestZeroPieces(t *testing.T) {
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	empty := compressAll(t, c, [][]byte{nil, {}})
	for name, pieces := range map[string][]*Piece{
		"nil": nil, "empty slice": {}, "empty pieces": empty, "zero Piece": {{}, {}},
	} {
		t.Run(name, func(t *testing.T) {
			gz := member(t, pieces)
			if len(gz) != headerLen+tailLen {
				t.Fatalf("%d bytes, want %d", len(gz), headerLen+tailLen)
			}
			checkOneMember(t, gz, []byte{})
		})
	}
}

// TestCompressByWrites: a piece written in many small writes (as a renderer writes lines)
// equals the piece written at once, a write func may write nothing, and Compress reports
// how many bytes went in whatever the shape of the writes.
func TestCompressByWrites(t *testing.T) {
	data := exposition(1, 1, 500, 8)[0]
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Compress(func(w io.Writer) error {
		for line := range bytes.Lines(data) {
			if _, err := w.Write(line); err != nil {
				return err
			}
			if _, err := w.Write(nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOneMember(t, member(t, []*Piece{p}), data)
}

type failWriter struct{ after int }

var errWrite = errors.New("connection reset")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) <= f.after {
		f.after -= len(p)
		return len(p), nil
	}
	n := f.after
	f.after = 0
	return n, errWrite
}

// TestErrors: the errors of the write func and of the destination come back wrapped, with the
// count of bytes that did reach the destination; a nil piece is refused before any byte is
// written; a bad level is refused.
func TestErrors(t *testing.T) {
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	errRender := errors.New("render failed")
	if _, err := c.Compress(func(io.Writer) error { return errRender }); !errors.Is(err, errRender) {
		t.Fatalf("Compress: %v, want it to wrap %v", err, errRender)
	}
	pieces := compressAll(t, c, exposition(1, 3, 100, 9)) // the Compressor still works after a failed piece
	size := MemberSize(pieces)
	for _, after := range []int64{0, 5, headerLen, headerLen + 1, size - 1} {
		n, err := WriteMember(&failWriter{after: int(after)}, pieces)
		if !errors.Is(err, errWrite) || n != after {
			t.Errorf("destination failing after %d bytes: WriteMember = %d, %v", after, n, err)
		}
	}
	var out bytes.Buffer
	if n, err := WriteMember(&out, []*Piece{pieces[0], nil}); err == nil || n != 0 || out.Len() != 0 {
		t.Errorf("nil piece: WriteMember = %d, %v, wrote %d bytes", n, err, out.Len())
	}
	if _, err := NewCompressor(42); err == nil {
		t.Error("NewCompressor(42) succeeded")
	}
}

// TestCompressAllocs: with a Compressor, a piece costs its Piece and its bytes, not a new
// flate writer (about 1 MB each).
func TestCompressAllocs(t *testing.T) {
	data := exposition(1, 1, 20, 10)[0]
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	write := func(w io.Writer) error { _, err := w.Write(data); return err }
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Compress(write); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("%v allocations per piece, want 2 (the Piece and its bytes)", allocs)
	}
}

// TestConcurrentWriteMember: pieces are immutable, so renders may write members of the same
// cached pieces at once (run with -race).
func TestConcurrentWriteMember(t *testing.T) {
	data := exposition(2, 3, 50, 13)
	c, err := NewCompressor(flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	pieces := compressAll(t, c, data)
	want := member(t, pieces)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var out bytes.Buffer
			if _, err := WriteMember(&out, pieces); err != nil || !bytes.Equal(out.Bytes(), want) {
				t.Errorf("concurrent WriteMember: %v, equal %v", err, bytes.Equal(out.Bytes(), want))
			}
		})
	}
	wg.Wait()
}
