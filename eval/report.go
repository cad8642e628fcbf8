package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// Files a report writes into its output folder.
const (
	ReportHTMLFile = "report.html"
	ReportJSONFile = "metrics.json"
)

// ReportConfig controls BuildReport.
type ReportConfig struct {
	// Models are model version folders, each holding predictions_<split>.parquet,
	// calibration.json, manifest.json (kind, name) and optionally metrics.jsonl and
	// xgboost/top_features.json.
	Models      []string
	Split       string // the evaluated split, default "held_out"
	TuningSplit string // where alternative thresholds are chosen, default "tuning"
	// Threshold, when set, is one more alternative operating point, chosen per model on its
	// calibrated TuningSplit predictions as training chooses the deployed one. The headline
	// metrics are always at each model's deployed point (its manifest's).
	Threshold ThresholdSpec
	Bootstrap int    // resamples for 95% intervals; 0 for none
	Seed      uint64 // bootstrap seed, default 1
	Bins      int    // reliability bins, default 10
	// SegmentColumns are attribute columns to segment by; default "sex" when present. Age
	// bands are added whenever an age column exists.
	SegmentColumns []string
	MinPositives   int // segments with fewer are shown with counts only (default 10)
	MinNegatives   int
	// OracleAUROC is the synthetic data's true-risk AUROC on the evaluated rows, when known;
	// OracleNote says what it was computed on.
	OracleAUROC *float64
	OracleNote  string
	// CohortDir, when set, is a cohort folder (data.LoadCohort) whose classes are compared
	// with CheckCohort.
	// CohortMEDS, with CohortDir, is the dataset it was built from: the checks then also
	// compare the classes' censored sequence lengths and flag any code whose presence alone
	// separates them (a leak).
	CohortMEDS string
	CohortDir  string
	// Horizons are the survival panel's horizons in microseconds (default DefaultHorizons).
	Horizons []int64
	// Censoring, when set, is a censoring-sensitivity JSON (medseq eval censoring --out) to
	// show (ReadCensoringSensitivity).
	Censoring string
	// Now stamps the report (default time.Now).
	Now func() time.Time
}

func (c *ReportConfig) defaults() {
	if c.Split == "" {
		c.Split = data.SplitHeldOut
	}
	if c.TuningSplit == "" {
		c.TuningSplit = data.SplitTuning
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Bins <= 0 {
		c.Bins = 10
	}
	if c.MinPositives <= 0 {
		c.MinPositives = 10
	}
	if c.MinNegatives <= 0 {
		c.MinNegatives = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.Horizons) == 0 {
		c.Horizons = DefaultHorizons
	}
}

// Point is a point of a curve.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// HistBin is one bin of a histogram: [Lo, Hi) holding Count rows (Share of its class).
type HistBin struct {
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	Count int     `json:"count"`
	Share float64 `json:"share"`
}

// ClassHistograms are per-class histograms of one quantity.
type ClassHistograms struct {
	Positive []HistBin `json:"positive"`
	Negative []HistBin `json:"negative"`
	Missing  int       `json:"missing,omitempty"` // rows without a value
}

// TrainingCurve is a model's train and validation loss over training, from metrics.jsonl.
type TrainingCurve struct {
	XName     string  `json:"x"`          // "step" or "round"
	TrainName string  `json:"train_name"` // the log's key, e.g. train_loss or train_logloss
	ValName   string  `json:"val_name"`   // e.g. val_loss or tuning_logloss
	Train     []Point `json:"train,omitempty"`
	Val       []Point `json:"val,omitempty"`
}

// TopFeature is one row of xgboost/top_features.json.
type TopFeature struct {
	Feature     string  `json:"feature"`
	Gain        float64 `json:"gain"`
	Description string  `json:"description,omitempty"`
}

// CalibratedResult is the evaluated split's scores after the model's calibration.json.
type CalibratedResult struct {
	Method      string             `json:"method"`
	LogLoss     Num                `json:"log_loss"`
	Brier       Num                `json:"brier"`
	Calibration CalibrationSummary `json:"calibration"`
}

// ModelReport is one model in a report.
type ModelReport struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Dir     string `json:"dir"`
	RunID   string `json:"run_id,omitempty"`
	Created string `json:"created,omitempty"`
	// Inputs is what the model reads of a history: InputsCodes or InputsCodesValues.
	Inputs string `json:"inputs"`
	// TrainedOn is where a BERT trained ("cpu float32", "gpu bfloat16"); "" when the
	// manifest does not say (XGBoost trains on the CPU).
	TrainedOn string `json:"trained_on,omitempty"`
	// Metrics are of the raw scores on the evaluated split; the threshold metrics are at the
	// model's deployed operating point (Metrics.Threshold, method "deployed").
	Metrics *Metrics `json:"metrics"`
	// Alternatives are other operating points (max-F1, Youden's J, the config's), each chosen
	// on the calibrated tuning predictions, evaluated on the same rows: not deployed.
	Alternatives []AltPoint `json:"alternative_points,omitempty"`
	// Calibrated is nil when the folder has no calibration.json.
	Calibrated *CalibratedResult `json:"calibrated,omitempty"`
	Segments   []Segment         `json:"segments,omitempty"`
	ROC        []Point           `json:"roc"` // (false positive rate, true positive rate)
	PR         []Point           `json:"pr"`  // (recall, precision)
	Scores     ClassHistograms   `json:"score_histograms"`
	Training   *TrainingCurve    `json:"training,omitempty"`
	// TopFeatures are XGBoost's features by gain (nil for other kinds).
	TopFeatures []TopFeature `json:"top_features,omitempty"`
	// Operating is the deployed point as a clinical team reads it (NNE, PPV at fixed
	// sensitivities and at other prevalences); Decision the net benefit over threshold
	// probabilities; SegmentCalibration the calibration per segment. All three are of the
	// stored probabilities (after calibration.json), the ones predict and serve return.
	Operating          *OperatingSummary    `json:"operating,omitempty"`
	Decision           *DecisionCurve       `json:"decision_curve,omitempty"`
	SegmentCalibration []SegmentCalibration `json:"segment_calibration,omitempty"`
	// Survival are the censoring-aware figures of the stored probabilities against the
	// cohort's time to event; nil with SurvivalNote (or the report's Survival.Note) saying why.
	Survival     *SurvivalReport `json:"survival,omitempty"`
	SurvivalNote string          `json:"survival_note,omitempty"`
	Warnings     []string        `json:"warnings,omitempty"`

	preds  []Prediction // raw scores
	stored []Prediction // as stored: calibrated
}

