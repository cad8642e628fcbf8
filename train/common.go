package train

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/tokenize"
)

// Inputs are the artifacts every training run reads, checked against each other's manifests.
type Inputs struct {
	MEDS, Cohort, Tokenizer string
	AllowMismatch           bool
	// TokenizerCohort is the cohort the tokenizer was built from when Cohort is a cut of it
	// (eval curve's training fractions, which keep its tuning and held-out rows): the tokenizer
	// is checked against it instead of Cohort. "" means Cohort.
	TokenizerCohort string
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
	oc, err := data.OpenCohort(in.MEDS, in.Cohort, in.AllowMismatch)
	if err != nil {
		return nil, err
	}
	if oc.Mismatch != nil {
		log.Warn("inputs from different runs", "err", oc.Mismatch.Error())
	}
	tok, _, err := tokenize.Load(in.Tokenizer)
	if err != nil {
		return nil, err
	}
	// Fingerprints read every byte of an input: compute each once (the dataset's in
	// OpenCohort) for the checks here, the checkpoint settings and the model's manifest.
	fp := map[string]string{data.InputMEDS: oc.MEDSFingerprint}
	for _, x := range in.list() {
		if _, done := fp[x.name]; done {
			continue
		}
		if fp[x.name], err = data.Fingerprint(x.path); err != nil {
			return nil, err
		}
	}
	checks := []func() error{
		func() error {
			tm, err := data.ReadManifest(in.Tokenizer)
			if err != nil {
				return fmt.Errorf("tokenizer %s: %w", in.Tokenizer, err)
			}
			cohort, cohortFP := in.Cohort, fp["cohort"]
			if in.TokenizerCohort != "" {
				cohort = in.TokenizerCohort
				if cohortFP, err = data.Fingerprint(cohort); err != nil {
					return err
				}
			}
			if err := tm.CheckInputFingerprint("cohort", cohort, cohortFP); err != nil {
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
	return &opened{ds: oc.Dataset, cohort: oc.Cohort, tok: tok, in: in, fp: fp}, nil
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

// scoreWith scores each split's labels with sc through scorer.ScoreCohort (as medseq predict
// does) and returns the raw probabilities in the labels' order.
func (o *opened) scoreWith(ctx context.Context, sc scorer.Scorer,
	labels map[string][]data.Label) (map[string][]float64, error) {
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
