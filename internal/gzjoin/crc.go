package gzjoin

// CRC-32 combine: the CRC of a concatenation A‖B from crc(A), crc(B) and len(B), without the
// bytes. hash/crc32 has none, and WriteMember needs one because it never sees the uncompressed
// data of cached pieces. This is zlib's crc32_combine in its x^(8n) mod P form (zlib ≥ 1.2.12):
// appending n zero bytes to A multiplies its CRC polynomial by x^(8n) modulo P, and the CRC is
// linear, so crc(A‖B) = crc(A)·x^(8n) mod P ⊕ crc(B). x^(8n) is built from a table of
// x^(2^k) mod P by square-and-multiply, so the cost is O(log n) polynomial products rather than
// O(n) bytes or zlib's older 32×32 GF(2) matrix squaring.
//
// Polynomials are reflected as in hash/crc32's IEEE table: the bit 1<<31 is x^0, bit 0 is x^31.

// polyIEEE is the CRC-32 (IEEE 802.3) polynomial, reflected; it equals crc32.IEEE.
const polyIEEE = 0xedb88320

// x2nTable[k] is x^(2^k) mod P. Computed once at package init, never written after.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// multModP returns a(x)·b(x) mod P. It always runs 32 steps (zlib stops early on the last set
// bit of a; the fixed loop also keeps a == 0 from looping forever).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ polyIEEE
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow8n returns x^(8n) mod P: the operator that shifts a CRC over n appended bytes.
func xPow8n(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
	}
	return p
}

// crc32Combine returns the CRC-32 (IEEE) of A‖B given crc1 = crc(A), crc2 = crc(B) and
// n2 = len(B) ≥ 0.
func crc32Combine(crc1, crc2 uint32, n2 int64) uint32 {
	return crc32CombineOp(crc1, crc2, xPow8n(n2))
}

// crc32CombineOp is crc32Combine with B's length given as its operator xPow8n(len(B)). A Piece
// keeps its operator, so WriteMember does one product per piece instead of O(log n).
func crc32CombineOp(crc1, crc2, op uint32) uint32 {
	return multModP(op, crc1) ^ crc2
}
