// Package gzjoin writes one gzip member (RFC 1952) stitched from pieces compressed
// independently and cached: the technique pigz uses to compress in parallel.
//
// Why: the exposition is ~60 MB of text served gzip-compressed (a few MB), and most of it
// does not change between renders. Compressing all of it on every render costs far more CPU
// than the rest of the render. Cut into pieces (one per metric family × project), only the few
// pieces that changed need compressing again; the others are reused byte for byte.
//
// How: each piece is compressed by a fresh deflate stream (no back-references into other
// pieces, so its bytes do not depend on what precedes it) that ends with a sync flush: the
// output stops at a byte boundary after an empty stored block, with no final block. Such
// streams concatenate into one valid deflate stream, which WriteMember closes with an empty
// final block. The gzip trailer needs the CRC-32 of all the uncompressed data, which is never
// seen again: it is combined from the pieces' CRCs and lengths (see crc.go).
//
// Why one member: gzip allows a file of concatenated members, but a decoder need not read
// past the first and some do not (gzip.Reader with Multistream(false) is one), so a member per
// piece could silently truncate the exposition. One member is read by every decoder.
//
// The cost is ratio on small pieces: each starts with an empty dictionary, its own Huffman
// tables and ends with a sync flush (5 bytes). On exposition text at BestSpeed a piece costs
// about 100–130 bytes more than the same text inside one stream: +8% at 16 KB pieces, +2.5% at
// 64 KB, but ×2.6 at 1 KB and ×5.6 at 256 bytes (BenchmarkPieceSize). Pieces of a few hundred
// bytes should be grouped into larger ones before compressing.
package gzjoin

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Piece is one piece's compressed bytes with the CRC-32 and length of its uncompressed bytes.
// It is immutable once made, so it may be cached and shared by concurrent WriteMember calls.
// The zero Piece is a valid empty piece.
type Piece struct {
	deflate []byte // deflate blocks ending in a sync flush, no final block; empty iff n == 0
	crc     uint32 // CRC-32 (IEEE) of the uncompressed bytes
	op      uint32 // xPow8n(n): shifts a CRC over this piece, so joining costs one product
	n       int64  // uncompressed length
}

// Len returns the piece's uncompressed length.
func (p *Piece) Len() int64 { return p.n }

// CompressedLen returns the length of the piece's deflate bytes, what it adds to a member.
func (p *Piece) CompressedLen() int { return len(p.deflate) }

// Compressor compresses pieces one after the other with one reused flate.Writer: NewWriter
// allocates about 1 MB, and a render compresses thousands of pieces, while Reset is cheap.
// A Compressor is not safe for concurrent use; use one per goroutine.
type Compressor struct {
	fw  *flate.Writer
	out bytes.Buffer // the deflate output of the piece being compressed
	pw  pieceWriter  // kept here so that Compress does not allocate it
}

// NewCompressor returns a Compressor at a compress/flate level (flate.BestSpeed is the usual
// choice: a render is CPU-bound and the size difference to higher levels is small).
func NewCompressor(level int) (*Compressor, error) {
	c := &Compressor{}
	fw, err := flate.NewWriter(&c.out, level)
	if err != nil {
		return nil, fmt.Errorf("gzjoin: compressor at level %d: %w", level, err)
	}
	c.fw = fw
	return c, nil
}

// Compress makes a Piece of what write writes to the io.Writer it is given; write must not
// keep that writer after it returns. The piece's deflate stream starts fresh, whatever this
// Compressor compressed before, and ends with a sync flush, never a final block, so that it
// can be followed by other pieces. An empty piece costs no compressed bytes at all. Allocates
// only the Piece and its compressed bytes.
func (c *Compressor) Compress(write func(io.Writer) error) (*Piece, error) {
	c.out.Reset()
	c.fw.Reset(&c.out)
	c.pw = pieceWriter{fw: c.fw}
	if err := write(&c.pw); err != nil {
		return nil, fmt.Errorf("gzjoin: writing a piece: %w", err)
	}
	if c.pw.err != nil { // write dropped an error of ours
		return nil, fmt.Errorf("gzjoin: compressing a piece: %w", c.pw.err)
	}
	if c.pw.n == 0 {
		return &Piece{}, nil
	}
	if err := c.fw.Flush(); err != nil {
		return nil, fmt.Errorf("gzjoin: flushing a piece: %w", err)
	}
	return &Piece{
		deflate: bytes.Clone(c.out.Bytes()),
		crc:     c.pw.crc,
		op:      xPow8n(c.pw.n),
		n:       c.pw.n,
	}, nil
}

// pieceWriter feeds the flate writer and keeps the CRC-32 and length of what went in.
type pieceWriter struct {
	fw  *flate.Writer
	crc uint32
	n   int64
	err error
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.fw.Write(p)
	w.crc = crc32.Update(w.crc, crc32.IEEETable, p[:n])
	w.n += int64(n)
	w.err = err
	return n, err
}

// gzip header: ID1 ID2, CM = 8 (deflate), FLG = 0 (no name, comment, extra or header CRC),
// MTIME = 0 (none: the bytes depend on the content only), XFL = 0 (pieces may differ in level;
// decoders ignore it), OS = 255 (unknown).
const headerLen = 10

// tailLen is the empty final deflate block (2 bytes) and the gzip trailer: CRC-32 and ISIZE.
const tailLen = 2 + 8

// WriteMember writes to w one gzip member whose content is the pieces' contents in order and
// returns the bytes written. Zero pieces make a valid member of empty content. Nothing is
// written if a piece is nil. The member is MemberSize(pieces) bytes long.
func WriteMember(w io.Writer, pieces []*Piece) (int64, error) {
	var crc uint32
	var size int64
	for i, p := range pieces {
		if p == nil {
			return 0, fmt.Errorf("gzjoin: piece %d of %d is nil", i, len(pieces))
		}
		if p.n != 0 { // skip, rather than trust the op of a zero Piece
			crc = crc32CombineOp(crc, p.crc, p.op)
			size += p.n
		}
	}
	header := [headerLen]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	written, err := write(w, header[:], 0)
	for _, p := range pieces {
		if err == nil && len(p.deflate) != 0 {
			written, err = write(w, p.deflate, written)
		}
	}
	if err != nil {
		return written, err
	}
	// An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block code
	// 0000000, padded to a byte: 0x03 0x00. Then CRC-32 and ISIZE (length mod 2^32), LE.
	tail := [tailLen]byte{0x03, 0x00}
	binary.LittleEndian.PutUint32(tail[2:], crc)
	binary.LittleEndian.PutUint32(tail[6:], uint32(size))
	return write(w, tail[:], written)
}

// write writes b to w and adds what it wrote to written.
func write(w io.Writer, b []byte, written int64) (int64, error) {
	n, err := w.Write(b)
	written += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return written, fmt.Errorf("gzjoin: writing the member: %w", err)
	}
	return written, nil
}

// MemberSize returns the length of the member WriteMember writes for pieces, known before
// writing it (a Content-Length). Nil pieces count as empty.
func MemberSize(pieces []*Piece) int64 {
	size := int64(headerLen + tailLen)
	for _, p := range pieces {
		if p != nil {
			size += int64(len(p.deflate))
		}
	}
	return size
}
