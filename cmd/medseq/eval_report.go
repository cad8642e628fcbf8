package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
)

// evalReportOptions are the flags of `medseq eval report`.
type evalReportOptions struct {
	cfg    eval.ReportConfig
	out    string
	oracle string // MEDS folder whose synth oracle scores the evaluated rows
	lead   int64  // the cohort's lead time, for the oracle (from --cohort's manifest when given)
}

func evalReportFlags(e *env, args []string) (*evalReportOptions, error) {
	fs := newFlags(e, "eval report", "--model MODELDIR [--model MODELDIR...] | --models DIR --out DIR [--split held_out] "+
		"[--tuning-split tuning] [--oracle MEDSDIR] [--cohort COHORTDIR] [--bootstrap 1000] [--threshold max-f1] "+
		"[--horizons 1y,2y,5y] [--censoring FILE.json]")
	o := &evalReportOptions{}
	var threshold, root string
	appendListVar(fs, &o.cfg.Models, "model", "model version folder (with predictions_<split>.parquet, calibration.json, "+
		"manifest.json); repeat it or separate folders by commas")
	fs.StringVar(&root, "models", "", "model repository DIR/<name>/<version>/ (as serve reads it): add every model's "+
		"latest version (the highest positive-integer folder)")
	fs.StringVar(&o.out, "out", "", "folder for report.html and metrics.json (created if missing)")
	fs.StringVar(&o.cfg.Split, "split", data.SplitHeldOut, "the split to evaluate")
	fs.StringVar(&o.cfg.TuningSplit, "tuning-split", data.SplitTuning, "the split on which alternative operating points "+
		"are chosen")
	fs.StringVar(&o.oracle, "oracle", "", "synthetic MEDS folder: report its oracle's AUROC on the evaluated rows (the "+
		"best achievable)")
	fs.StringVar(&o.cfg.CohortDir, "cohort", "", "cohort folder (default: the one the first model's manifest names): the "+
		"task, its exclusion flow and the time to event come from it; given, it adds the cohort checks (age per class, KS "+
		"distance, warnings)")
	fs.StringVar(&o.cfg.CohortMEDS, "meds", "", "with --cohort: the MEDS folder it was built from, to compare the "+
		"classes' sequence lengths and flag codes that alone separate them")
	durationVar(fs, &o.lead, "lead", 365*data.MicrosPerDay, "the cohort's lead time for --oracle (read from --cohort's "+
		"manifest when given)")
	fs.IntVar(&o.cfg.Bootstrap, "bootstrap", 1000, "bootstrap resamples of subjects for 95% intervals (0 for none)")
	fs.Uint64Var(&o.cfg.Seed, "seed", 1, "bootstrap seed")
	fs.StringVar(&threshold, "threshold", "", "one more alternative operating point to show beside each model's deployed "+
		"one (its manifest's) and max-f1 and youden: a probability, sens=X or spec=X (chosen on --tuning-split)")
	listVar(fs, &o.cfg.SegmentColumns, "segments", nil, "attribute columns to segment by (default sex; age bands always "+
		"when there is an age)")
	fs.IntVar(&o.cfg.MinPositives, "min-positives", 10, "segments with fewer positives are reported with counts only")
	fs.IntVar(&o.cfg.MinNegatives, "min-negatives", 10, "segments with fewer negatives are reported with counts only")
	fs.IntVar(&o.cfg.Bins, "bins", 10, "reliability-curve bins")
	survival := survivalFlags(fs, &o.cfg)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := survival(); err != nil {
		return nil, err
	}
	if err := required("out", o.out); err != nil {
		return nil, err
	}
	if root != "" {
		latest, ignored, err := latestVersions(root)
		if err != nil {
			return nil, err
		}
		for _, x := range ignored {
			if e.log != nil {
				e.log.Warn("folder ignored: not a model version (version folders are named 1, 2, 3, ...)",
					"folder", filepath.Join(root, x))
			}
		}
		o.cfg.Models = append(o.cfg.Models, latest...)
	}
	if len(o.cfg.Models) == 0 {
		return nil, usagef("flag --model (a model version folder) or --models (a model repository) is required")
	}
	if threshold != "" {
		t, err := eval.ParseThreshold(threshold)
		if err != nil {
			return nil, usagef("flag --threshold: %v", err)
		}
		o.cfg.Threshold = t
	}
	switch {
	case o.cfg.Bootstrap < 0:
		return nil, usagef("flag --bootstrap: must be 0 or more")
	case o.cfg.Bins < 1:
		return nil, usagef("flag --bins: must be at least 1")
	case o.cfg.MinPositives < 1 || o.cfg.MinNegatives < 1:
		return nil, usagef("flags --min-positives and --min-negatives: must be at least 1")
	}
	return o, nil
}

// survivalFlags registers --horizons and --censoring; the function it returns checks them
// once parsed.
func survivalFlags(fs *flag.FlagSet, cfg *eval.ReportConfig) func() error {
	var horizons string
	fs.StringVar(&horizons, "horizons", "1y,2y,5y", "horizons of the time-to-event panel (Kaplan–Meier incidence, "+
		"AUC(t), Brier(t), calibration), comma-separated durations")
	fs.StringVar(&cfg.Censoring, "censoring", "", "a censoring-sensitivity JSON (medseq eval censoring --out FILE) to "+
		"show as a table and plots")
	return func() error {
		h, err := eval.ParseHorizons(horizons)
		if err != nil {
			return usagef("flag --horizons: %v", err)
		}
		cfg.Horizons = h
		return nil
	}
}