// AltPoint is an operating point the model does not use, shown beside the deployed one.
type AltPoint struct {
	Rule        string  `json:"rule"`      // max-f1, youden, sens=0.9, spec=0.95, 0.3
	Threshold   float64 `json:"threshold"` // calibrated probability
	ChosenOn    string  `json:"chosen_on"` // "tuning", "fixed" or "evaluation" (no tuning predictions)
	Sensitivity Num     `json:"sensitivity"`
	Specificity Num     `json:"specificity"`
	PPV         Num     `json:"ppv"`
	F1          Num     `json:"f1"`
}

// PairComparison is DeLong's test (overall and per segment) between two models.
type PairComparison struct {
	A          string      `json:"a"`
	B          string      `json:"b"`
	Comparison *Comparison `json:"comparison,omitempty"`
	Error      string      `json:"error,omitempty"` // why the models could not be compared
}

// Oracle is the synthetic data's best achievable AUROC.
type Oracle struct {
	AUROC Num    `json:"auroc"`
	Note  string `json:"note,omitempty"`
}

// ReportCohort is the cohort check of a report.
type ReportCohort struct {
	Dir   string       `json:"dir"`
	Check *CohortCheck `json:"check"`
}

// Report is everything `medseq eval report` shows: BuildReport makes it, WriteHTML and
// WriteJSON write it.
type Report struct {
	// Task is the prediction task the cohort defines, shown first.
	Task        *TaskSummary     `json:"task,omitempty"`
	Created     string           `json:"created"`
	Split       string           `json:"split"`
	TuningSplit string           `json:"tuning_split"`
	Threshold   ThresholdSpec    `json:"threshold"`
	Bootstrap   int              `json:"bootstrap"`
	Seed        uint64           `json:"seed"`
	Bins        int              `json:"bins"`
	Models      []*ModelReport   `json:"models"`
	Pairs       []PairComparison `json:"comparisons,omitempty"`
	Oracle      *Oracle          `json:"oracle,omitempty"`
	Ages        *ClassHistograms `json:"age_histograms,omitempty"` // of the evaluated rows (first model)
	Cohort      *ReportCohort    `json:"cohort,omitempty"`
	// Survival says how the models' survival figures were made, or why there are none;
	// Censoring is the censoring-sensitivity result given with --censoring.
	Survival  *SurvivalPanel        `json:"survival,omitempty"`
	Censoring *CensoringSensitivity `json:"censoring,omitempty"`
	Warnings  []string              `json:"warnings,omitempty"`
	ElapsedS  float64               `json:"elapsed_s"`
}

