package modelrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/data"
)

// ErrNotModel is returned for a folder whose manifest is not a model version's (no kind, or
// written by a medseq without an operating point: retrain it).
var ErrNotModel = errors.New("not a model version folder")

// Manifest is a model version's manifest.json: the run manifest plus what scoring needs, typed.
type Manifest struct {
	data.Manifest
	Kind      string `json:"kind"`
	Name      string `json:"name,omitempty"`
	VocabSize int    `json:"vocab_size"`
	// MaxLen is the tokens a sequence may hold (a BERT's positions); 0 for no limit.
	MaxLen int `json:"max_len,omitempty"`
	// Gap is the cohort's censoring gap: scoring hides events in (prediction time − Gap,
	// prediction time], as training did.
	Gap Duration `json:"gap"`
	// ValueBins is the tokenizer's value bins per code (0: the model reads no value tokens).
	ValueBins int `json:"value_bins,omitempty"`
	// LastValues: XGBoost features carry each code's last numeric value.
	LastValues bool `json:"last_values,omitempty"`
	// Device is where a BERT trained.
	Device *Device `json:"device,omitempty"`
	// Calibration is the method of calibration.json (isotonic, platt or identity).
	Calibration    string         `json:"calibration"`
	OperatingPoint OperatingPoint `json:"operating_point"`
	Demographics   Demographics   `json:"demographics"`
	// TokenRates say how the tokenizer read the training split's codes: the baseline against
	// which predict's and the server's rates (medseq_codes_total) show drift to foreign codes.
	TokenRates *TokenRates        `json:"token_rates,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	// Search is the hyperparameter search that chose the parameters (train xgboost
	// --search); nil when they were given.
	Search *Search `json:"search,omitempty"`
	// Warnings are what training found wrong with the run and logged (a BERT whose training
	// loss never left its initial value), for whoever reads the folder later.
	Warnings []string `json:"warnings,omitempty"`
	// Corpus is what a pretraining run (train pretrain) learned from; nil for other runs.
	Corpus *Corpus `json:"corpus,omitempty"`
	// Files is the SHA-256 of each file of the folder (but manifest.json), by slash-separated
	// path, as Write found them: Verify names the file that changed.
	Files map[string]string `json:"files,omitempty"`
}

// TokenRates count code occurrences by how the tokenizer reads them: whole-code hits, pieced
// (a known parent code and suffix pieces) and [UNK]; Whole + Pieced + Unknown = Codes.
type TokenRates struct {
	Split       string  `json:"split"` // where they were counted (train)
	Codes       int64   `json:"codes"`
	Whole       int64   `json:"whole"`
	Pieced      int64   `json:"pieced"`
	Unknown     int64   `json:"unknown"`
	WholeRate   float64 `json:"whole_rate"`
	PiecedRate  float64 `json:"pieced_rate"`
	UnknownRate float64 `json:"unknown_rate"`
}

// NewTokenRates fills the rates from the counts.
func NewTokenRates(split string, codes, whole, pieced, unknown int64) *TokenRates {
	r := &TokenRates{Split: split, Codes: codes, Whole: whole, Pieced: pieced, Unknown: unknown}
	if codes > 0 {
		n := float64(codes)
		r.WholeRate, r.PiecedRate, r.UnknownRate = float64(whole)/n, float64(pieced)/n, float64(unknown)/n
	}
	return r
}

// Device is where a model trained, as the report shows it.
type Device struct {
	Kind  string `json:"kind"`            // cpu or gpu
	DType string `json:"dtype,omitempty"` // float32, tf32, bfloat16
	GPU   string `json:"gpu,omitempty"`   // the card's name
}

// String is "cpu float32", "gpu bfloat16 (NVIDIA H200)" and so on; "" when unknown.
func (d *Device) String() string {
	if d == nil || d.Kind == "" {
		return ""
	}
	out := strings.TrimSpace(d.Kind + " " + d.DType)
	if d.GPU != "" {
		out += " (" + d.GPU + ")"
	}
	return out
}

// Rules of an operating point (OperatingPoint.Method).
const (
	PointFixed       = "fixed"       // a given probability
	PointMaxF1       = "max-f1"      // the threshold maximising F1
	PointYouden      = "youden"      // maximising sensitivity + specificity − 1
	PointSensitivity = "sensitivity" // the highest threshold reaching a target sensitivity
	PointSpecificity = "specificity" // the lowest threshold keeping a target specificity
)

// OperatingPoint is the model's one decision threshold on the calibrated probability: a
// prediction is positive when its calibrated probability is >= Threshold.
type OperatingPoint struct {
	Rule      string  `json:"rule"`             // as asked: max-f1, youden, sens=0.90, spec=0.95 or 0.37
	Method    string  `json:"method"`           // one of the Point* rules
	Target    float64 `json:"target,omitempty"` // the sensitivity or specificity asked for
	Threshold float64 `json:"threshold"`        // calibrated probability
	// ChosenOn is "tuning" (chosen on the calibrated tuning predictions) or "fixed".
	ChosenOn string `json:"chosen_on"`
	TuningN  int    `json:"tuning_n,omitempty"`
	// What the threshold gives on the tuning split it was chosen on.
	Tuning *PointMetrics `json:"tuning,omitempty"`
}

// PointMetrics are the confusion-matrix rates at a threshold.
type PointMetrics struct {
	Sensitivity Rate `json:"sensitivity"`
	Specificity Rate `json:"specificity"`
	PPV         Rate `json:"ppv"`
	F1          Rate `json:"f1"`
}

// Rate is a proportion that may be undefined (NaN: no predicted positives for a PPV),
// written as JSON null then.
type Rate float64

// MarshalJSON writes null for NaN.
func (r Rate) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(r)) || math.IsInf(float64(r), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(r))
}

// UnmarshalJSON reads null as NaN.
func (r *Rate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = Rate(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*r = Rate(f)
	return nil
}

// Positive is the decision at the operating point for a calibrated probability.
func (o OperatingPoint) Positive(p float64) bool { return p >= o.Threshold }

// String is "0.2314 (max-f1 on tuning)".
func (o OperatingPoint) String() string {
	if o.ChosenOn == PointFixed || o.Method == PointFixed {
		return fmt.Sprintf("%.4g (fixed)", o.Threshold)
	}
	return fmt.Sprintf("%.4g (%s on %s)", o.Threshold, o.Rule, o.ChosenOn)
}

// Demographics say where a model's training data kept birth and sex, so that a history
// scored later derives them the same way (data.Demographics), whichever way it is sent.
type Demographics struct {
	data.Demographics
	// BirthCode and SexCodes are the codes the training data wrote birth and sex with, as the
	// model saw them among a history's events. A history that sends birth and sex as fields
	// instead of events gets them added as these events (timed at birth; static), so it
	// scores as the training data would have. Empty when the vocabulary held no such code.
	BirthCode string            `json:"birth_code,omitempty"`
	SexCodes  map[string]string `json:"sex_codes,omitempty"` // F or M -> code
}

// Duration is a span of MEDS microseconds written as medseq's durations ("30d", "1y").
type Duration int64

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(data.FormatDuration(int64(d))) }

// UnmarshalJSON reads a duration text ("30d", "0").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a text such as \"30d\": %w", err)
	}
	us, err := data.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(us)
	return nil
}

// Micros is the duration in microseconds.
func (d Duration) Micros() int64 { return int64(d) }

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	buf, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	m, err := parseManifest(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return m, nil
}

func (m *Manifest) check() error {
	switch {
	case m.Kind == "":
		return fmt.Errorf("%w: no model kind", ErrNotModel)
	case m.Kind == KindBERTMLM:
		return nil
	case m.OperatingPoint.Rule == "":
		return fmt.Errorf("%w: no operating point (written by an older medseq: train the model again)", ErrNotModel)
	case !(m.OperatingPoint.Threshold >= 0 && m.OperatingPoint.Threshold <= 1):
		return fmt.Errorf("operating point threshold %v outside [0, 1]", m.OperatingPoint.Threshold)
	case m.Gap < 0:
		return fmt.Errorf("negative gap %s", data.FormatDuration(int64(m.Gap)))
	}
	return nil
}

// Write fingerprints the folder dir (all but its manifest: the folder's fingerprint, as
// data.Fingerprint computes it, and each file's hash) and writes dir/manifest.json
// atomically. Verify checks a folder against them before it is loaded.
func (m *Manifest) Write(dir string) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	fp, files, err := hashFolder(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	m.Fingerprint, m.Files = fp, files
	buf, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(filepath.Join(dir, ManifestFile), append(buf, '\n'))
}
