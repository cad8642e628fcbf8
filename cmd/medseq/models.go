package main

import (
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
)

// modelRegistry knows every model kind this binary can score.
func modelRegistry() *scorer.Registry {
	r := scorer.NewRegistry()
	r.Register(scorer.KindBERT, func(dir string, m *scorer.Manifest) (scorer.Scorer, error) {
		s, err := bert.LoadScorer(dir, m)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	return r
}