// Model inputs, as the report names them.
const (
	InputsCodes       = "codes"
	InputsCodesValues = "codes and numeric values"
)

// BuildReport evaluates every model of cfg on the same split and compares them.
func BuildReport(cfg ReportConfig) (*Report, error) {
	cfg.defaults()
	if len(cfg.Models) == 0 {
		return nil, errors.New("report: no models")
	}
	if cfg.Bootstrap < 0 {
		return nil, errors.New("report: bootstrap resamples must be 0 or more")
	}
	start := time.Now()
	r := &Report{Created: cfg.Now().UTC().Format(time.RFC3339), Split: cfg.Split, TuningSplit: cfg.TuningSplit,
		Threshold: cfg.Threshold, Bootstrap: cfg.Bootstrap, Seed: cfg.Seed, Bins: cfg.Bins}
	if cfg.Censoring != "" { // read first: a bad file fails before the work
		c, err := ReadCensoringSensitivity(cfg.Censoring)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		r.Censoring = c
	}
	names := map[string]int{}
	for _, dir := range cfg.Models {
		m, err := buildModel(dir, cfg)
		if err != nil {
			return nil, err
		}
		names[m.Name]++
		r.Models = append(r.Models, m)
	}
	// Two versions of one model: name them by their folders too.
	for _, m := range r.Models {
		if names[m.Name] > 1 {
			m.Name = m.Name + " (" + filepath.Base(filepath.Dir(m.Dir)) + "/" + filepath.Base(m.Dir) + ")"
		}
	}
	r.compare(cfg)
	if cfg.OracleAUROC != nil {
		r.Oracle = &Oracle{AUROC: Num(*cfg.OracleAUROC), Note: cfg.OracleNote}
	}
	if ages := ageHistograms(r.Models[0].preds); ages != nil {
		r.Ages = ages
	}
	r.Task = &TaskSummary{}
	co, err := loadTaskCohort(cfg, r.Task)
	if err != nil {
		return nil, err
	}
	fillTask(r.Task, co, r.Models, cfg.Split)
	for _, n := range r.Task.Notes {
		r.Warnings = append(r.Warnings, "task: "+n)
	}
	if cfg.CohortDir != "" {
		if r.Cohort, err = checkReportCohort(co, cfg); err != nil {
			return nil, err
		}
	}
	r.Survival = buildSurvival(co, cfg.Horizons, r.Models)
	if r.Censoring != nil {
		if w := censoringWarning(r.Censoring, r.Models); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
	r.ElapsedS = time.Since(start).Seconds()
	return r, nil
}

// compare runs DeLong's test, overall and per segment, on every pair of models.
func (r *Report) compare(cfg ReportConfig) {
	for i := 0; i < len(r.Models); i++ {
		for j := i + 1; j < len(r.Models); j++ {
			a, b := r.Models[i], r.Models[j]
			if a.Inputs != b.Inputs {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s reads %s, %s reads %s: the comparison is not like for like",
					a.Name, a.Inputs, b.Name, b.Inputs))
			}
			pc := PairComparison{A: a.Name, B: b.Name}
			c, err := CompareSegments(a.preds, b.preds, segmentConfig(cfg, a.preds))
			if err != nil {
				pc.Error = err.Error()
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s vs %s: no DeLong test: %v", a.Name, b.Name, err))
			} else {
				pc.Comparison = c
			}
			r.Pairs = append(r.Pairs, pc)
		}
	}
}

// checkReportCohort runs the cohort checks on co (given with --cohort), with the classes'
// sequence lengths and the leak check when the dataset is given too.
func checkReportCohort(co *data.Cohort, cfg ReportConfig) (*ReportCohort, error) {
	var seqLens []int
	var feats Features
	if cfg.CohortMEDS != "" {
		if err := co.CheckDataset(cfg.CohortMEDS); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		var err error
		if seqLens, feats, err = cohortSequenceFeatures(co, cfg.CohortMEDS); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
	}
	chk, err := CheckCohort(co.Labels, seqLens, feats, CohortCheckConfig{})
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return &ReportCohort{Dir: cfg.CohortDir, Check: chk}, nil
}

