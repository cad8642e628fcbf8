package train

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// run is one training run: the skeleton every driver (XGBoost, BERTClassify, BERTPretrain)
// fills in. Its phases, in order:
//
//  1. startRun: the inputs opened and checked against each other's manifests (each input's
//     fingerprint computed once, for the checks, the checkpoint settings and the manifest).
//  2. The driver reads its data (feature rows, encoded sequences) and builds its model.
//  3. createOut: the output folder, built under a temporary name (data.AtomicDir), so a
//     failed or killed run leaves nothing at the output path.
//  4. The driver trains (the BERT drivers with checkpoints in WorkDir(out)).
//  5. finish: the model's files saved, the tokenizer copied beside them, for a servable model
//     each split scored as the saved folder will be served, with the split predictions, the
//     calibration and the operating point, then the manifest through modelrepo and the commit.
type run struct {
	task  string // the manifest's stage and the messages' prefix: "train xgboost"
	out   outFolder
	o     *opened
	dir   *data.AtomicDir // nil before createOut
	log   *slog.Logger
	start time.Time
}

// outFolder is where a run writes its model version folder.
type outFolder struct {
	path  string
	force bool   // replace an existing folder
	name  string // the model's name in the manifest
}

// startRun opens and checks a run's inputs.
func startRun(task string, in Inputs, out outFolder, log *slog.Logger) (*run, error) {
	r := &run{task: task, out: out, log: log, start: time.Now()}
	var err error
	if r.o, err = in.open(log); err != nil {
		return nil, err
	}
	return r, nil
}

// createOut starts the output folder; the driver defers abort.
func (r *run) createOut() error {
	dir, err := data.CreateAtomicDir(r.out.path, r.out.force)
	if err != nil {
		return err
	}
	r.dir = dir
	return nil
}

// abort removes the output folder's temporary copy unless the run committed it.
func (r *run) abort() {
	if r.dir != nil {
		r.dir.Abort()
	}
}

// manifest starts the run's manifest: its stage and settings, the model's kind and name and
// the driver's metrics (finish adds the rest).
func (r *run) manifest(kind string, params map[string]any, metrics map[string]float64) *modelrepo.Manifest {
	return &modelrepo.Manifest{Manifest: *data.NewManifest(r.task, params), Kind: kind, Name: r.out.name,
		Metrics: metrics}
}

// trained is a driver's trained model, as the finish sees it.
type trained interface {
	// save writes the model's own files into dir, the folder being built.
	save(dir string) error
}

// ending is what a driver hands the finish.
type ending struct {
	manifest *modelrepo.Manifest // from run.manifest, with the driver's fields
	model    trained
	// served says how a servable model is scored and decided; nil for a run whose folder is
	// not served (pretraining): it gets no predictions, calibration or operating point.
	served *served
}

// served is how the finish scores a servable model and chooses its operating point.
type served struct {
	// score scores each split's labels as the saved model in dir will be served, in the
	// labels' order. m is the run's manifest: a driver may record its checks in m.Metrics.
	score  func(ctx context.Context, dir string, m *modelrepo.Manifest) (map[string][]float64, error)
	labels map[string][]data.Label // each split's labels
	// calibration is fitted on the tuning split: isotonic (default), platt or identity.
	calibration string
	// threshold is the rule of the operating point, chosen on the calibrated tuning
	// predictions (zero: max-f1).
	threshold eval.ThresholdSpec
}

// finish ends the run: the model's files, the tokenizer beside them, the split predictions
// with the calibration and operating point (servable models), the completed manifest, and
// the folder moved into place. It returns each scored split's AUROC on the raw scores.
func (r *run) finish(ctx context.Context, e ending) (map[string]float64, error) {
	if err := e.model.save(r.dir.Tmp); err != nil {
		return nil, err
	}
	if err := copyTokenizer(r.o.in.Tokenizer, r.dir.Tmp); err != nil {
		return nil, err
	}
	var auroc map[string]float64
	if e.served != nil {
		var err error
		if auroc, err = r.predictions(ctx, e.manifest, e.served); err != nil {
			return nil, err
		}
	}
	r.o.completeManifest(e.manifest)
	if err := e.manifest.Write(r.dir.Tmp); err != nil {
		return nil, err
	}
	return auroc, r.dir.Commit()
}

// predictions scores each split with the saved model, records each split's AUROC in the
// manifest, and writes the split predictions (calibrated, decided at the operating point) and
// the calibration (eval.ModelOutputs), the calibration method and operating point going to the
// manifest.
func (r *run) predictions(ctx context.Context, m *modelrepo.Manifest, s *served) (map[string]float64, error) {
	scores, err := s.score(ctx, r.dir.Tmp, m)
	if err != nil {
		return nil, err
	}
	auroc := map[string]float64{}
	raw := map[string][]eval.Prediction{}
	for name, p := range scores {
		ls := s.labels[name]
		if auc, err := eval.AUROC((&labelled{ls}).bools(), p); err == nil {
			auroc[name] = auc
			m.Metrics["auroc_"+name] = auc
		}
		raw[name] = splitPredictions(name, ls, p)
	}
	cal, op, err := eval.ModelOutputs(r.dir.Tmp, raw, s.calibration, s.threshold)
	if err != nil {
		return nil, err
	}
	m.Calibration, m.OperatingPoint = cal.Method, op
	return auroc, nil
}

// splitPredictions are a split's raw predictions with age, sex and split as attributes.
func splitPredictions(split string, ls []data.Label, scores []float64) []eval.Prediction {
	p := make([]eval.Prediction, len(ls))
	for i, l := range ls {
		p[i] = eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value,
			Score: scores[i], Attrs: eval.LabelAttrs(l, split)}
	}
	return p
}

// completeManifest records what every run's manifest holds beside the driver's part: the
// cohort's gap, the training split's token rates, the vocabulary, the demographics and the
// three inputs with their fingerprints.
func (o *opened) completeManifest(m *modelrepo.Manifest) {
	m.Gap = modelrepo.Duration(o.cohort.Gap)
	if r := o.trainRates; r.Codes > 0 {
		m.TokenRates = modelrepo.NewTokenRates(data.SplitTrain, r.Codes, r.Whole, r.Pieced, r.Unknown)
	}
	m.VocabSize = o.tok.Vocab.Len()
	m.ValueBins = valueBins(o.tok)
	m.Demographics = demographics(o.cohort.Demographics, o.tok)
	o.addInputs(&m.Manifest)
}

// valueBins is the tokenizer's value bins per code (0: it encodes codes only), as manifests
// record it (the report reads it to say what a model sees).
func valueBins(t *tokenize.Tokenizer) int {
	if t.Values == nil {
		return 0
	}
	return t.Values.N
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

// copyTokenizer puts the tokenizer's files beside the model, so the version folder serves alone.
func copyTokenizer(from, to string) error {
	for _, name := range []string{tokenize.HFFile, tokenize.VocabFile, tokenize.ConfigFile} {
		buf, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
		if err := data.WriteFileAtomic(filepath.Join(to, name), buf); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(path, append(buf, '\n'))
}
