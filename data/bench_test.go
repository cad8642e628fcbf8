package data_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/medseq/medseq/data"
)

// Benchmarks of reading MEDS shards. The shards are synthetic but shaped like real ones:
// subjects sorted by id, events sorted by time per subject with several events per visit
// sharing a timestamp, a few static rows (null time) per subject, ~3000 distinct codes with
// Zipf-like frequencies and ~30% of rows carrying a numeric value.
//
//	GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go test -run '^$' -bench 'ReadShard/rows=5M' -benchtime 5x ./data

const (
	benchSubjectsPer5M = 50_000 // subjects in the 5M-row shard; smaller shards scale down
	benchCodes         = 3000
	benchBatchSize     = 1 << 16 // data.Dataset's default BatchSize
)

var (
	benchMu    sync.Mutex
	benchFiles = map[string]string{} // key -> path, written once per process
	benchRows  = map[string]int{}    // path -> rows written
	benchDir   string
)

// benchTempDir is one temp folder for the generated files; it is removed when the top-level
// benchmark top, which created it, finishes (files are regenerated if a later one needs them).
func benchTempDir(top, b *testing.B) string {
	if benchDir == "" {
		d, err := os.MkdirTemp("", "medseq-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
		top.Cleanup(func() {
			benchMu.Lock()
			defer benchMu.Unlock()
			os.RemoveAll(benchDir)
			benchDir = ""
			benchFiles = map[string]string{}
			benchRows = map[string]int{}
		})
	}
	return benchDir
}

// benchCodeNames returns benchCodes code strings in a random (seeded) vocabulary mix, and
// whether rows of each code carry a numeric value (lab-like codes do).
func benchCodeNames(r *rand.Rand) ([]string, []bool) {
	names := make([]string, 0, benchCodes)
	hasVal := make([]bool, 0, benchCodes)
	seen := map[string]bool{}
	for len(names) < benchCodes {
		var s string
		val := false
		switch k := r.Intn(10); {
		case k < 4:
			s = fmt.Sprintf("SNOMED/%d", 10000000+r.Intn(900000000))
		case k < 7:
			s = fmt.Sprintf("ICD10/%c%02d.%d", 'A'+r.Intn(26), r.Intn(100), r.Intn(10))
		default:
			s = fmt.Sprintf("LOINC/%d-%d", 1000+r.Intn(90000), r.Intn(10))
			val = true
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		names = append(names, s)
		hasVal = append(hasVal, val)
	}
	return names, hasVal
}

// benchSubjects generates about rows events over nSubjects subjects (ids ascending from
// firstID) with codes interned into codes.
func benchSubjects(seed int64, codes *data.Codes, rows, nSubjects int, firstID int64) []data.Subject {
	r := rand.New(rand.NewSource(seed))
	names, hasVal := benchCodeNames(rand.New(rand.NewSource(1))) // same vocabulary everywhere
	ids := make([]int32, len(names))
	for i, n := range names {
		ids[i] = codes.ID(n)
	}
	zipf := rand.NewZipf(r, 1.1, 2, uint64(len(names)-1))
	static := []int32{codes.ID("GENDER//F"), codes.ID("GENDER//M"), codes.ID("RACE//WHITE"), codes.ID("RACE//BLACK"),
		codes.ID("RACE//ASIAN"), codes.ID("ETHNICITY//NON_HISPANIC")}
	birth := codes.ID(data.BirthCode)
	death := codes.ID(data.DeathCode)

	subjects := make([]data.Subject, nSubjects)
	perSubject := float64(rows) / float64(nSubjects)
	left := rows
	id := firstID
	for si := range subjects {
		id += 1 + r.Int63n(20)
		// Heavy-tailed events per subject with the requested mean.
		n := int(perSubject * r.ExpFloat64())
		if n < 4 {
			n = 4
		}
		if si == nSubjects-1 || n > left {
			n = max(left, 4)
		}
		left -= n
		if left < 0 {
			left = 0
		}
		ev := make([]data.Event, 0, n)
		ev = append(ev,
			data.Event{Time: data.StaticTime, Code: static[r.Intn(2)], Value: data.NoValue},
			data.Event{Time: data.StaticTime, Code: static[2+r.Intn(3)], Value: data.NoValue},
		)
		if r.Intn(2) == 0 {
			ev = append(ev, data.Event{Time: data.StaticTime, Code: static[5], Value: data.NoValue})
		}
		t := data.Micros(time.Date(1930+r.Intn(80), time.Month(1+r.Intn(12)), 1+r.Intn(28), 0, 0, 0, 0, time.UTC))
		ev = append(ev, data.Event{Time: t, Code: birth, Value: data.NoValue})
		t += int64(r.Intn(20*365)) * data.MicrosPerDay
		// Visits about 45 days apart, closer for long records, so that every record ends
		// within 80 years of its start (and inside data's year limits).
		maxGap := min(90*data.MicrosPerDay, 2*80*365*data.MicrosPerDay*9/(2*int64(n)))
		for len(ev) < n-1 {
			// A visit: several events at the same time, a few seconds or days apart.
			t += r.Int63n(maxGap) + int64(r.Intn(3600))*1_000_000
			k := 1 + r.Intn(8)
			for j := 0; j < k && len(ev) < n-1; j++ {
				c := zipf.Uint64()
				e := data.Event{Time: t, Code: ids[c], Value: data.NoValue}
				if hasVal[c] {
					e.Value = float32(math.Round(r.NormFloat64()*150+300) / 10)
				}
				ev = append(ev, e)
			}
		}
		ev = append(ev, data.Event{Time: t + data.MicrosPerDay, Code: death, Value: data.NoValue})
		subjects[si] = data.Subject{ID: id, Events: ev}
	}
	return subjects
}

// benchShard returns the path of a shard of about rows rows and its exact row count. top is
// the top-level benchmark (the generated files live until it finishes), b the running one.
func benchShard(top, b *testing.B, rows int) (string, int) {
	benchMu.Lock()
	defer benchMu.Unlock()
	key := fmt.Sprintf("shard-%d", rows)
	if p, ok := benchFiles[key]; ok {
		return p, benchRows[p]
	}
	dir := benchTempDir(top, b)
	codes := data.NewCodes()
	nSub := max(100, benchSubjectsPer5M*rows/5_000_000)
	subs := benchSubjects(int64(rows), codes, rows, nSub, 1_000_000)
	n, withVal, static := 0, 0, 0
	for _, s := range subs {
		for _, e := range s.Events {
			n++
			if e.HasValue() {
				withVal++
			}
			if e.IsStatic() {
				static++
			}
		}
	}
	p := filepath.Join(dir, key+".parquet")
	start := time.Now()
	if err := data.WriteShard(p, codes, subs); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(p)
	b.Logf("wrote %s: %d rows, %d subjects, %d codes, %.1f%% with value, %.1f%% static, %.1f MB in %v",
		p, n, len(subs), codes.Len(), 100*float64(withVal)/float64(n), 100*float64(static)/float64(n),
		float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	benchFiles[key] = p
	benchRows[p] = n
	return p, n
}

var benchSizes = []struct {
	name string
	rows int
}{
	{"rows=1M", 1_000_000},
	{"rows=5M", 5_000_000},
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadShard compares data.Dataset.ReadShard (decoding, code interning, grouping by
// subject) with arrow-go reading the same four columns as plain Arrow record batches.
func BenchmarkReadShard(b *testing.B) {
	top := b
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			path, rows := benchShard(top, b, size.rows)
			b.Run("medseq", func(b *testing.B) {
				ds := &data.Dataset{Codes: data.NewCodes(), BatchSize: benchBatchSize}
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					sh, err := ds.ReadShard(path)
					if err != nil {
						b.Fatal(err)
					}
					if sh.Rows != rows {
						b.Fatalf("%d rows, want %d", sh.Rows, rows)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&ms1)
				reportRows(b, rows)
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/float64(rows), "alloc-B/row")
			})
			b.Run("arrow-raw", func(b *testing.B) {
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if n := arrowRawRead(b, path); n != rows {
						b.Fatalf("%d rows, want %d", n, rows)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&ms1)
				reportRows(b, rows)
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/float64(rows), "alloc-B/row")
			})
		})
	}
}