func segmentConfig(cfg ReportConfig, preds []Prediction) SegmentConfig {
	cols := cfg.SegmentColumns
	if cols == nil {
		for _, p := range preds {
			if _, ok := p.Attrs["sex"]; ok {
				cols = []string{"sex"}
				break
			}
		}
	}
	return SegmentConfig{Columns: cols, MinPositives: cfg.MinPositives, MinNegatives: cfg.MinNegatives,
		Metrics: Config{Bootstrap: cfg.Bootstrap, Seed: cfg.Seed, Bins: cfg.Bins}}
}

func buildModel(dir string, cfg ReportConfig) (*ModelReport, error) {
	man, err := modelrepo.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	m := newModelReport(dir, man)
	if m.stored, err = ReadPredictions(modelrepo.PredictionsFile(dir, cfg.Split)); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	if m.preds, err = RawScores(m.stored); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	if err := m.deployed(man.OperatingPoint, cfg); err != nil {
		return nil, err
	}
	if err := m.alternatives(cfg); err != nil {
		return nil, err
	}
	labels, scores := split(m.preds)
	m.ROC, m.PR = curves(labels, scores)
	m.Scores = classHistograms(labels, scores, 0, 1, 20)
	if err := m.calibrated(man.OperatingPoint.Threshold, cfg); err != nil {
		return nil, err
	}
	seg := segmentConfig(cfg, m.preds)
	if m.Segments, err = Segments(m.preds, m.Metrics.Threshold.Raw, seg); err != nil {
		return nil, fmt.Errorf("model %s segments: %w", m.Name, err)
	}
	if m.SegmentCalibration, err = SegmentCalibrations(m.stored, seg); err != nil {
		return nil, fmt.Errorf("model %s segment calibration: %w", m.Name, err)
	}
	m.readExtras()
	return m, nil
}

// newModelReport starts a model's report from its manifest.
func newModelReport(dir string, man *modelrepo.Manifest) *ModelReport {
	m := &ModelReport{Name: man.Name, Kind: man.Kind, Dir: dir, RunID: man.RunID, Inputs: InputsCodes}
	if !man.Created.IsZero() {
		m.Created = man.Created.UTC().Format(time.RFC3339)
	}
	if man.LastValues || man.ValueBins > 0 {
		m.Inputs = InputsCodesValues
	}
	if m.Kind == modelrepo.KindXGBoost {
		m.TrainedOn = "cpu" // libxgboost on the CPU
	}
	if d := man.Device.String(); d != "" {
		m.TrainedOn = d
	}
	if m.Name == "" {
		m.Name = filepath.Base(filepath.Dir(filepath.Clean(dir))) + "/" + filepath.Base(dir)
	}
	return m
}

// deployed computes the metrics at the model's own operating point: the raw scores cut where
// the calibrated probability reaches the manifest's threshold, the same decisions; then what
// a clinical team reads of that point and the decision curve, on the calibrated probabilities.
func (m *ModelReport) deployed(op modelrepo.OperatingPoint, cfg ReportConfig) error {
	raw := RawThreshold(m.preds, m.stored, op.Threshold)
	mc := Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: raw}, Bootstrap: cfg.Bootstrap, Seed: cfg.Seed,
		Bins: cfg.Bins}
	var err error
	if m.Metrics, err = Compute(m.preds, mc); err != nil {
		return fmt.Errorf("model %s on %s: %w", m.Name, cfg.Split, err)
	}
	m.Metrics.Threshold = ChosenThreshold{Method: ThresholdDeployed, Value: op.Threshold, Target: op.Target,
		Rule: op.Rule, ChosenOn: op.ChosenOn, TuningN: op.TuningN, Raw: raw}
	m.Warnings = append(m.Warnings, m.Metrics.Warnings...)
	m.Operating = operatingSummary(m.Metrics, m.stored, op.Threshold, cfg)
	prev := float64(m.Metrics.Sample.Prevalence.Value)
	if m.Decision, err = DecisionCurveOf(m.stored, DecisionThresholds(prev)); err != nil {
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	return nil
}

