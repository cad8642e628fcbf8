package modelrepo

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

func testManifest() *Manifest {
	return &Manifest{Manifest: *data.NewManifest("train xgboost", nil), Kind: KindXGBoost, Name: "t2d", VocabSize: 10,
		Gap: Duration(30 * data.MicrosPerDay), Calibration: CalibrationIsotonic,
		OperatingPoint: OperatingPoint{Rule: "max-f1", Method: PointMaxF1, Threshold: 0.23, ChosenOn: "tuning", TuningN: 100},
		Demographics: Demographics{Demographics: data.DefaultDemographics(), BirthCode: data.BirthCode,
			SexCodes: map[string]string{"F": "SEX//F"}}}
}

// TestManifestRoundTrip: Write then ReadManifest gives the same typed manifest, the gap as
// text ("30d"), the folder's fingerprint recorded.
func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CalibrationFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testManifest()
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var loose map[string]any
	if err := json.Unmarshal(raw, &loose); err != nil {
		t.Fatal(err)
	}
	if loose["gap"] != "30d" || loose["kind"] != "xgboost" {
		t.Errorf("gap %v kind %v in %s", loose["gap"], loose["kind"], raw)
	}
	back, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Gap != m.Gap || back.OperatingPoint != m.OperatingPoint || back.Demographics.SexCodes["F"] != "SEX//F" ||
		back.Demographics.BirthCodes[0] != data.BirthCode || back.Fingerprint == "" || back.RunID != m.RunID {
		t.Errorf("read back %+v", back)
	}
}

// TestManifestRefused: what is not a servable model's manifest says why, naming the file.
func TestManifestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"no kind", `{"operating_point":{"rule":"max-f1","threshold":0.3}}`, "no model kind"},
		{"older medseq", `{"kind":"xgboost","threshold":0.5,"params":{"cohort_gap":"0"}}`, "no operating point"},
		{"threshold outside [0, 1]", `{"kind":"bert","operating_point":{"rule":"1.5","threshold":1.5}}`, "outside [0, 1]"},
		{"gap not a duration", `{"kind":"bert","gap":"soon","operating_point":{"rule":"max-f1","threshold":0.3}}`, "soon"},
		{"gap a number", `{"kind":"bert","gap":30,"operating_point":{"rule":"max-f1","threshold":0.3}}`, "duration"},
		{"not JSON", `{`, "manifest.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadManifest(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ManifestFile) {
				t.Errorf("error %v, want one naming %s and %q", err, ManifestFile, tc.want)
			}
		})
	}
	// A pretraining run has no operating point and reads.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"kind":"bert-mlm"}`), 0o644)
	if _, err := ReadManifest(dir); err != nil {
		t.Errorf("pretraining run: %v", err)
	}
	// Write refuses what Read would refuse.
	m := testManifest()
	m.OperatingPoint = OperatingPoint{}
	if err := m.Write(t.TempDir()); !errors.Is(err, ErrNotModel) {
		t.Errorf("write without an operating point: %v", err)
	}
}

// TestCalibrationFile: calibration.json round trip; a folder without one says so with
// fs.ErrNotExist; a broken one names the file.
func TestCalibrationFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadCalibration(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	c := &Calibration{Method: CalibrationIsotonic,
		Isotonic: &Isotonic{X: []float64{0.1, 0.5, 0.9}, Y: []float64{0.05, 0.3, 0.8}}}
	if err := c.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCalibration(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []float64{0, 0.1, 0.3, 0.7, 1} {
		if back.Apply(s) != c.Apply(s) {
			t.Errorf("Apply(%v) %v after the round trip, %v before", s, back.Apply(s), c.Apply(s))
		}
	}
	if got := c.Apply(0.3); got != 0.05+0.5*(0.3-0.05) {
		t.Errorf("interpolation %v", got)
	}
	bad := &Calibration{Method: CalibrationIsotonic, Isotonic: &Isotonic{X: []float64{0.5, 0.1}, Y: []float64{0, 1}}}
	if err := bad.Write(dir); err == nil || !strings.Contains(err.Error(), CalibrationFile) {
		t.Errorf("decreasing breakpoints written: %v", err)
	}
}

func TestDeviceString(t *testing.T) {
	for _, tc := range []struct {
		d    *Device
		want string
	}{
		{nil, ""},
		{&Device{Kind: "cpu", DType: "float32"}, "cpu float32"},
		{&Device{Kind: "gpu", DType: "bfloat16", GPU: "NVIDIA H200"}, "gpu bfloat16 (NVIDIA H200)"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.d, got, tc.want)
		}
	}
}
