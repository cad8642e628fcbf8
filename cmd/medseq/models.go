package main

import (
	"flag"

	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
)

// scoringDevice is where a BERT scores (serve, predict): --device and --pjrt-plugin.
type scoringDevice struct {
	device, plugin string
}

func (d *scoringDevice) register(fs *flag.FlagSet) {
	fs.StringVar(&d.device, "device", "cpu", "where BERT models score: cpu, gpu (an NVIDIA GPU through XLA; a -tags xla build) or auto (XGBoost always scores on the CPU)")
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
	r.Register(scorer.KindBERT, func(dir string, m *scorer.Manifest) (scorer.Scorer, error) {
		s, err := bert.LoadScorerOn(dir, m, dev)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	return r
}