// alternatives evaluates the other operating points, chosen on the tuning split's
// predictions (on the evaluated ones, with a warning, when there are none).
func (m *ModelReport) alternatives(cfg ReportConfig) error {
	tun, err := ReadPredictions(modelrepo.PredictionsFile(m.Dir, cfg.TuningSplit))
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.Warnings = append(m.Warnings, fmt.Sprintf(
			"no %s predictions: alternative operating points are chosen on %s itself", cfg.TuningSplit, cfg.Split))
		tun = nil
	case err != nil:
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	if m.Alternatives, err = alternatives(cfg, m.stored, tun); err != nil {
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	return nil
}

// calibrated measures the stored (calibrated) probabilities, when the folder has its
// calibration.json.
func (m *ModelReport) calibrated(threshold float64, cfg ReportConfig) error {
	cal, err := modelrepo.ReadCalibration(m.Dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.Warnings = append(m.Warnings, "no calibration.json: calibrated results not shown")
		return nil
	case err != nil:
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	cm, err := Compute(m.stored, Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: threshold},
		Bins: cfg.Bins})
	if err != nil {
		return fmt.Errorf("model %s, calibrated: %w", m.Name, err)
	}
	m.Calibrated = &CalibratedResult{Method: cal.Method, LogLoss: cm.Sample.LogLoss.Value, Brier: cm.Sample.Brier.Value,
		Calibration: cm.Calibration}
	return nil
}

// readExtras reads the training log and XGBoost's top features; a missing or bad one is a
// warning.
func (m *ModelReport) readExtras() {
	tc, err := ReadTrainingCurve(modelrepo.TrainLogPath(m.Dir))
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.Warnings = append(m.Warnings, "no metrics.jsonl: no training curve")
	case err != nil:
		m.Warnings = append(m.Warnings, err.Error())
	default:
		m.Training = tc
	}
	top, err := readTopFeatures(modelrepo.TopFeaturesPath(m.Dir))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if m.Kind == "xgboost" {
			m.Warnings = append(m.Warnings, "no xgboost/top_features.json")
		}
	case err != nil:
		m.Warnings = append(m.Warnings, err.Error())
	default:
		m.TopFeatures = top
	}
}

func readTopFeatures(path string) ([]TopFeature, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []TopFeature
	if err := json.Unmarshal(buf, &out); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// Keys a training log may use, in order of preference.
var (
	trainLossKeys = []string{"train_loss", "train_logloss"}
	valLossKeys   = []string{"val_loss", "tuning_logloss", "valid_loss", "validation_loss", "tuning_loss", "val_logloss"}
	stepKeys      = []string{"step", "round", "iteration", "epoch"}
)

// ReadTrainingCurve reads a metrics.jsonl training log: one JSON object a line, with a step
// or round and train/validation losses (BERT: train_loss, val_loss; XGBoost: train_logloss,
// tuning_logloss). Lines without a loss are skipped; a line number stands in for a missing
// step.
func ReadTrainingCurve(path string) (*TrainingCurve, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(t), &rec); err != nil {
			return nil, fmt.Errorf("read %s line %d: %w", path, line, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	first := func(keys []string) string {
		for _, k := range keys {
			for _, r := range recs {
				if _, ok := r[k].(float64); ok {
					return k
				}
			}
		}
		return ""
	}
	tc := &TrainingCurve{XName: first(stepKeys), TrainName: first(trainLossKeys), ValName: first(valLossKeys)}
	if tc.TrainName == "" && tc.ValName == "" {
		return nil, fmt.Errorf("read %s: no train or validation loss (looked for %s)", path,
			strings.Join(append(append([]string{}, trainLossKeys...), valLossKeys...), ", "))
	}
	for i, r := range recs {
		x := float64(i)
		if tc.XName != "" {
			v, ok := r[tc.XName].(float64)
			if !ok {
				continue
			}
			x = v
		}
		if v, ok := r[tc.TrainName].(float64); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			tc.Train = append(tc.Train, Point{x, v})
		}
		if v, ok := r[tc.ValName].(float64); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			tc.Val = append(tc.Val, Point{x, v})
		}
	}
	if tc.XName == "" {
		tc.XName = "record"
	}
	return tc, nil
}

// maxCurvePoints caps the points kept of a ROC or PR curve.
const maxCurvePoints = 1000

