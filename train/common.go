package train

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// Inputs are the artifacts every training run reads, checked against each other's manifests.
type Inputs struct {
	MEDS, Cohort, Tokenizer string
	AllowMismatch           bool
}

// opened is the loaded inputs.
type opened struct {
	ds     *data.Dataset
	cohort *data.Cohort
	tok    *tokenize.Tokenizer
	in     Inputs
	fp     map[string]string // content fingerprint by input name (meds, cohort, tokenizer)
	// trainRates count how the tokenizer read the training split's codes (whole, pieced,
	// [UNK]), as the run encoded them; commitRun records them in the manifest.
	trainRates tokenize.CodeRates
}

// countTrain counts a sequence's codes into trainRates when it is a training one.
func (o *opened) countTrain(cm *tokenize.CodeMap, s data.Sequence) {
	if s.Label.Split == data.SplitTrain {
		cm.Count(&o.trainRates, s.Events)
	}
}

// open loads the dataset, cohort and tokenizer and refuses a combination from different runs:
// the cohort must come from this dataset, and the tokenizer from this cohort and dataset.
func (in Inputs) open(log *slog.Logger) (*opened, error) {
	c, err := data.LoadCohort(in.Cohort)
	if err != nil {
		return nil, err
	}
	tok, _, err := tokenize.Load(in.Tokenizer)
	if err != nil {
		return nil, err
	}
	// Fingerprints read every byte of an input: compute each once for the checks here, the
	// checkpoint settings and the model's manifest.
	fp := map[string]string{}
	for _, x := range in.list() {
		if fp[x.name], err = data.Fingerprint(x.path); err != nil {
			return nil, err
		}
	}
	checks := []func() error{
		func() error { return c.Manifest.CheckInputFingerprint(data.InputMEDS, in.MEDS, fp[data.InputMEDS]) },
		func() error {
			tm, err := data.ReadManifest(in.Tokenizer)
			if err != nil {
				return fmt.Errorf("tokenizer %s: %w", in.Tokenizer, err)
			}
			if err := tm.CheckInputFingerprint("cohort", in.Cohort, fp["cohort"]); err != nil {
				return err
			}
			return tm.CheckInputFingerprint(data.InputMEDS, in.MEDS, fp[data.InputMEDS])
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			if !in.AllowMismatch {
				return nil, fmt.Errorf("%w (or pass --allow-mismatch)", err)
			}
			log.Warn("inputs from different runs", "err", err.Error())
		}
	}
	ds, err := data.Open(in.MEDS)
	if err != nil {
		return nil, err
	}
	return &opened{ds: ds, cohort: c, tok: tok, in: in, fp: fp}, nil
}

// inputRef is one input of a training run.
type inputRef struct{ name, path string }

// list names the run's inputs as they are recorded in manifests.
func (in Inputs) list() []inputRef {
	return []inputRef{{data.InputMEDS, in.MEDS}, {"cohort", in.Cohort}, {"tokenizer", in.Tokenizer}}
}

// addInputs records the three inputs in a manifest, with the fingerprints open computed.
func (o *opened) addInputs(m *data.Manifest) {
	for _, x := range o.in.list() {
		m.AddInputFingerprint(x.name, x.path, o.fp[x.name])
	}
}

// labelled is a split's labels in cohort order.
type labelled struct {
	labels []data.Label
}

func (l *labelled) y() []float32 {
	out := make([]float32, len(l.labels))
	for i, x := range l.labels {
		if x.Value {
			out[i] = 1
		}
	}
	return out
}

func (l *labelled) bools() []bool {
	out := make([]bool, len(l.labels))
	for i, x := range l.labels {
		out[i] = x.Value
	}
	return out
}

// forSplits streams each label's censored sequence with its split.
func (o *opened) forSplits(ctx context.Context, splits []string, fn func(data.Sequence) error) error {
	return o.cohort.Sequences(ctx, o.ds, splits, fn)
}

// scoredSplits are a run's raw probabilities per split, with the labels in the same order.
type scoredSplits struct {
	labels map[string][]data.Label
	scores map[string][]float64
}

