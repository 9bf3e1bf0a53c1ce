package gzjoin

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestCRC32Combine checks the combine against crc32.ChecksumIEEE of the concatenation, for
// empty, 1-byte and larger parts up to a few MB on either side (the length of B sets which
// bits of the x^(8n) table are used; the length of A must not matter).
func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 1000, 1 << 12, 65535, 65536, 1<<20 + 3, 3 << 20}
	data := make([]byte, 2*(3<<20+1))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, na := range sizes {
		for _, nb := range sizes {
			a, b := data[:na], data[na:na+nb]
			want := crc32.ChecksumIEEE(data[:na+nb])
			got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(nb))
			if got != want {
				t.Errorf("combine(len %d, len %d) = %#08x, want %#08x", na, nb, got, want)
			}
		}
	}
}

// TestCRC32CombineMany folds the CRCs of many random-sized parts, as WriteMember does.
func TestCRC32CombineMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var crc uint32
	for off := 0; off < len(data); {
		n := min(rng.IntN(5000), len(data)-off) // zero-length parts included
		crc = crc32Combine(crc, crc32.ChecksumIEEE(data[off:off+n]), int64(n))
		off += n
	}
	if want := crc32.ChecksumIEEE(data); crc != want {
		t.Fatalf("folded CRC %#08x, want %#08x", crc, want)
	}
}

// TestX2nTableCycles checks what indexing the table by k&31 relies on (as zlib does for
// lengths of 2^29 bytes and more): x^(2^32) = x mod P.
func TestX2nTableCycles(t *testing.T) {
	if got := multModP(x2nTable[31], x2nTable[31]); got != x2nTable[0] {
		t.Fatalf("x^(2^32) mod P = %#08x, want x = %#08x", got, x2nTable[0])
	}
	if got := xPow8n(0); got != 1<<31 {
		t.Fatalf("xPow8n(0) = %#08x, want 1 (bit 31)", got)
	}
}