func runEvalReport(ctx context.Context, e *env, args []string) error {
	o, err := evalReportFlags(e, args)
	if err != nil {
		return err
	}
	if o.oracle != "" {
		why, err := reportOracle(o)
		if err != nil {
			return err
		}
		if why == synth.WhyNoOracle {
			e.log.Warn("no synth oracle in this dataset: the report has no oracle AUROC", "meds", o.oracle)
		} else if why != "" {
			e.log.Warn("the report has no oracle AUROC: "+why, "meds", o.oracle)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, _, err = writeEvalReport(e, o.cfg, o.out)
	return err
}

// reportOracle scores the first model's evaluated rows with the synth oracle of o.oracle, for
// the outcome of the cohort (--cohort, or the one the model's manifest names); it returns why
// there is no oracle AUROC when there is none.
func reportOracle(o *evalReportOptions) (string, error) {
	lead := o.lead
	cohortDir := o.cfg.CohortDir
	if cohortDir == "" {
		if mm, err := modelrepo.ReadManifest(o.cfg.Models[0]); err == nil {
			if in, ok := mm.Input("cohort"); ok {
				cohortDir = in.Path
			}
		}
	}
	var targets []string
	if cohortDir != "" {
		m, err := data.ReadManifest(cohortDir)
		switch {
		case err != nil && o.cfg.CohortDir != "":
			return "", err
		case err != nil: // the model's cohort moved: its outcome is unknown
		default:
			if s, ok := m.Params["lead"].(string); ok && o.cfg.CohortDir != "" {
				if lead, err = data.ParseDuration(s); err != nil {
					return "", fmt.Errorf("cohort %s: manifest lead: %w", cohortDir, err)
				}
			}
			if ts, ok := m.Params["targets"].([]any); ok {
				for _, t := range ts {
					if s, ok := t.(string); ok {
						targets = append(targets, s)
					}
				}
			}
		}
	}
	preds, err := eval.ReadPredictions(modelrepo.PredictionsFile(o.cfg.Models[0], o.cfg.Split))
	if err != nil {
		return "", err
	}
	labels := make([]data.Label, len(preds))
	for i, p := range preds {
		labels[i] = data.Label{SubjectID: p.SubjectID, PredictionTime: p.PredictionTime, Value: p.Label, Split: o.cfg.Split}
	}
	s, err := cohortOracle(o.oracle, targets, labels, lead)
	if err != nil || !s.OK() {
		return s.Why, err
	}
	auc := s.All // every label given is an evaluated row
	o.cfg.OracleAUROC = &auc
	o.cfg.OracleNote = fmt.Sprintf("%s, the same %d rows, lead %s", o.cfg.Split, s.N, data.FormatDuration(lead))
	return "", nil
}

// writeEvalReport builds the report of cfg, writes report.html and metrics.json into out and
// prints the report's path and the headline table. The demo calls it after training.
func writeEvalReport(e *env, cfg eval.ReportConfig, out string) (*eval.Report, string, error) {
	r, err := eval.BuildReport(cfg)
	if err != nil {
		return nil, "", err
	}
	var text bytes.Buffer // rendered before the files are written: nothing fails after them
	if err := r.WriteText(&text); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, "", err
	}
	path, err := r.Write(out)
	if err != nil {
		return nil, "", err
	}
	for _, m := range r.Models {
		for _, w := range m.Warnings {
			e.log.Warn(w, "model", m.Name)
		}
	}
	for _, w := range r.Warnings {
		e.log.Warn(w)
	}
	fmt.Fprintf(e.stdout, "report: %s (and %s)\n\n", path, filepath.Join(out, eval.ReportJSONFile))
	e.stdout.Write(text.Bytes())
	return r, path, nil
}

// latestVersions lists, in name order, the latest version folder of every model under a
// model repository root (ROOT/<name>/<version>/, as serve reads it): the highest version
// (modelrepo.Versions: a positive-integer folder name) holding a manifest.json. Hidden
// folders and versions still being written (no manifest) are skipped; ignored names the
// folders that are not versions ("<name>/old"), for a warning, as serve gives; a root with no
// version is an error.
func latestVersions(root string) (dirs, ignored []string, err error) {
	names, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("model repository: %w", err)
	}
	for _, n := range names { // os.ReadDir sorts by name
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		vs, ig, err := modelrepo.Versions(filepath.Join(root, n.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("model repository: %w", err)
		}
		for _, x := range ig {
			ignored = append(ignored, n.Name()+"/"+x)
		}
		for i := len(vs) - 1; i >= 0; i-- {
			if _, err := os.Stat(filepath.Join(vs[i].Path, data.ManifestFile)); err == nil {
				dirs = append(dirs, vs[i].Path)
				break
			}
		}
	}
	if len(dirs) == 0 {
		return nil, ignored, fmt.Errorf("model repository %s: no model version folders (<name>/<version>/ with a "+
			"manifest.json, the version a positive integer)", root)
	}
	return dirs, ignored, nil
}
