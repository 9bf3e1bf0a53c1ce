package collector

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSaveState measures the per-poll cost of --state.file for 10k flows and 10k runs in
// flight (marshal, write, fsync, rename).
func BenchmarkSaveState(b *testing.B) {
	e, p, _ := benchExporter(b, 10000)
	populate(e, p, 10000)
	e.cfg.StateFile = filepath.Join(b.TempDir(), "state.json")
	for b.Loop() {
		if err := e.m().saveState(); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(e.cfg.StateFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
}
