package synth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"github.com/medseq/medseq/data"
)

// Version is the generator's version, recorded in metadata/dataset.json. Change it whenever
// the same seed would produce different data.
const Version = "1"

// DefaultSubjects is the number of subjects of the default dataset.
const DefaultSubjects = 10000

// Config configures Generate.
type Config struct {
	Out      string // output dataset folder
	Subjects int    // number of subjects, >= 1
	Seed     int64
	Force    bool // replace an existing non-empty Out
	// Workers is the number of generating goroutines (default GOMAXPROCS).
	Workers int
	// Logger receives progress (subjects, events, rate); nil logs nothing.
	Logger *slog.Logger
	// ProgressEvery is the interval between progress lines (default 2s).
	ProgressEvery time.Duration
	// CodeStyle spells the codes: CodeStylePlain (default, "" too) or CodeStyleETL (every
	// code through ETLCode, in the data and in metadata/codes.parquet).
	CodeStyle string
}

// Summary describes a generated dataset.
type Summary struct {
	Out             string
	Subjects        int
	Events          int64
	DistinctCodes   int // codes that occur in the data
	VocabularySize  int // rows of metadata/codes.parquet
	Diagnosed       int // subjects with a T2D diagnosis inside their record
	Deaths          int
	Elapsed         time.Duration
	EventsPerSecond float64
}

type chunkResult struct {
	subjects []data.Subject
	oracle   []oracleSubject
	segs     []segment
}

const chunkSize = 64

// Generate writes a synthetic primary-care MEDS dataset with its oracle to cfg.Out.
// The same Config (but Logger and Workers) writes the same bytes, manifest.json excepted.
func Generate(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Out == "" {
		return nil, errors.New("synth: no output folder")
	}
	if cfg.Subjects < 1 {
		return nil, fmt.Errorf("synth: subjects must be at least 1, got %d", cfg.Subjects)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	spell, err := styleCode(cfg.CodeStyle)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	start := time.Now()
	v := getVocab()
	names, meta, err := styledVocab(v, spell)
	if err != nil {
		return nil, err
	}
	model := DefaultModel()
	w, err := data.NewDatasetWriter(cfg.Out, cfg.Force)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			w.Abort()
		}
	}()
	for i, n := range names {
		if id := w.Codes.ID(n); id != int32(i) {
			return nil, fmt.Errorf("synth: code table out of step at %q", n)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nChunks := (cfg.Subjects + chunkSize - 1) / chunkSize
	results := make([]chan chunkResult, nChunks)
	for i := range results {
		results[i] = make(chan chunkResult, 1)
	}
	jobs := make(chan int)
	// Let the workers run about a shard ahead, so generation goes on while a shard is written.
	sem := make(chan struct{}, max(4*workers, 96))
	go func() {
		defer close(jobs)
		for k := 0; k < nChunks; k++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		go func() {
			g := newGen(v, &model)
			for k := range jobs {
				var res chunkResult
				for i := k * chunkSize; i < min(cfg.Subjects, (k+1)*chunkSize); i++ {
					ev, o := g.generate(cfg.Seed, i, int64(i)+1)
					o.segStart = len(res.segs)
					for _, s := range g.segs {
						if s.t < g.lifeEnd || s.t == g.birth {
							res.segs = append(res.segs, s)
						}
					}
					o.segCount = len(res.segs) - o.segStart
					res.subjects = append(res.subjects, data.Subject{ID: o.id, Events: ev})
					res.oracle = append(res.oracle, o)
				}
				results[k] <- res
			}
		}()
	}

	or := &Oracle{Model: model, idx: make(map[int64]int, cfg.Subjects)}
	or.subjects = make([]OracleSubject, 0, cfg.Subjects)
	used := make([]bool, len(v.names))
	sum := &Summary{Out: cfg.Out, Subjects: cfg.Subjects, VocabularySize: len(meta)}
	lastLog := start
	for k := 0; k < nChunks; k++ {
		var res chunkResult
		select {
		case res = <-results[k]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		<-sem
		for j, s := range res.subjects {
			for _, e := range s.Events {
				used[e.Code] = true
			}
			sum.Events += int64(len(s.Events))
			if err := w.Add(data.HashSplit(cfg.Seed, s.ID, data.DefaultSplitFractions), s); err != nil {
				return nil, err
			}
			o := &res.oracle[j]
			if o.diagnosedInRecord {
				sum.Diagnosed++
			}
			if o.death != never {
				sum.Deaths++
			}
			or.idx[o.id] = len(or.subjects)
			or.subjects = append(or.subjects, OracleSubject{ID: o.id, Birth: o.birth, Male: o.male, Onset: o.onset,
				Diagnosis: o.diag, Frailty: o.frailty, RecordStart: o.regStart, RecordEnd: o.recEnd, Death: o.death})
			or.segOff = append(or.segOff, len(or.segT))
			for _, sg := range res.segs[o.segStart : o.segStart+o.segCount] {
				or.segT = append(or.segT, sg.t)
				or.segM = append(or.segM, sg.m)
			}
		}
		if log != nil && time.Since(lastLog) >= every {
			lastLog = time.Now()
			el := time.Since(start).Seconds()
			done := min(cfg.Subjects, (k+1)*chunkSize)
			log.Info("synth progress", "subjects", done, "of", cfg.Subjects, "events", sum.Events,
				"events_per_s", int64(float64(sum.Events)/el))
		}
	}
	or.segOff = append(or.segOff, len(or.segT))
	if err := or.write(w.TempDir()); err != nil {
		return nil, err
	}
	w.SetCodeMetadata(meta)
	w.SetMetadata(data.DatasetMetadata{
		DatasetName:    "medseq-synth",
		DatasetVersion: fmt.Sprintf("seed-%d-subjects-%d", cfg.Seed, cfg.Subjects) + styleSuffix(cfg.CodeStyle, spell != nil),
		ETLName:        "medseq data synth",
		ETLVersion:     Version,
	})
	params := map[string]any{"subjects": cfg.Subjects, "seed": strconv.FormatInt(cfg.Seed, 10), "generator_version": Version}
	if spell != nil {
		params["code_style"] = cfg.CodeStyle
	}
	if err := w.Commit(data.NewManifest("data synth", params)); err != nil {
		return nil, err
	}
	ok = true
	for _, u := range used {
		if u {
			sum.DistinctCodes++
		}
	}
	sum.Elapsed = time.Since(start)
	sum.EventsPerSecond = float64(sum.Events) / sum.Elapsed.Seconds()
	if log != nil {
		log.Info("synth done", "subjects", sum.Subjects, "events", sum.Events, "diagnosed", sum.Diagnosed,
			"seconds", sum.Elapsed.Seconds(), "events_per_s", int64(sum.EventsPerSecond))
	}
	return sum, nil
}
