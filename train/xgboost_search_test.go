package train

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
)

func searchCfg(f fixture, cohort, out string) XGBoostConfig {
	p := xgb.DefaultParams()
	p.Rounds, p.EarlyStopping, p.NThread, p.Seed = 80, 10, 2, 3
	s := xgb.DefaultSearchConfig(4)
	s.Seed = 11
	return XGBoostConfig{Inputs: Inputs{MEDS: f.meds, Cohort: cohort, Tokenizer: f.tok, AllowMismatch: true}, Out: out,
		Params: p, Search: s, Calibration: eval.CalibrationIdentity}
}

// readTrials reads search_trials.jsonl.
func readTrials(t *testing.T, dir string) []modelrepo.SearchTrial {
	t.Helper()
	f, err := os.Open(modelrepo.SearchTrialsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []modelrepo.SearchTrial
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var tr modelrepo.SearchTrial
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatal(err)
		}
		out = append(out, tr)
	}
	return out
}

// flipHeldOut writes a copy of cohort with every held-out label inverted.
func flipHeldOut(t *testing.T, cohort, out string) {
	t.Helper()
	c, err := data.LoadCohort(cohort)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(filepath.Join(cohort, data.CohortReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep data.CohortReport
	if err := json.Unmarshal(buf, &rep); err != nil {
		t.Fatal(err)
	}
	for i := range c.Labels {
		if c.Labels[i].Split == data.SplitHeldOut {
			c.Labels[i].Value = !c.Labels[i].Value
		}
	}
	if err := data.WriteCohort(out, false, &data.CohortResult{Labels: c.Labels, Report: &rep}, c.Manifest); err != nil {
		t.Fatal(err)
	}
}

// TestXGBoostSearch: train xgboost --search records every trial (search_trials.jsonl and the
// manifest, the same), keeps the best trial's booster with its parameters and rounds, and
// never reads the held-out labels: inverting them changes no trial and no parameter, only
// the held-out AUROC (to one minus itself).
func TestXGBoostSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains eight boosters")
	}
	if !xgb.Available {
		t.Skip("libxgboost is not linked in this build")
	}
	f := getFixture(t)
	ctx := context.Background()
	tmp := t.TempDir()
	cfg := searchCfg(f, f.cohort, filepath.Join(tmp, "m"))
	res, err := XGBoost(ctx, cfg, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := modelrepo.ReadManifest(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Search
	if s == nil || len(s.Trials) != cfg.Search.Trials || s.Sampler != xgb.SamplerTPE || s.Seed != 11 ||
		s.Objective != "tuning_auroc" || s.TrialsFile != modelrepo.SearchTrialsFile || len(s.Space) != 7 ||
		s.Space["max_depth"] != (modelrepo.SearchDim{Min: 2, Max: 10, Int: true}) {
		t.Fatalf("manifest search %+v", s)
	}
	if !reflect.DeepEqual(readTrials(t, cfg.Out), s.Trials) || !reflect.DeepEqual(res.Search, s) {
		t.Fatalf("search_trials.jsonl, the manifest and the result disagree")
	}
	best := s.Trials[s.Best]
	for i, tr := range s.Trials {
		if tr.Trial != i || tr.TuningAUROC > best.TuningAUROC || (i < s.Best && tr.TuningAUROC == best.TuningAUROC) {
			t.Errorf("trial %d (%+v) vs kept trial %d", i, tr, s.Best)
		}
	}
	for k, v := range best.Params {
		got, ok := m.Params[k].(float64)
		if !ok || got != v {
			t.Errorf("manifest param %s = %v, kept trial's %v", k, m.Params[k], v)
		}
	}
	if m.Params["eval_metric"] != "auc" || m.Params["rounds"] != 80.0 || m.Params["early_stopping"] != 10.0 {
		t.Errorf("manifest params %v: the search stops on auc with the given rounds and patience", m.Params)
	}
	if res.BestIteration != best.BestIteration || math.Abs(res.AUROC[data.SplitTuning]-best.TuningAUROC) > 1e-6 {
		t.Errorf("model: best iteration %d, tuning AUROC %v; kept trial %+v",
			res.BestIteration, res.AUROC[data.SplitTuning], best)
	}
	rounds := metricsWithoutTiming(t, cfg.Out)
	if len(rounds) != best.Rounds || rounds[best.BestIteration]["tuning_auc"] != best.TuningAUROC {
		t.Errorf("metrics.jsonl has %d rounds, kept trial %d; its best round %v",
			len(rounds), best.Rounds, rounds[best.BestIteration])
	}
	if _, err := modelrepo.Verify(cfg.Out); err != nil {
		t.Errorf("model folder does not verify: %v", err)
	}

	flipped := filepath.Join(tmp, "flipped")
	flipHeldOut(t, f.cohort, flipped)
	cfg2 := searchCfg(f, flipped, filepath.Join(tmp, "m2"))
	res2, err := XGBoost(ctx, cfg2, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range res2.Search.Trials {
		a := s.Trials[i]
		a.Seconds, tr.Seconds = 0, 0
		if !reflect.DeepEqual(a, tr) {
			t.Fatalf("trial %d with the held-out labels inverted: %+v, before %+v", i, tr, a)
		}
	}
	h, h2 := res.AUROC[data.SplitHeldOut], res2.AUROC[data.SplitHeldOut]
	if math.Abs(h+h2-1) > 1e-9 || res2.BestIteration != res.BestIteration {
		t.Fatalf("held-out AUROC %v, with its labels inverted %v (want 1 - %v); best iteration %d, %d",
			h, h2, h, res.BestIteration, res2.BestIteration)
	}
}

// TestXGBoostWithoutSearch: a run without --search records no search and writes no trials.
func TestXGBoostWithoutSearch(t *testing.T) {
	if !xgb.Available {
		t.Skip("libxgboost is not linked in this build")
	}
	f := getFixture(t)
	cfg := searchCfg(f, f.cohort, filepath.Join(t.TempDir(), "m"))
	cfg.Search.Trials = 0
	res, err := XGBoost(context.Background(), cfg, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := modelrepo.ReadManifest(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Search != nil || res.Search != nil {
		t.Fatalf("search recorded without one: %+v", m.Search)
	}
	if _, err := os.Stat(modelrepo.SearchTrialsPath(cfg.Out)); !os.IsNotExist(err) {
		t.Fatalf("search_trials.jsonl: %v", err)
	}
	if m.Params["lambda"] != 1.0 || m.Params["alpha"] != 0.0 || m.Params["eta"] != cfg.Params.Eta {
		t.Fatalf("manifest params %v", m.Params)
	}
}
