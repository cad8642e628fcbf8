package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/medseq/medseq/data"
)

// Files of a tokenizer folder.
const (
	VocabFile         = "vocab.txt"
	HFFile            = "tokenizer.json"
	ConfigFile        = "medseq_tokenizer.json"
	StageTokenize     = "tokenize build"
	InputTokenizerDir = "tokenizer"
)

// Config is medseq_tokenizer.json: what tokenizer.json cannot say, and the build's reports.
type Config struct {
	MaxLen          int          `json:"max_len"`
	VisitSeparators bool         `json:"visit_separators"`
	WholeEnd        int32        `json:"whole_end"`
	Build           *BuildReport `json:"build,omitempty"`
	TrainRates      *UnkStats    `json:"train_rates,omitempty"` // the training split's codes: whole, pieced, [UNK]
	TuningUnk       *UnkStats    `json:"tuning_unk,omitempty"`
	Leaks           *LeakReport  `json:"leakage_guard,omitempty"`
	ValueBins       *ValueBins   `json:"value_bins,omitempty"`
	// Corpus is what a records corpus read (nil: the cohort's training split).
	Corpus *CorpusReport `json:"corpus,omitempty"`
}

// Save writes vocab.txt, tokenizer.json, medseq_tokenizer.json and the manifest (when m is not
// nil) into dir atomically (see data.CreateAtomicDir).
func Save(dir string, overwrite bool, t *Tokenizer, cfg Config, m *data.Manifest) error {
	out, err := data.CreateAtomicDir(dir, overwrite)
	if err != nil {
		return err
	}
	defer out.Abort()
	hf, err := t.MarshalHF()
	if err != nil {
		return err
	}
	cfg.MaxLen, cfg.VisitSeparators, cfg.WholeEnd, cfg.ValueBins = t.MaxLen, t.VisitSeparators, t.WholeEnd, t.Values
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	for name, buf := range map[string][]byte{VocabFile: t.Vocab.VocabTxt(), HFFile: hf, ConfigFile: append(cj, '\n')} {
		if err := data.WriteFileAtomic(filepath.Join(out.Tmp, name), buf); err != nil {
			return err
		}
	}
	if m != nil {
		if err := m.WriteTo(out.Tmp); err != nil {
			return err
		}
	}
	return out.Commit()
}

// Load reads a tokenizer folder: tokenizer.json, and medseq_tokenizer.json when present (a
// folder holding only a third-party tokenizer.json, or only a vocab.txt, loads too).
func Load(dir string) (*Tokenizer, *Config, error) {
	var t *Tokenizer
	hfPath := filepath.Join(dir, HFFile)
	if _, err := os.Stat(hfPath); err == nil {
		if t, err = ReadHF(hfPath); err != nil {
			return nil, nil, err
		}
	} else {
		v, err := ReadVocabTxt(filepath.Join(dir, VocabFile))
		if err != nil {
			return nil, nil, fmt.Errorf("load tokenizer %s: no %s, and %w", dir, HFFile, err)
		}
		t = New(v)
	}
	cfg := &Config{MaxLen: t.MaxLen}
	buf, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(buf, cfg); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ConfigFile), err)
		}
		t.VisitSeparators, t.WholeEnd = cfg.VisitSeparators, cfg.WholeEnd
		if int(t.WholeEnd) > t.Vocab.Len() {
			return nil, nil, fmt.Errorf("read %s: %w: whole_end %d beyond vocabulary size %d",
				filepath.Join(dir, ConfigFile), ErrBadVocab, t.WholeEnd, t.Vocab.Len())
		}
		if err := t.SetValueBins(cfg.ValueBins); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ConfigFile), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, fmt.Errorf("load tokenizer: %w", err)
	}
	return t, cfg, nil
}