// predictions are a split's raw predictions with age, sex and split as attributes.
func (s scoredSplits) predictions(split string) []eval.Prediction {
	ls, scores := s.labels[split], s.scores[split]
	p := make([]eval.Prediction, len(ls))
	for i, l := range ls {
		p[i] = eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value, Score: scores[i],
			Attrs: eval.LabelAttrs(l, split)}
	}
	return p
}

// scoreWith scores each split's labels with sc through scorer.ScoreCohort (as medseq predict
// does) and returns the raw probabilities in the labels' order.
func (o *opened) scoreWith(ctx context.Context, sc scorer.Scorer, labels map[string][]data.Label) (map[string][]float64, error) {
	type key struct{ id, pt int64 }
	got := map[key]float64{}
	var splits []string
	for name := range labels {
		splits = append(splits, name)
	}
	err := scorer.ScoreCohort(ctx, sc, o.ds, o.cohort, splits, 512, func(batch []scorer.Scored) error {
		for _, x := range batch {
			got[key{x.Label.SubjectID, x.Label.PredictionTime}] = x.Result.Probability
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]float64{}
	for name, ls := range labels {
		p := make([]float64, len(ls))
		for i, l := range ls {
			v, ok := got[key{l.SubjectID, l.PredictionTime}]
			if !ok {
				return nil, fmt.Errorf("split %s: subject %d was not scored", name, l.SubjectID)
			}
			p[i] = v
		}
		out[name] = p
	}
	return out, nil
}

// commitModel ends every training run of a servable model: it fits the calibration and
// chooses the operating point, writes each scored split's predictions (calibrated, decided at
// the operating point) and the calibration (eval.ModelOutputs), copies the tokenizer beside the model,
// completes the manifest (inputs, gap, demographics, vocabulary) and moves the folder into
// place.
func (o *opened) commitModel(dir *data.AtomicDir, m *modelrepo.Manifest, s scoredSplits, method string, spec eval.ThresholdSpec) error {
	raw := map[string][]eval.Prediction{}
	for name := range s.scores {
		raw[name] = s.predictions(name)
	}
	cal, op, err := eval.ModelOutputs(dir.Tmp, raw, method, spec)
	if err != nil {
		return err
	}
	m.Calibration, m.OperatingPoint = cal.Method, op
	return o.commitRun(dir, m)
}

// commitRun copies the tokenizer beside the model, completes the manifest and moves the
// folder into place (pretraining runs, which have no calibration or operating point, end here).
func (o *opened) commitRun(dir *data.AtomicDir, m *modelrepo.Manifest) error {
	if _, err := os.Stat(filepath.Join(dir.Tmp, tokenize.HFFile)); err != nil {
		if err := copyTokenizer(o.in.Tokenizer, dir.Tmp); err != nil {
			return err
		}
	}
	m.Gap = modelrepo.Duration(o.cohort.Gap)
	if r := o.trainRates; r.Codes > 0 {
		m.TokenRates = modelrepo.NewTokenRates(data.SplitTrain, r.Codes, r.Whole, r.Pieced, r.Unknown)
	}
	m.VocabSize = o.tok.Vocab.Len()
	m.ValueBins = valueBins(o.tok)
	m.Demographics = demographics(o.cohort.Demographics, o.tok)
	o.addInputs(&m.Manifest)
	if err := m.Write(dir.Tmp); err != nil {
		return err
	}
	return dir.Commit()
}

// demographics records the cohort's birth and sex rules and the codes the vocabulary holds
// for them (the first, most frequent, whole code of each), so that scoring adds the same
// events to a history that sends birth and sex as fields.
func demographics(rules data.Demographics, tok *tokenize.Tokenizer) modelrepo.Demographics {
	d := modelrepo.Demographics{Demographics: rules}
	for id := range tok.Vocab.Len() {
		name, whole := tok.Code(int32(id)) // the code as the data spells it
		if !whole {
			continue // a piece, a value token or a special token
		}
		if rules.IsBirth(name) {
			if d.BirthCode == "" {
				d.BirthCode = name
			}
			continue
		}
		if v, ok := rules.Sex(name); ok && v != data.SexUnknown {
			if d.SexCodes == nil {
				d.SexCodes = map[string]string{}
			}
			if _, seen := d.SexCodes[v]; !seen {
				d.SexCodes[v] = name
			}
		}
	}
	return d
}
