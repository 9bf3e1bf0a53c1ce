package gzjoin

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// exposition returns a Prometheus text-format exposition cut as the exporter cuts it: one
// piece per family × project, each of lines series lines (a family's # HELP and # TYPE open
// its first project's piece). Label values and sample values vary as in a real scrape: ids
// repeat within a piece, counts are random, histograms have le buckets.
func exposition(families, projects, lines int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	statuses := []string{"SUCCEEDED", "FAILED", "RUNNING", "PAUSED", "TIMEOUT", "QUOTA_EXCEEDED"}
	les := []string{"0.1", "0.5", "1", "5", "15", "60", "300", "900", "+Inf"}
	pieces := make([][]byte, 0, families*projects)
	for f := range families {
		name := fmt.Sprintf("activepieces_family%02d_flow_runs", f)
		histogram := f%3 == 2
		for p := range projects {
			var b []byte
			if p == 0 {
				b = fmt.Appendf(b, "# HELP %s Flow runs by project, flow and status (family %d).\n", name, f)
				b = fmt.Appendf(b, "# TYPE %s %s\n", name, map[bool]string{false: "counter", true: "histogram"}[histogram])
			}
			project := fmt.Sprintf("%016x", rng.Uint64())
			for i := 0; i < lines; i++ {
				flow := fmt.Sprintf("flow%05d", i/len(les))
				if histogram {
					b = fmt.Appendf(b, "%s_bucket{project_id=%q,flow_id=%q,le=%q} %d\n",
						name, project, flow, les[i%len(les)], rng.IntN(100000))
					continue
				}
				b = fmt.Appendf(b, "%s_total{project_id=%q,flow_id=%q,status=%q} %s\n", name,
					project, flow, statuses[rng.IntN(len(statuses))], strconv.Itoa(rng.IntN(1e6)))
			}
			pieces = append(pieces, b)
		}
	}
	return pieces
}

// randomPieces returns n pieces of random bytes with sizes from 0 to max, a fifth of them empty
// and some of 1 byte: the edge cases of the CRC combine and of the deflate framing.
func randomPieces(n, max int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	pieces := make([][]byte, n)
	for i := range pieces {
		size := rng.IntN(max + 1)
		switch rng.IntN(10) {
		case 0, 1:
			size = 0
		case 2:
			size = 1
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		pieces[i] = b
	}
	return pieces
}
