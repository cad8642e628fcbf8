package train

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// Codes planted in one subject each of the planted dataset. Only PLANT/TRAIN belongs to a
// training subject: every other one must never reach training.
const (
	plantTrain         = "PLANT/TRAIN"          // subject 1, train by the cohort
	plantTuning        = "PLANT/TUNING"         // subject 41, tuning by the cohort
	plantHeldOut       = "PLANT/HELDOUT"        // subject 51, held out by the cohort
	plantListedHeldOut = "PLANT/LISTED_HELDOUT" // subject 56, not in the cohort, held_out in subject_splits
	plantCohortHeldOut = "PLANT/COHORT_HELDOUT" // subject 61, train in subject_splits, held out by the cohort
	plantNoSplit       = "PLANT/NOSPLIT"        // subject 62, in no split at all
)

var forbidden = []string{plantTuning, plantHeldOut, plantListedHeldOut, plantCohortHeldOut, plantNoSplit}

// planted is a dataset with the planted codes, its cohort and two tokenizers: one built on
// the records corpus, and one that knows every code of the dataset (so a planted code that
// reached a window would show as its own token, not as [UNK]).
type planted struct {
	meds, cohort, tokRecords, tokAll string
}

// plantedSubject is a record of visits every two months from 2000, two codes each, with a
// static sex row, a birth event and the planted code (if any) at one visit in five.
func plantedSubject(codes *data.Codes, id int64, visits int64, plant string) data.Subject {
	day := data.MicrosPerDay
	birth := data.Micros(time.Date(1950+int(id%20), 3, 1, 0, 0, 0, 0, time.UTC))
	sex := []string{"SEX//F", "SEX//M"}[id%2]
	ev := []data.Event{{Time: data.StaticTime, Code: codes.ID(sex), Value: data.NoValue},
		{Time: birth, Code: codes.ID(data.BirthCode), Value: data.NoValue}}
	start := data.Micros(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	for v := int64(0); v < visits; v++ {
		t := start + (v*61+id%7)*day
		ev = append(ev, data.Event{Time: t, Code: codes.ID(fmt.Sprintf("C/%d", (id*7+v)%15)), Value: data.NoValue},
			data.Event{Time: t, Code: codes.ID(fmt.Sprintf("LAB/%d", v%3)), Value: float32(v%10) + 0.5})
		if plant != "" && v%5 == 2 {
			ev = append(ev, data.Event{Time: t + 3600e6, Code: codes.ID(plant), Value: data.NoValue})
		}
	}
	data.SortEvents(ev)
	return data.Subject{ID: id, Events: ev}
}

// writePlanted writes the planted dataset: subjects 1-40 train, 41-50 tuning, 51-60
// held_out (by their shard folders and subject_splits), 61 listed train, 62 in no split; a
// cohort labelling 1-20 train, 41-45 tuning, 51-55 and 61 held out.
func writePlanted(t *testing.T, dir string) planted {
	t.Helper()
	ctx := context.Background()
	p := planted{meds: filepath.Join(dir, "meds"), cohort: filepath.Join(dir, "cohort"),
		tokRecords: filepath.Join(dir, "tok-records"), tokAll: filepath.Join(dir, "tok-all")}
	w, err := data.NewDatasetWriter(p.meds, false)
	if err != nil {
		t.Fatal(err)
	}
	w.ShardEvents = 600 // several shards per split
	plants := map[int64]string{1: plantTrain, 41: plantTuning, 51: plantHeldOut, 56: plantListedHeldOut,
		61: plantCohortHeldOut, 62: plantNoSplit}
	splitOf := func(id int64) string {
		switch {
		case id <= 40 || id == 61:
			return data.SplitTrain
		case id <= 50:
			return data.SplitTuning
		case id <= 60:
			return data.SplitHeldOut
		}
		return ""
	}
	for id := int64(1); id <= 62; id++ {
		if err := w.Add(splitOf(id), plantedSubject(w.Codes, id, 30, plants[id])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(data.NewManifest("test", nil)); err != nil {
		t.Fatal(err)
	}
	writePlantedCohort(t, p)
	cfg := tokenize.FromCohortConfig{MEDS: p.meds, Cohort: p.cohort, Out: p.tokRecords,
		Build: tokenize.DefaultBuildConfig(), Corpus: tokenize.CorpusRecords}
	cfg.Build.MaxLen = 32
	if _, err := tokenize.BuildFromCohort(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	writeTokenizerOfAll(t, p)
	return p
}

// writePlantedCohort writes the planted dataset's cohort, labels made by hand.
func writePlantedCohort(t testing.TB, p planted) {
	t.Helper()
	var labels []data.Label
	add := func(lo, hi int64, split string) {
		for id := lo; id <= hi; id++ {
			pt := data.Micros(time.Date(2003, 6, 1, 0, 0, 0, 0, time.UTC))
			labels = append(labels, data.Label{SubjectID: id, PredictionTime: pt, Value: id%2 == 0, Split: split,
				Age: 50, Sex: data.SexUnknown, Birth: data.StaticTime, EventTime: data.StaticTime})
		}
	}
	add(1, 20, data.SplitTrain)
	add(41, 45, data.SplitTuning)
	add(51, 55, data.SplitHeldOut)
	add(61, 61, data.SplitHeldOut)
	m := data.NewManifest(data.StageCohort, data.DefaultCohortConfig().Params())
	if _, err := m.AddInput(data.InputMEDS, p.meds); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCohort(p.cohort, false,
		&data.CohortResult{Labels: labels, Report: &data.CohortReport{}}, m); err != nil {
		t.Fatal(err)
	}
}

// writeTokenizerOfAll writes a tokenizer counted on every subject of the dataset.
func writeTokenizerOfAll(t testing.TB, p planted) {
	t.Helper()
	ds, err := data.Open(p.meds)
	if err != nil {
		t.Fatal(err)
	}
	c := tokenize.NewCounter(ds.Codes)
	if err := ds.ForEachSubject(context.Background(),
		func(s data.Subject) error { c.Add(s.Events, -1); return nil }); err != nil {
		t.Fatal(err)
	}
	bc := tokenize.DefaultBuildConfig()
	bc.MinCount, bc.MaxLen = 1, 32
	tok, rep, err := tokenize.Build(c, bc)
	if err != nil {
		t.Fatal(err)
	}
	m := data.NewManifest(tokenize.StageTokenize, nil)
	for name, path := range map[string]string{data.InputMEDS: p.meds, "cohort": p.cohort} {
		if _, err := m.AddInput(name, path); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokenize.Save(p.tokAll, false, tok, tokenize.Config{Build: rep}, m); err != nil {
		t.Fatal(err)
	}
}

// tokenIDs are the ids of codes in a tokenizer, failing when one is not a whole token.
func tokenIDs(t *testing.T, tok *tokenize.Tokenizer, codes ...string) map[int32]string {
	t.Helper()
	out := map[int32]string{}
	for _, c := range codes {
		id, ok := tok.Vocab.ID(data.CodeText(c))
		if !ok {
			t.Fatalf("the tokenizer of every code lacks %s", c)
		}
		out[id] = c
	}
	return out
}

// plantedRun opens a pretraining run's inputs and corpus over the planted dataset.
func plantedRun(t *testing.T, p planted, tokDir string, cc CorpusConfig) (*bertRun, *pretrainCorpus) {
	t.Helper()
	tr := tinyTraining()
	b, err := startBERTRun("train pretrain", Inputs{MEDS: p.meds, Cohort: p.cohort, Tokenizer: tokDir},
		outFolder{path: filepath.Join(t.TempDir(), "out")}, tinyModel(), tr, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	if err := cc.check(b.maxLen); err != nil {
		t.Fatal(err)
	}
	corpus, err := openCorpus(context.Background(), b, cc)
	if err != nil {
		t.Fatal(err)
	}
	return b, corpus
}

// windowKey is a window as a string, to compare windows as multisets.
func windowKey(e bert.Encoded) string { return fmt.Sprint(e.IDs, e.Ages, e.Days) }

func TestRecordsCorpusNeverSeesTuningOrHeldOut(t *testing.T) {
	p := writePlanted(t, t.TempDir())
	t.Run("the records tokenizer counts training records only", func(t *testing.T) { checkRecordsTokenizer(t, p) })
	t.Run("the window stream and the validation windows", func(t *testing.T) { checkWindowStream(t, p) })
	t.Run("what the engine is fed", func(t *testing.T) { checkEngineFeed(t, p) })
}

// checkRecordsTokenizer: the records tokenizer counts training records only, and reads the
// tuning records for [UNK].
func checkRecordsTokenizer(t *testing.T, p planted) {
	tok, cfg, err := tokenize.Load(p.tokRecords)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.Vocab.ID(plantTrain); !ok {
		t.Errorf("the vocabulary lacks %s, planted in a training record", plantTrain)
	}
	for _, c := range forbidden {
		if _, ok := tok.Vocab.ID(data.CodeText(c)); ok {
			t.Errorf("the vocabulary holds %s, planted in a subject it must never count", c)
		}
	}
	c := cfg.Corpus
	if c == nil || c.TrainSubjects != 40 || c.TuningSubjects != 10 || c.HeldOutSubjects != 11 || c.Unassigned != 1 {
		t.Errorf("corpus report %+v", c)
	}
	// The tuning records were read for [UNK]: PLANT/TUNING's six occurrences are [UNK].
	if cfg.TuningUnk.Unknown != 6 || cfg.TrainRates.Unknown != 0 {
		t.Errorf("[UNK] on tuning %d (want the 6 planted), on training %d",
			cfg.TuningUnk.Unknown, cfg.TrainRates.Unknown)
	}
}

// checkWindowStream: two epochs of the stream hold no forbidden code, one epoch is every
// training window once, and the validation windows are the tuning subjects'.
func checkWindowStream(t *testing.T, p planted) {
	b, corpus := plantedRun(t, p, p.tokAll, DefaultCorpusConfig())
	bad := tokenIDs(t, b.o.tok, forbidden...)
	trainID := tokenIDs(t, b.o.tok, plantTrain)
	s := corpus.summary
	if s.Subjects != 40 || s.TuningSubjects != 10 || s.HeldOutSubjects != 11 || s.Unassigned != 1 || s.Windows == 0 {
		t.Fatalf("corpus %+v", s)
	}
	// Two epochs and a bit of the stream.
	seen := map[string]bool{}
	for step := 0; step*b.t.BatchSize < 2*s.Windows+b.t.BatchSize; step++ {
		ws, err := corpus.batch(step)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			for _, id := range w.IDs {
				if c, ok := bad[id]; ok {
					t.Fatalf("step %d fed %s", step, c)
				}
				if _, ok := trainID[id]; ok {
					seen[plantTrain] = true
				}
			}
		}
	}
	// One epoch of the stream is every training window exactly once.
	_, again := plantedRun(t, p, p.tokAll, DefaultCorpusConfig())
	got, want := epochWindows(t, again, b.t.BatchSize), trainWindows(t, b, 1, 40, data.StaticTime)
	if !slices.Equal(got, want) {
		t.Errorf("one epoch gave %d windows, not the %d windows of subjects 1-40 once each", len(got), len(want))
	}
	if !seen[plantTrain] {
		t.Errorf("no window holds %s, planted in a training record", plantTrain)
	}
	tuningID := tokenIDs(t, b.o.tok, plantTuning)
	for _, w := range corpus.tuning {
		for _, id := range w.IDs {
			if _, ok := tuningID[id]; ok {
				seen[plantTuning] = true
			} else if c, ok := bad[id]; ok {
				t.Errorf("a validation window holds %s", c)
			}
		}
	}
	if !seen[plantTuning] || len(corpus.tuning) != s.TuningWindows {
		t.Errorf("validation: %d windows (summary %d), %s seen %v", len(corpus.tuning), s.TuningWindows, plantTuning,
			seen[plantTuning])
	}
}

// checkEngineFeed: no batch fed to the engine holds a forbidden code (masked positions aside,
// where MLM may draw any token of the vocabulary), and the manifest records the corpus.
func checkEngineFeed(t *testing.T, p planted) {
	b, corpus := plantedRun(t, p, p.tokAll, DefaultCorpusConfig())
	bad, trainID := tokenIDs(t, b.o.tok, forbidden...), tokenIDs(t, b.o.tok, plantTrain)
	cfg := pretrainCfg(fixture{meds: p.meds, cohort: p.cohort, tok: p.tokAll}, filepath.Join(t.TempDir(), "mlm"))
	perEpoch := (corpus.summary.Windows + cfg.BatchSize - 1) / cfg.BatchSize
	cfg.MaxSteps, cfg.EvalEvery = 2*perEpoch+1, perEpoch
	batches, rows, seenTrain := 0, 0, false
	cfg.onBatch = func(bt *bert.Batch) {
		batches++
		for r := 0; r < bt.B; r++ {
			rows += int(bt.Mask[r*bt.L]) // [CLS] of a real row
		}
		// Every token but the masked positions' (where MLM may put a random token of the
		// vocabulary), and the masked positions' targets: the record's own tokens.
		masked := map[int]bool{}
		for i, p := range bt.Positions {
			if bt.TargetWeights[i] > 0 {
				masked[i/bt.P*bt.L+int(p)] = true
			}
		}
		for i, id := range slices.Concat(bt.IDs, bt.Targets) {
			if i < len(bt.IDs) && masked[i] {
				continue
			}
			if c, ok := bad[id]; ok {
				t.Fatalf("batch %d fed the engine %s", batches, c)
			}
			_, ok := trainID[id]
			seenTrain = seenTrain || ok
		}
	}
	res, err := BERTPretrain(context.Background(), cfg, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if batches != cfg.MaxSteps || rows != cfg.MaxSteps*cfg.BatchSize || !seenTrain {
		t.Errorf("fed %d batches of %d rows (want %d of %d), %s seen: %v", batches, rows, cfg.MaxSteps,
			cfg.MaxSteps*cfg.BatchSize, plantTrain, seenTrain)
	}
	m, err := modelrepo.ReadManifest(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Corpus == nil || m.Corpus.Kind != CorpusRecords || m.Corpus.Windows != corpus.summary.Windows ||
		m.Corpus.Subjects != 40 || m.Corpus.Tokens != corpus.summary.Tokens || res.Corpus.Windows != m.Corpus.Windows {
		t.Errorf("manifest corpus %+v, stream's %+v", m.Corpus, corpus.summary)
	}
}

// trainWindows cuts the records of subjects lo-hi directly (no stream) into encoded windows,
// each record cut at until.
func trainWindows(t *testing.T, b *bertRun, lo, hi int64, until int64) []string {
	t.Helper()
	win := &windower{cm: b.o.tok.NewCodeMap(b.o.ds.Codes), codes: b.o.ds.Codes, demo: b.o.cohort.Demographics,
		maxLen: b.maxLen, visits: b.o.tok.VisitSeparators}
	var out []string
	err := b.o.ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		if s.ID < lo || s.ID > hi {
			return nil
		}
		win.refresh()
		r := win.split(data.Before(s.Events, until))
		win.cut(&r, func(l, h, _ int) { out = append(out, windowKey(win.encode(&r, l, h))) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// epochWindows reads the first epoch of a corpus's stream, sorted.
func epochWindows(t *testing.T, corpus *pretrainCorpus, batch int) []string {
	t.Helper()
	var out []string
	for step := 0; step*batch < corpus.summary.Windows; step++ {
		ws, err := corpus.batch(step)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			out = append(out, windowKey(w))
		}
	}
	out = out[:corpus.summary.Windows]
	slices.Sort(out)
	return out
}

// windowCase is one way of cutting windows.
type windowCase struct {
	name           string
	visits         bool
	stride, maxLen int
}

func TestWindowsCut(t *testing.T) {
	p := writePlanted(t, t.TempDir())
	b, _ := plantedRun(t, p, p.tokAll, DefaultCorpusConfig())
	for _, tc := range []windowCase{{"consecutive", false, 0, 32}, {"visit separators", true, 0, 32},
		{"stride", false, 8, 32}, {"stride and visits", true, 10, 24}} {
		t.Run(tc.name, func(t *testing.T) {
			win := &windower{cm: b.o.tok.NewCodeMap(b.o.ds.Codes), codes: b.o.ds.Codes, demo: b.o.cohort.Demographics,
				maxLen: tc.maxLen, stride: tc.stride, visits: tc.visits}
			windows := 0
			err := b.o.ds.ForEachSubject(context.Background(), func(s data.Subject) error {
				win.refresh()
				r := win.split(s.Events)
				prev := -1
				win.cut(&r, func(lo, hi, tokens int) {
					windows++
					checkWindow(t, tc, b.o.tok, win, &r, lo, hi, tokens, prev)
					prev = hi
				})
				if prev != len(r.body) {
					t.Fatalf("subject %d: the windows end at event %d of %d", s.ID, prev, len(r.body))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if windows < 62*2 {
				t.Errorf("%d windows", windows)
			}
		})
	}
}

// checkWindow checks the window [lo, hi) of r that cut said holds tokens and came after a
// window ending at prev (-1: the first): as long as cut says, full unless the record ends,
// starting with the sex row and the birth event, aged at its last event, and placed where the
// stride says.
func checkWindow(t *testing.T, tc windowCase, tok *tokenize.Tokenizer, win *windower, r *record,
	lo, hi, tokens, prev int) {
	t.Helper()
	sexF, _ := tok.Vocab.ID("SEX//F")
	sexM, _ := tok.Vocab.ID("SEX//M")
	birth, _ := tok.Vocab.ID(data.BirthCode)
	e := win.encode(r, lo, hi)
	exact := len(e.IDs) == tokens && tokens <= tc.maxLen
	full := hi == len(r.body) || len(e.IDs) > tc.maxLen-3 // the next event did not fit
	at := 2                                               // the birth event, after the sex row
	if tc.visits {
		at = 3 // and a visit separator
	}
	if !exact || !full || (e.IDs[1] != sexF && e.IDs[1] != sexM) || e.IDs[at] != birth {
		t.Fatalf("window [%d,%d): %d tokens (cut said %d, max %d), starts %v",
			lo, hi, len(e.IDs), tokens, tc.maxLen, e.IDs[:4])
	}
	want := float32(float64(r.body[hi-1].Time-r.birth) / float64(data.MicrosPerYear))
	if math.Abs(float64(e.Ages[0]-want)) > 1e-3 {
		t.Fatalf("age at [CLS] %v, want the age at the window's last event %v", e.Ages[0], want)
	}
	switch {
	case prev < 0 && lo != 0:
		t.Fatalf("the first window starts at event %d", lo)
	case prev >= 0 && tc.stride == 0 && lo != prev:
		t.Fatalf("window starts at %d, the last ended at %d: want no gap, no overlap", lo, prev)
	case prev >= 0 && tc.stride > 0 && (lo >= prev || sharedTokens(win, r, lo, prev) > tc.stride):
		t.Fatalf("window [%d,%d) after one ending at %d: want an overlap of at most %d tokens", lo, hi, prev, tc.stride)
	}
}

// sharedTokens are the tokens of body events [lo, hi).
func sharedTokens(w *windower, r *record, lo, hi int) int {
	n := 0
	for _, e := range r.body[lo:hi] {
		n += w.cm.EventLen(e)
	}
	return n
}

func TestRecordsCorpusUntilAndStride(t *testing.T) {
	p := writePlanted(t, t.TempDir())
	_, all := plantedRun(t, p, p.tokAll, DefaultCorpusConfig())
	cc := DefaultCorpusConfig()
	cc.Until = "2002-06-01" // before half the visits, after two of PLANT/TRAIN's six
	b, early := plantedRun(t, p, p.tokAll, cc)
	if early.summary.Until != "2002-06-01" || early.summary.Tokens >= all.summary.Tokens ||
		early.summary.Windows >= all.summary.Windows {
		t.Errorf("until 2002-06-01: %+v, all: %+v", early.summary, all.summary)
	}
	until, _ := data.ParseUntil(cc.Until)
	if got, want := epochWindows(t, early, b.t.BatchSize), trainWindows(t, b, 1, 40, until); !slices.Equal(got, want) {
		t.Errorf("until: one epoch gave %d windows, not the %d windows of subjects 1-40 before it", len(got), len(want))
	}
	cc = DefaultCorpusConfig()
	cc.Stride = 10
	_, strided := plantedRun(t, p, p.tokAll, cc)
	if strided.summary.Windows <= all.summary.Windows || strided.summary.Stride != 10 {
		t.Errorf("stride 10: %d windows, %d without", strided.summary.Windows, all.summary.Windows)
	}
	for _, bad := range []CorpusConfig{{Kind: "notes"}, {Kind: CorpusCohort, Until: "2020-01-01"},
		{Kind: CorpusRecords, Stride: 30},
		{Kind: CorpusRecords, Until: "yesterday"}} {
		if err := bad.check(32); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestWindowStreamSeeksAsItReads(t *testing.T) {
	p := writePlanted(t, t.TempDir())
	cc := DefaultCorpusConfig()
	cc.ShuffleBuffer = 16
	b, corpus := plantedRun(t, p, p.tokAll, cc)
	steps := 2*corpus.summary.Windows/b.t.BatchSize + 3 // over two epoch ends
	var seq []string
	for step := 0; step < steps; step++ {
		ws, err := corpus.batch(step)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			seq = append(seq, windowKey(w))
		}
	}
	for _, step := range []int{steps - 1, 1, corpus.summary.Windows / b.t.BatchSize, 0} {
		_, fresh := plantedRun(t, p, p.tokAll, cc)
		ws, err := fresh.batch(step)
		if err != nil {
			t.Fatal(err)
		}
		for j, w := range ws {
			if windowKey(w) != seq[step*b.t.BatchSize+j] {
				t.Fatalf("step %d row %d read fresh differs from the same row read in order", step, j)
			}
		}
	}
	// Epochs differ in order, not in content.
	n := corpus.summary.Windows
	e0, e1 := slices.Clone(seq[:n]), slices.Clone(seq[n:2*n])
	if slices.Equal(e0, e1) {
		t.Error("two epochs in the same order")
	}
	slices.Sort(e0)
	slices.Sort(e1)
	if !slices.Equal(e0, e1) {
		t.Error("two epochs hold different windows")
	}
	if !strings.Contains(fmt.Sprint(corpus.params), "corpus_windows") {
		t.Errorf("checkpoint params %v lack the corpus", corpus.params)
	}
}

// TestClassifyInitLogsWhatItLoads: fine-tuning from a pretrained run logs the tensors it
// loaded, left unused and initialised (counts), and the corpus the run was pretrained on.
func TestClassifyInitLogsWhatItLoads(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	pre := pretrainCfg(f, filepath.Join(dir, "mlm"))
	pre.MaxSteps, pre.EvalEvery = 4, 4
	res, err := BERTPretrain(context.Background(), pre, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	c := classifyCfg(f, filepath.Join(dir, "cls"))
	c.Init, c.Config, c.MaxSteps, c.EvalEvery = pre.Out, "", 4, 4
	if _, err := BERTClassify(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)), nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="pretrained weights loaded"`,
		"unused=5 newly_initialized=4", // the MLM head's 5, pooler and classifier's 4
		`msg="pretrained corpus"`, "corpus=records",
		fmt.Sprintf("windows=%d tokens=%d", res.Corpus.Windows, res.Corpus.Tokens),
		fmt.Sprintf("subjects=%d", res.Corpus.Subjects),
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs.String())
		}
	}
}
