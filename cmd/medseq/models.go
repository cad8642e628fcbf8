package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// scoringDevice is where a BERT scores (serve, predict): --device and --pjrt-plugin.
type scoringDevice struct {
	device, plugin string
}

func (d *scoringDevice) register(fs *flag.FlagSet) {
	fs.StringVar(&d.device, "device", "cpu", "where BERT models score: cpu, gpu (an NVIDIA GPU through XLA; a -tags xla "+
		"build) or auto (XGBoost always scores on the CPU)")
	fs.StringVar(&d.plugin, "pjrt-plugin", "", "XLA CUDA PJRT plugin for --device gpu (default: searched)")
}

// registry selects the device (an error names what is missing for gpu) and returns the model
// registry scoring BERT models there.
func (d *scoringDevice) registry() (*scorer.Registry, bert.Device, error) {
	dev, err := bert.SelectDevice(d.device, d.plugin)
	if err != nil {
		return nil, dev, err
	}
	dev = dev.WithDType("float32")
	return modelRegistry(dev), dev, nil
}

// modelRegistry knows every model kind this binary can score; BERT models score on dev.
func modelRegistry(dev bert.Device) *scorer.Registry {
	r := scorer.NewRegistry()
	r.Register(modelrepo.KindBERT, func(dir string, m *modelrepo.Manifest) (scorer.Scorer, error) {
		s, err := bert.LoadScorerOn(dir, m, dev)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	return r
}

// operatingPointFlag registers --threshold: the rule that chooses a model's operating point on
// its calibrated tuning predictions (max-f1 by default).
func operatingPointFlag(fs *flag.FlagSet, spec *eval.ThresholdSpec) {
	*spec = eval.ThresholdSpec{Method: eval.ThresholdMaxF1}
	fs.Func("threshold", "the model's operating point, chosen on the calibrated tuning predictions: max-f1 (default), "+
		"youden, "+
		"sens=0.90 (highest threshold reaching that sensitivity), spec=0.95 (lowest keeping that specificity) or a "+
		"probability such as 0.37; "+
		"predict, serve and the report all decide at it", func(v string) error {
		t, err := eval.ParseThreshold(v)
		if err != nil {
			return err
		}
		*spec = t
		return nil
	})
}

// printOperatingPoint prints a trained model's operating point and what it gives on the tuning
// split.
func printOperatingPoint(w io.Writer, op modelrepo.OperatingPoint) {
	fmt.Fprintf(w, "  operating point    calibrated probability >= %s", op)
	if t := op.Tuning; t != nil {
		fmt.Fprintf(w, ": tuning sensitivity %.3f, specificity %.3f, PPV %.3f", t.Sensitivity, t.Specificity, t.PPV)
	}
	fmt.Fprintln(w)
}

// checkCalibration checks --calibration.
func checkCalibration(method string) error {
	switch method {
	case eval.CalibrationIsotonic, eval.CalibrationPlatt, eval.CalibrationIdentity:
		return nil
	}
	return usagef("flag --calibration: %q is not isotonic, platt or identity", method)
}