// arrowRawRead reads subject_id, time, code and numeric_value of path as Arrow record
// batches (all row groups, Parallel, the reader's batch size) and only counts the rows.
func arrowRawRead(b *testing.B, path string) int {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		b.Fatal(err)
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	cols := make([]int, 0, 4)
	for _, name := range []string{data.ColSubjectID, data.ColTime, data.ColCode, data.ColNumericValue} {
		cols = append(cols, sc.ColumnIndexByName(name))
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: benchBatchSize},
		memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	n := 0
	for rr.Next() {
		n += int(rr.RecordBatch().NumRows())
	}
	if err := rr.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkReadShardMemory reports the peak heap in use while ReadShard runs (sampled every
// 200µs, less the heap in use before) per row read, as peak-B/row, and the bytes the
// returned shard holds per row (Subjects and Events, live after a GC) as live-B/row.
func BenchmarkReadShardMemory(b *testing.B) {
	top := b
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			path, rows := benchShard(top, b, size.rows)
			var peak, live float64
			for i := 0; i < b.N; i++ {
				ds := &data.Dataset{Codes: data.NewCodes(), BatchSize: benchBatchSize}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapInuse
				var maxInuse atomic.Uint64
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					var m runtime.MemStats
					tk := time.NewTicker(200 * time.Microsecond)
					defer tk.Stop()
					for {
						runtime.ReadMemStats(&m)
						if m.HeapInuse > maxInuse.Load() {
							maxInuse.Store(m.HeapInuse)
						}
						select {
						case <-stop:
							return
						case <-tk.C:
						}
					}
				}()
				sh, err := ds.ReadShard(path)
				close(stop)
				<-done
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, (float64(maxInuse.Load())-float64(base))/float64(rows))
				live = max(live, (float64(ms.HeapInuse)-float64(base))/float64(rows))
				runtime.KeepAlive(sh)
			}
			b.ReportMetric(peak, "peak-B/row")
			b.ReportMetric(live, "live-B/row")
		})
	}
}

// BenchmarkForEachSubject walks every subject of a 4-shard dataset (about 1M rows a shard).
func BenchmarkForEachSubject(b *testing.B) {
	const rows = 4_000_000
	benchMu.Lock()
	root, ok := benchFiles["dataset"]
	if !ok {
		root = filepath.Join(benchTempDir(b, b), "dataset")
		w, err := data.NewDatasetWriter(root, false)
		if err != nil {
			benchMu.Unlock()
			b.Fatal(err)
		}
		subs := benchSubjects(7, w.Codes, rows, benchSubjectsPer5M*rows/5_000_000, 1_000_000)
		for _, s := range subs {
			if err := w.Add(data.SplitTrain, s); err != nil {
				benchMu.Unlock()
				b.Fatal(err)
			}
		}
		if err := w.Commit(nil); err != nil {
			benchMu.Unlock()
			b.Fatal(err)
		}
		benchFiles["dataset"] = root
	}
	benchMu.Unlock()
	ds, err := data.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d shards", len(ds.Shards))
	b.ResetTimer()
	total := 0
	for i := 0; i < b.N; i++ {
		total = 0
		if err := ds.ForEachSubject(context.Background(), func(s data.Subject) error {
			total += len(s.Events)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRows(b, total)
}
