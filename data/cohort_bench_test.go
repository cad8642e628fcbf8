package data

import (
	"context"
	"fmt"
	"github.com/medseq/medseq/internal/memstat"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// benchPopulation returns a cached test population of about the given number of events.
func benchPopulation(b *testing.B, events int) (string, int64) {
	b.Helper()
	// The population averages about 53 events per subject.
	subjects := events / 53
	dir := filepath.Join(os.TempDir(), "medseq-bench", "population-"+strconv.Itoa(subjects)+"-subjects")
	meds := filepath.Join(dir, "meds")
	if _, err := ReadManifest(meds); err != nil {
		os.RemoveAll(dir)
		population(b, dir, subjects, 11)
	}
	ds, err := Open(meds)
	if err != nil {
		b.Fatal(err)
	}
	var rows int64
	for _, p := range ds.Shards {
		sh, err := ds.ReadShard(p)
		if err != nil {
			b.Fatal(err)
		}
		rows += int64(sh.Rows)
	}
	return meds, rows
}

// BenchmarkBuildCohort measures cohort building (read every shard, summarise, sample, split)
// and reports events/s and the process's peak RSS during the build. Goal: 10M events in
// under 10 s with a peak under 2 GB.
func BenchmarkBuildCohort(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("events=%dM", n/1_000_000), func(b *testing.B) {
			meds, rows := benchPopulation(b, n)
			cfg := testCohortConfig()
			runtime.GC()
			memstat.ResetPeakRSS()
			b.ResetTimer()
			var labels int
			for i := 0; i < b.N; i++ {
				ds, err := Open(meds)
				if err != nil {
					b.Fatal(err)
				}
				res, err := BuildCohort(context.Background(), ds, cfg)
				if err != nil {
					b.Fatal(err)
				}
				labels = len(res.Labels)
			}
			b.StopTimer()
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(rows)/sec, "events/s")
			b.ReportMetric(sec, "s/cohort")
			b.ReportMetric(float64(rows), "events")
			b.ReportMetric(float64(labels), "labels")
			if p := memstat.PeakRSS(); p > 0 {
				b.ReportMetric(float64(p)/(1<<20), "peak-RSS-MB")
			}
		})
	}
}