// curves returns the ROC curve (FPR, TPR) and the precision-recall curve (recall, precision)
// over the distinct thresholds, thinned to about maxCurvePoints.
func curves(labels []bool, scores []float64) (roc, pr []Point) {
	order := make([]int, len(scores))
	var P, N float64
	for i := range order {
		order[i] = i
		if labels[i] {
			P++
		} else {
			N++
		}
	}
	if P == 0 || N == 0 {
		return nil, nil
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	roc = append(roc, Point{0, 0})
	var tp, fp float64
	for i := 0; i < len(order); {
		j := i
		for j < len(order) && scores[order[j]] == scores[order[i]] {
			if labels[order[j]] {
				tp++
			} else {
				fp++
			}
			j++
		}
		roc = append(roc, Point{fp / N, tp / P})
		if len(pr) == 0 {
			// The step curve starts at recall 0 with the first threshold's precision.
			pr = append(pr, Point{0, tp / (tp + fp)})
		}
		pr = append(pr, Point{tp / P, tp / (tp + fp)})
		i = j
	}
	return thin(roc), thin(pr)
}

func thin(p []Point) []Point {
	if len(p) <= maxCurvePoints {
		return p
	}
	k := (len(p) + maxCurvePoints - 1) / maxCurvePoints
	out := make([]Point, 0, maxCurvePoints+1)
	for i := 0; i < len(p); i += k {
		out = append(out, p[i])
	}
	if out[len(out)-1] != p[len(p)-1] {
		out = append(out, p[len(p)-1])
	}
	return out
}

// classHistograms bins v per class into n equal bins over [lo, hi] (values outside fall in
// the end bins; NaN are counted as missing).
func classHistograms(labels []bool, v []float64, lo, hi float64, n int) ClassHistograms {
	var h ClassHistograms
	mk := func() []HistBin {
		b := make([]HistBin, n)
		w := (hi - lo) / float64(n)
		for i := range b {
			b[i].Lo, b[i].Hi = lo+float64(i)*w, lo+float64(i+1)*w
		}
		return b
	}
	h.Positive, h.Negative = mk(), mk()
	var np, nn int
	for i, x := range v {
		if math.IsNaN(x) {
			h.Missing++
			continue
		}
		k := int(math.Floor((x - lo) / (hi - lo) * float64(n)))
		k = max(0, min(n-1, k))
		if labels[i] {
			h.Positive[k].Count++
			np++
		} else {
			h.Negative[k].Count++
			nn++
		}
	}
	for i := range h.Positive {
		if np > 0 {
			h.Positive[i].Share = float64(h.Positive[i].Count) / float64(np)
		}
		if nn > 0 {
			h.Negative[i].Share = float64(h.Negative[i].Count) / float64(nn)
		}
	}
	return h
}

// ageHistograms bins the age attribute per class in 5-year bins from 0 to 100+; nil when no
// row has an age.
func ageHistograms(preds []Prediction) *ClassHistograms {
	labels := make([]bool, len(preds))
	ages := make([]float64, len(preds))
	any := false
	for i, p := range preds {
		labels[i] = p.Label
		ages[i] = math.NaN()
		if s, ok := p.Attrs[AgeColumn]; ok {
			var a float64
			if _, err := fmt.Sscan(strings.TrimSpace(s), &a); err == nil {
				ages[i], any = a, true
			}
		}
	}
	if !any {
		return nil
	}
	h := classHistograms(labels, ages, 0, 105, 21)
	return &h
}

// cohortSequenceFeatures reads every label's censored sequence (through data.Cohort.Sequences,
// so exactly what a model sees): its length, and for each code the labels whose sequence holds
// it, for CheckCohort's single-feature leak check.
func cohortSequenceFeatures(co *data.Cohort, meds string) ([]int, Features, error) {
	ds, err := data.Open(meds)
	if err != nil {
		return nil, Features{}, err
	}
	type key struct{ id, t int64 }
	index := make(map[key]int, len(co.Labels))
	for i, l := range co.Labels {
		index[key{l.SubjectID, l.PredictionTime}] = i
	}
	lens := make([]int, len(co.Labels))
	byCode := map[int32][]int{}
	last := map[int32]int{}
	err = co.Sequences(context.Background(), ds, nil, func(s data.Sequence) error {
		i := index[key{s.Label.SubjectID, s.Label.PredictionTime}]
		lens[i] = len(s.Events)
		for _, e := range s.Events {
			if j, ok := last[e.Code]; ok && j == i+1 {
				continue
			}
			last[e.Code] = i + 1
			byCode[e.Code] = append(byCode[e.Code], i)
		}
		return nil
	})
	if err != nil {
		return nil, Features{}, err
	}
	f := Features{Sparse: make(map[string][]int, len(byCode))}
	for code, rows := range byCode {
		f.Sparse["code "+ds.Codes.Name(code)] = rows
	}
	return lens, f, nil
}
